// SPDX-License-Identifier: GPL-2.0

//! A raw disk image: a regular file or a block device that backs one LUN.
//!
//! Opening takes an advisory lock, as QEMU does: exclusive for a writable
//! image, shared for a read-only one, so two VMs (or hvhost and QEMU) never
//! write one image at once. The size must be a whole number of 512-byte
//! sectors. All I/O is positional (`pread`/`pwrite`), so threads can share
//! one image.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use vmm_sys_util::fallocate::{fallocate, FallocateMode};

/// Sector size that an image's length must be a multiple of.
pub const SECTOR: u64 = 512;

/// Why an image cannot back a disk.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file cannot be opened (missing, unreadable, not writable).
    #[error("cannot open disk image {}: {source}", path.display())]
    Open {
        /// The image path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the image's lock.
    #[error(
        "disk image {} is in use by another process (it holds the image's lock)",
        path.display()
    )]
    Locked {
        /// The image path.
        path: PathBuf,
    },
    /// Neither a regular file nor a block device.
    #[error("disk image {} is not a regular file or a block device", path.display())]
    NotAFileOrDevice {
        /// The image path.
        path: PathBuf,
    },
    /// Empty, or not a whole number of sectors.
    #[error(
        "disk image {} is {size} bytes: it must be a positive multiple of {SECTOR}",
        path.display()
    )]
    Size {
        /// The image path.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Locking or sizing failed.
    #[error("disk image {}: {source}", path.display())]
    Io {
        /// The image path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// An open, locked image.
#[derive(Debug)]
pub struct DiskImage {
    file: File,
    path: PathBuf,
    size: u64,
    read_only: bool,
    block_device: bool,
}

impl DiskImage {
    /// Opens and locks `path`, writable unless `read_only`.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, ImageError> {
        let io = |source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| ImageError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let kind = file.metadata().map_err(io)?.file_type();
        let block_device = kind.is_block_device();
        if !kind.is_file() && !block_device {
            return Err(ImageError::NotAFileOrDevice {
                path: path.to_path_buf(),
            });
        }
        let locked = if read_only {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ImageError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // A block device's length is where its end is.
        let size = file.seek(SeekFrom::End(0)).map_err(io)?;
        if size == 0 || size % SECTOR != 0 {
            return Err(ImageError::Size {
                path: path.to_path_buf(),
                size,
            });
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            size,
            read_only,
            block_device,
        })
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether it was opened read-only.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether [`Self::discard`] can punch holes (regular files).
    pub fn can_discard(&self) -> bool {
        !self.read_only && !self.block_device
    }

    /// Reads `buf.len()` bytes at `offset`; the range lies inside the
    /// image (the caller checked it against [`Self::size`]).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Writes `data` at `offset`, inside the image.
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    /// Makes written data durable (`fdatasync`).
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Deallocates `len` bytes at `offset` (a hole, which reads back as
    /// zeroes), inside the image.
    pub fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        if !self.can_discard() {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        }
        fallocate(&self.file, FallocateMode::PunchHole, true, offset, len)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    fn image(bytes: u64) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        f.as_file().set_len(bytes).expect("size");
        f
    }

    #[test]
    fn reads_writes_and_flushes() {
        let f = image(8 * SECTOR);
        let img = DiskImage::open(f.path(), false).expect("open");
        assert_eq!(img.size(), 4096);
        img.write_at(&[0xa5; 512], 1024).expect("write");
        img.flush().expect("flush");
        let mut back = [0; 512];
        img.read_at(&mut back, 1024).expect("read");
        assert_eq!(back, [0xa5; 512]);
        // Past the end is an error, never a short read.
        assert!(img.read_at(&mut back, 4096 - 256).is_err());
    }

    #[test]
    fn bad_images_are_clear_errors() {
        let missing = Path::new("/nonexistent/disk.img");
        assert!(matches!(
            DiskImage::open(missing, true),
            Err(ImageError::Open { .. })
        ));
        let odd = image(1000);
        let e = DiskImage::open(odd.path(), false).expect_err("1000 bytes");
        assert!(matches!(e, ImageError::Size { size: 1000, .. }), "{e}");
        assert!(e.to_string().contains("multiple of 512"), "{e}");
        let empty = image(0);
        assert!(matches!(
            DiskImage::open(empty.path(), false),
            Err(ImageError::Size { size: 0, .. })
        ));
        let dir = tempfile::tempdir().expect("dir");
        assert!(matches!(
            DiskImage::open(dir.path(), true),
            Err(ImageError::NotAFileOrDevice { .. })
        ));
    }

    #[test]
    fn a_writer_excludes_every_other_opener() {
        let f = image(4096);
        let first = DiskImage::open(f.path(), false).expect("first");
        assert!(matches!(
            DiskImage::open(f.path(), false),
            Err(ImageError::Locked { .. })
        ));
        assert!(matches!(
            DiskImage::open(f.path(), true),
            Err(ImageError::Locked { .. })
        ));
        drop(first);
        // Readers share.
        let r1 = DiskImage::open(f.path(), true).expect("reader 1");
        let r2 = DiskImage::open(f.path(), true).expect("reader 2");
        assert!(r1.read_only() && r2.read_only());
        assert!(matches!(
            DiskImage::open(f.path(), false),
            Err(ImageError::Locked { .. })
        ));
    }

    #[test]
    fn discard_punches_a_hole() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(&vec![0x5a; 1 << 20]).expect("fill");
        f.as_file().sync_all().expect("sync");
        let img = DiskImage::open(f.path(), false).expect("open");
        let before = f.as_file().metadata().expect("meta").blocks();
        img.discard(0, 1 << 19).expect("punch");
        let after = f.as_file().metadata().expect("meta").blocks();
        assert!(after < before, "allocated blocks {before} -> {after}");
        let mut back = [0xff; 4096];
        img.read_at(&mut back, 4096).expect("read");
        assert_eq!(back, [0; 4096]);
        assert_eq!(img.size(), 1 << 20);
        let ro = {
            drop(img);
            DiskImage::open(f.path(), true).expect("read-only")
        };
        assert!(!ro.can_discard());
        assert!(ro.discard(0, 4096).is_err());
    }
}
