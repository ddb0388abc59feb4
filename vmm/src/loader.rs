// SPDX-License-Identifier: GPL-2.0

//! Loading what the user named into guest RAM: the kernel (bzImage or ELF vmlinux, with
//! linux-loader), the initramfs (placed as high as the boot protocol allows) and the
//! command line.
//!
//! Every failure names the file and the reason; nothing here panics on a malformed file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::elf::Elf;
use linux_loader::loader::{self, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::memory::{CMDLINE_ADDR, CMDLINE_MAX_SIZE, HIMEM_START};

/// Offset of the 64-bit entry point from the protected-mode kernel's load address.
pub const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// `setup_header.xloadflags`: the kernel has a 64-bit entry point at +0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// `initrd_addr_max` assumed for boot protocols before 2.03.
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;
const PAGE_SIZE: u64 = 4096;

/// Why the kernel, initrd or command line could not be loaded into guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file named on the command line could not be opened or read.
    #[error("cannot read {what} {}: {source}", path.display())]
    File {
        /// What the file is for, e.g. "kernel image".
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The kernel file is neither a bzImage nor an ELF vmlinux.
    #[error(
        "{} is not a kernel image hvhost can boot: it is not a bzImage ({bzimage}) \
         and not an ELF vmlinux ({elf})", path.display()
    )]
    NotAKernel {
        /// The kernel path.
        path: PathBuf,
        /// Why the bzImage loader refused it.
        bzimage: loader::Error,
        /// Why the ELF loader refused it.
        elf: loader::Error,
    },

    /// The kernel was recognised but could not be loaded.
    #[error("cannot load kernel {}: {source}", path.display())]
    KernelLoad {
        /// The kernel path.
        path: PathBuf,
        /// What linux-loader reported.
        #[source]
        source: loader::Error,
    },

    /// The bzImage loader succeeded but returned no setup header, so the kernel's boot
    /// protocol (and its 64-bit entry) cannot be checked.
    #[error("cannot set up the boot parameters: the bzImage loader returned no setup header")]
    NoSetupHeader,

    /// The bzImage does not offer the 64-bit boot protocol entry.
    #[error(
        "kernel {} has no 64-bit entry point (boot protocol {major}.{minor:02}, \
         XLF_KERNEL_64 not set); hvhost boots 64-bit kernels only", path.display()
    )]
    No64BitEntry {
        /// The kernel path.
        path: PathBuf,
        /// Boot protocol major version.
        major: u16,
        /// Boot protocol minor version.
        minor: u16,
    },

    /// The initramfs does not fit between the kernel and the top of low memory.
    #[error(
        "initrd {} ({size} bytes) does not fit in guest memory: {room} bytes are free \
         between the kernel and the top of low memory", path.display()
    )]
    InitrdTooLarge {
        /// The initrd path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// Bytes available for it.
        room: u64,
    },

    /// The command line is not usable.
    #[error("the kernel command line is not usable: {0}")]
    Cmdline(String),
}

/// A kernel in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct LoadedKernel {
    /// Where the vCPU starts in 64-bit mode.
    pub entry: u64,
    /// First byte past the loaded image.
    pub end: u64,
    /// The bzImage setup header (None for an ELF kernel).
    pub setup_header: Option<setup_header>,
}

fn open(what: &'static str, path: &Path) -> Result<File, LoadError> {
    File::open(path).map_err(|source| LoadError::File {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Loads the kernel at `path`: a bzImage at its preferred address (1 MiB), else an ELF
/// vmlinux at its physical addresses.
pub fn load_kernel(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel, LoadError> {
    let mut file = open("kernel image", path)?;
    let himem = Some(GuestAddress(HIMEM_START));
    let bz_err = match BzImage::load(mem, None, &mut file, himem) {
        Ok(res) => {
            let hdr = res.setup_header.ok_or(LoadError::NoSetupHeader)?;
            if hdr.xloadflags & XLF_KERNEL_64 == 0 {
                return Err(LoadError::No64BitEntry {
                    path: path.to_path_buf(),
                    major: hdr.version >> 8,
                    minor: hdr.version & 0xff,
                });
            }
            return Ok(LoadedKernel {
                entry: res.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
                end: res.kernel_end,
                setup_header: Some(hdr),
            });
        }
        Err(loader::Error::Bzimage(linux_loader::loader::bzimage::Error::InvalidBzImage)) => {
            loader::Error::Bzimage(linux_loader::loader::bzimage::Error::InvalidBzImage)
        }
        Err(source) => {
            return Err(LoadError::KernelLoad {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match Elf::load(mem, None, &mut file, himem) {
        Ok(res) => Ok(LoadedKernel {
            entry: res.kernel_load.0,
            end: res.kernel_end,
            setup_header: None,
        }),
        Err(
            elf_err @ loader::Error::Elf(
                loader::elf::Error::InvalidElfMagicNumber
                | loader::elf::Error::ReadElfHeader
                | loader::elf::Error::BigEndianElfOnLittle
                | loader::elf::Error::InvalidEntryAddress
                | loader::elf::Error::InvalidProgramHeaderSize
                | loader::elf::Error::InvalidProgramHeaderOffset,
            ),
        ) => Err(LoadError::NotAKernel {
            path: path.to_path_buf(),
            bzimage: bz_err,
            elf: elf_err,
        }),
        Err(source) => Err(LoadError::KernelLoad {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Where an initrd of `size` bytes goes: page-aligned, as high as possible below both the
/// top of low RAM and the kernel's `initrd_addr_max`, and above the kernel.
pub fn initrd_address(
    size: u64,
    kernel_end: u64,
    low_ram_end: u64,
    hdr: Option<&setup_header>,
) -> Option<u64> {
    let addr_max = match hdr {
        Some(h) if h.version >= 0x0203 && h.initrd_addr_max != 0 => u64::from(h.initrd_addr_max),
        Some(_) => DEFAULT_INITRD_ADDR_MAX,
        None => u64::from(u32::MAX),
    };
    let top = low_ram_end.min(addr_max.saturating_add(1));
    let addr = top.checked_sub(size)? & !(PAGE_SIZE - 1);
    (addr >= kernel_end.max(HIMEM_START)).then_some(addr)
}

/// Loads the initrd at `path`; returns (address, size).
pub fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel: &LoadedKernel,
    low_ram_end: u64,
) -> Result<(u64, u64), LoadError> {
    let mut file = open("initrd", path)?;
    let size = file
        .metadata()
        .map_err(|source| LoadError::File {
            what: "initrd",
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let addr = initrd_address(size, kernel.end, low_ram_end, kernel.setup_header.as_ref())
        .ok_or_else(|| LoadError::InitrdTooLarge {
            path: path.to_path_buf(),
            size,
            room: low_ram_end.saturating_sub(kernel.end.max(HIMEM_START)),
        })?;
    let len = usize::try_from(size).map_err(|_| LoadError::InitrdTooLarge {
        path: path.to_path_buf(),
        size,
        room: 0,
    })?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, len)
        .map_err(|e| LoadError::File {
            what: "initrd",
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })?;
    Ok((addr, size))
}

/// Checks `raw` and turns it into a linux-loader command line.
pub fn parse_cmdline(raw: &str) -> Result<Cmdline, LoadError> {
    if let Some(c) = raw.chars().find(|c| !matches!(c, ' '..='~')) {
        return Err(LoadError::Cmdline(format!(
            "it contains {c:?}; only printable ASCII is allowed"
        )));
    }
    if raw.len() >= CMDLINE_MAX_SIZE {
        return Err(LoadError::Cmdline(format!(
            "it is {} bytes long; at most {} are allowed",
            raw.len(),
            CMDLINE_MAX_SIZE - 1
        )));
    }
    Cmdline::try_from(raw, CMDLINE_MAX_SIZE).map_err(|e| LoadError::Cmdline(e.to_string()))
}

/// Writes the command line at [`CMDLINE_ADDR`]; returns its size including the NUL.
pub fn load_cmdline(mem: &GuestMemoryMmap, cmdline: &Cmdline) -> Result<u32, LoadError> {
    loader::load_cmdline(mem, GuestAddress(CMDLINE_ADDR), cmdline)
        .map_err(|e| LoadError::Cmdline(e.to_string()))?;
    let len = cmdline
        .as_cstring()
        .map_err(|e| LoadError::Cmdline(e.to_string()))?
        .as_bytes_with_nul()
        .len();
    Ok(u32::try_from(len).unwrap_or(u32::MAX))
}

/// Whether `[addr, addr + len)` is guest RAM.
pub fn is_ram(mem: &GuestMemoryMmap, addr: u64, len: usize) -> bool {
    GuestMemoryBackend::check_range(mem, GuestAddress(addr), len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLayout;
    use std::io::Write;

    fn mem() -> GuestMemoryMmap {
        MemoryLayout::new(64)
            .expect("valid")
            .create_guest_memory()
            .expect("mmap")
    }

    fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(bytes).expect("write");
        f
    }

    /// A tiny bzImage: a setup header with "HdrS", protocol 2.15, LOADED_HIGH, 64-bit entry.
    fn fake_bzimage(xloadflags: u16) -> Vec<u8> {
        let setup_sects = 1u8;
        let mut img = vec![0u8; (usize::from(setup_sects) + 1) * 512 + 4096];
        img[0x1f1] = setup_sects;
        img[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        img[0x211] = 0x1; // loadflags: LOADED_HIGH
        img[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
        img[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes()); // initrd_addr_max
        img[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        img[1024] = 0xf4; // first byte of the protected-mode kernel
        img
    }

    #[test]
    fn bzimage_loads_with_64bit_entry() {
        let f = temp_file(&fake_bzimage(XLF_KERNEL_64));
        let m = mem();
        let k = load_kernel(&m, f.path()).expect("loads");
        assert_eq!(k.entry, 0x10_0200);
        assert_eq!(k.end, 0x10_0000 + 4096);
        let b: u8 = m.read_obj(GuestAddress(0x10_0000)).expect("read");
        assert_eq!(b, 0xf4);
    }

    #[test]
    fn bzimage_without_64bit_entry_is_refused() {
        let f = temp_file(&fake_bzimage(0));
        let err = load_kernel(&mem(), f.path()).expect_err("no 64-bit entry");
        assert!(matches!(err, LoadError::No64BitEntry { .. }), "{err}");
    }

    #[test]
    fn missing_and_non_kernel_files_are_named_errors() {
        let err = load_kernel(&mem(), Path::new("/nonexistent/bzImage")).expect_err("missing");
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/bzImage") && msg.contains("kernel image"),
            "{msg}"
        );

        let f = temp_file(b"#!/bin/sh\necho this is not a kernel\n");
        let err = load_kernel(&mem(), f.path()).expect_err("not a kernel");
        assert!(matches!(err, LoadError::NotAKernel { .. }), "{err}");
        assert!(err.to_string().contains("is not a kernel image"), "{err}");

        let empty = temp_file(b"");
        assert!(load_kernel(&mem(), empty.path()).is_err());
    }

    #[test]
    fn initrd_goes_high_and_page_aligned() {
        let hdr = setup_header {
            version: 0x020f,
            initrd_addr_max: 0x37ff_ffff,
            ..Default::default()
        };
        let low_end = 256 << 20;
        let addr = initrd_address(10_000, 0x20_0000, low_end, Some(&hdr)).expect("fits");
        assert_eq!(addr % 4096, 0);
        assert!(addr + 10_000 <= low_end && addr + 10_000 + 4096 > low_end);
        // initrd_addr_max caps the top for big guests.
        let addr = initrd_address(4096, 0x20_0000, 0xc000_0000, Some(&hdr)).expect("fits");
        assert_eq!(addr, 0x3800_0000 - 4096);
        // Too big to fit above the kernel.
        assert_eq!(
            initrd_address(low_end, 0x20_0000, low_end, Some(&hdr)),
            None
        );
    }

    #[test]
    fn initrd_is_loaded() {
        let m = mem();
        let f = temp_file(&[0xab; 5000]);
        let k = LoadedKernel {
            entry: 0x10_0200,
            end: 0x20_0000,
            setup_header: None,
        };
        let (addr, size) = load_initrd(&m, f.path(), &k, 64 << 20).expect("loads");
        assert_eq!(size, 5000);
        assert!(is_ram(&m, addr, 5000));
        let b: u8 = m.read_obj(GuestAddress(addr + 4999)).expect("read");
        assert_eq!(b, 0xab);
        let err =
            load_initrd(&m, Path::new("/nonexistent/initrd"), &k, 64 << 20).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/initrd"));
    }

    #[test]
    fn cmdline_checks() {
        let m = mem();
        let c = parse_cmdline("console=ttyS0 reboot=k panic=-1 pci=off").expect("valid");
        let size = load_cmdline(&m, &c).expect("write");
        assert_eq!(
            size as usize,
            "console=ttyS0 reboot=k panic=-1 pci=off".len() + 1
        );
        let mut buf = [0u8; 14];
        m.read_slice(&mut buf, GuestAddress(CMDLINE_ADDR))
            .expect("read");
        assert_eq!(&buf, b"console=ttyS0 ");
        assert!(parse_cmdline("a\nb").is_err());
        assert!(parse_cmdline("caf\u{e9}").is_err());
        assert!(parse_cmdline(&"x".repeat(2048)).is_err());
        assert!(parse_cmdline(&"x".repeat(2047)).is_ok());
        assert!(parse_cmdline("").is_ok());
    }
}
