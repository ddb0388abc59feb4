// SPDX-License-Identifier: GPL-2.0

//! A SCSI disk over a [`DiskImage`]: executes one CDB against a data
//! buffer and says how it ended (SAM status, sense, bytes moved), as
//! SBC-3 and Linux's `sd` expect. The buffer is the guest's (a request's
//! pages) or, in tests, host memory, behind [`DataBuffer`].
//!
//! Errors never escape as Rust errors: every failure is a CHECK CONDITION
//! with the sense SCSI prescribes (ILLEGAL REQUEST for a bad CDB or an LBA
//! out of range, DATA PROTECT for a write to a read-only disk, MEDIUM
//! ERROR for a failed read or write, DATA PROTECT / SPACE ALLOCATION
//! FAILED when the host has no space), and the disk keeps it for REQUEST
//! SENSE.

use std::io;

use vmbus::scsi::{
    self, asc, sense_key, status, BlockLimits, Capacity, Command, Identity, ModeInfo, Sense,
    Transfer, UnmapList,
};

use super::image::DiskImage;

/// Logical block size of every disk (Linux's default; images are sized
/// in 512-byte sectors).
pub const BLOCK_SIZE: u32 = 512;
/// Most bytes one request may move (also the channel property
/// `max_transfer_bytes`).
pub const MAX_TRANSFER_BYTES: u32 = 1 << 20;
/// Bytes moved between the image and the buffer at a time.
const CHUNK: usize = 128 << 10;
/// Most block descriptors in one UNMAP.
pub const MAX_UNMAP_DESCRIPTORS: u32 = 64;
/// Most blocks one UNMAP or WRITE SAME may cover (1 GiB).
pub const MAX_UNMAP_BLOCKS: u32 = 1 << 21;

/// Where a command's data lives.
pub trait DataBuffer {
    /// Its length in bytes (what the request said it moves).
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `data` into the buffer at `offset` (device to guest).
    fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()>;
    /// Copies the buffer's bytes at `offset` into `out` (guest to device).
    fn read_at(&self, offset: usize, out: &mut [u8]) -> io::Result<()>;
}

impl DataBuffer for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        self.get_mut(offset..offset.saturating_add(data.len()))
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?
            .copy_from_slice(data);
        Ok(())
    }

    fn read_at(&self, offset: usize, out: &mut [u8]) -> io::Result<()> {
        out.copy_from_slice(
            self.get(offset..offset.saturating_add(out.len()))
                .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?,
        );
        Ok(())
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// SAM status.
    pub status: u8,
    /// Sense data, with CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Bytes moved to or from the buffer.
    pub moved: u32,
    /// What kind of command it was, for counters.
    pub kind: Kind,
}

/// Command kinds the counters tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A read (READ).
    Read,
    /// A write (WRITE, WRITE SAME).
    Write,
    /// A flush (SYNCHRONIZE CACHE, or a FUA write's sync).
    Flush,
    /// UNMAP or WRITE SAME with UNMAP.
    Discard,
    /// Anything else.
    Other,
}

impl Outcome {
    fn good(moved: usize, kind: Kind) -> Self {
        Self {
            status: status::GOOD,
            sense: None,
            moved: u32::try_from(moved).unwrap_or(u32::MAX),
            kind,
        }
    }

    fn check(sense: Sense, kind: Kind) -> Self {
        Self {
            status: status::CHECK_CONDITION,
            sense: Some(sense),
            moved: 0,
            kind,
        }
    }
}

/// The answer of a LUN: data to copy, or a failure.
type Answer = Result<usize, Sense>;

/// Per-disk counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Commands executed.
    pub commands: u64,
    /// Read commands.
    pub reads: u64,
    /// Write commands.
    pub writes: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Flushes.
    pub flushes: u64,
    /// Discards (UNMAP, WRITE SAME with UNMAP).
    pub discards: u64,
    /// Commands that ended in CHECK CONDITION.
    pub errors: u64,
}

/// One SCSI disk.
pub struct ScsiDisk {
    image: DiskImage,
    serial: String,
    /// The sense of the last failed command, for REQUEST SENSE.
    last_sense: Option<Sense>,
    counters: DiskCounters,
}

impl ScsiDisk {
    /// A disk over `image`, reporting `serial` (printable ASCII, cut to
    /// [`scsi::MAX_SERIAL`] bytes) as its unit serial number.
    pub fn new(image: DiskImage, serial: &str) -> Self {
        let serial = serial
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(scsi::MAX_SERIAL)
            .collect();
        Self {
            image,
            serial,
            last_sense: None,
            counters: DiskCounters::default(),
        }
    }

    /// The image.
    pub fn image(&self) -> &DiskImage {
        &self.image
    }

    /// The counters so far.
    pub fn counters(&self) -> DiskCounters {
        self.counters
    }

    fn blocks(&self) -> u64 {
        self.image.size() / u64::from(BLOCK_SIZE)
    }

    fn identity(&self) -> Identity<'_> {
        Identity {
            vendor: b"HVHOST  ",
            product: b"Virtual Disk    ",
            revision: b"1.0 ",
            serial: self.serial.as_bytes(),
        }
    }

    fn limits(&self) -> BlockLimits {
        let (unmap_blocks, unmap_descriptors) = if self.image.can_discard() {
            (MAX_UNMAP_BLOCKS, MAX_UNMAP_DESCRIPTORS)
        } else {
            (0, 0)
        };
        BlockLimits {
            max_transfer: MAX_TRANSFER_BYTES / BLOCK_SIZE,
            optimal_transfer: (128 << 10) / BLOCK_SIZE,
            max_unmap_blocks: unmap_blocks,
            max_unmap_descriptors: unmap_descriptors,
            unmap_granularity: 4096 / BLOCK_SIZE,
            max_write_same: u64::from(unmap_blocks),
        }
    }

    /// Executes `cdb` with `buf` as its data.
    pub fn execute(&mut self, cdb: &[u8], buf: &mut dyn DataBuffer) -> Outcome {
        self.counters.commands += 1;
        let (answer, kind) = match Command::parse(cdb) {
            Ok(cmd) => {
                let kind = kind_of(&cmd);
                (self.run(&cmd, buf), kind)
            }
            Err(e) => (Err(e.sense()), Kind::Other),
        };
        let outcome = match answer {
            Ok(moved) => Outcome::good(moved, kind),
            Err(sense) => Outcome::check(sense, kind),
        };
        self.count(&outcome);
        // REQUEST SENSE reports the last failure once.
        if !matches!(Command::parse(cdb), Ok(Command::RequestSense { .. })) {
            self.last_sense = outcome.sense;
        }
        outcome
    }

    fn count(&mut self, o: &Outcome) {
        let c = &mut self.counters;
        if o.status != status::GOOD {
            c.errors += 1;
            return;
        }
        match o.kind {
            Kind::Read => {
                c.reads += 1;
                c.bytes_read += u64::from(o.moved);
            }
            Kind::Write => {
                c.writes += 1;
                c.bytes_written += u64::from(o.moved);
            }
            Kind::Flush => c.flushes += 1,
            Kind::Discard => c.discards += 1,
            Kind::Other => {}
        }
    }

    fn run(&mut self, cmd: &Command, buf: &mut dyn DataBuffer) -> Answer {
        let invalid = |byte| {
            Sense::new(sense_key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_CDB)
                .with_field_pointer(byte)
        };
        match *cmd {
            Command::TestUnitReady | Command::NoOp(_) => Ok(0),
            Command::RequestSense { alloc } => {
                let sense = self
                    .last_sense
                    .take()
                    .unwrap_or(Sense::new(sense_key::NO_SENSE, (0, 0)));
                copy_out(buf, &sense.to_bytes(), usize::from(alloc))
            }
            Command::Inquiry {
                evpd: false, alloc, ..
            } => copy_out(
                buf,
                &scsi::inquiry(&self.identity(), true),
                usize::from(alloc),
            ),
            Command::Inquiry {
                evpd: true,
                page,
                alloc,
            } => {
                let data = scsi::vpd_page(
                    page,
                    &self.identity(),
                    &self.limits(),
                    self.image.can_discard(),
                )
                .ok_or(invalid(2))?;
                copy_out(buf, data.as_slice(), usize::from(alloc))
            }
            Command::ModeSense {
                ten,
                pc,
                page,
                subpage,
                alloc,
                ..
            } => {
                let info = ModeInfo {
                    write_protect: self.image.read_only(),
                    fua: true,
                    write_cache: true,
                };
                // Saved values (pc 3) are not kept.
                if pc == 3 {
                    return Err(Sense::new(sense_key::ILLEGAL_REQUEST, (0x39, 0x00)));
                }
                let data = scsi::mode_sense(ten, pc, page, subpage, &info).ok_or(invalid(2))?;
                copy_out(buf, data.as_slice(), usize::from(alloc))
            }
            Command::ReadCapacity10 => copy_out(buf, &scsi::read_capacity_10(&self.capacity()), 8),
            Command::ReadCapacity16 { alloc } => copy_out(
                buf,
                &scsi::read_capacity_16(&self.capacity()),
                usize::try_from(alloc).unwrap_or(usize::MAX),
            ),
            Command::Read(t) => self.read(t, buf),
            Command::Write(t) => self.write(t, buf),
            // VERIFY without BYTCHK and SYNCHRONIZE CACHE move no data: the
            // transfer limit is not theirs, only the disk's bounds. A cache
            // range of 0 blocks reaches to the end of the disk.
            Command::Verify(t) => self.in_disk(t.lba, t.blocks).map(|()| 0),
            Command::SynchronizeCache(t) => {
                self.in_disk(t.lba, t.blocks)?;
                self.image
                    .flush()
                    .map_err(|_| Sense::new(sense_key::MEDIUM_ERROR, asc::WRITE_ERROR))?;
                Ok(0)
            }
            Command::Unmap { param_len } => self.unmap(usize::from(param_len), buf),
            Command::WriteSame { range, unmap, ndob } => self.write_same(range, unmap, ndob, buf),
            // The controller answers REPORT LUNS for its bus.
            Command::ReportLuns { .. } => Err(Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::INVALID_COMMAND_OPERATION_CODE,
            )),
        }
    }

    fn capacity(&self) -> Capacity {
        Capacity {
            blocks: self.blocks(),
            block_size: BLOCK_SIZE,
            physical_exponent: 3,
            thin: self.image.can_discard(),
        }
    }

    /// The byte range of `t`, if it lies inside the disk and moves at
    /// most [`MAX_TRANSFER_BYTES`].
    fn range(&self, t: Transfer) -> Result<(u64, usize), Sense> {
        self.in_disk(t.lba, t.blocks)?;
        let bytes = u64::from(t.blocks) * u64::from(BLOCK_SIZE);
        if bytes > u64::from(MAX_TRANSFER_BYTES) {
            return Err(Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::INVALID_FIELD_IN_CDB,
            ));
        }
        Ok((t.lba * u64::from(BLOCK_SIZE), bytes as usize))
    }

    /// Whether `blocks` blocks from `lba` lie inside the disk (without
    /// wrapping): LBA OUT OF RANGE if not.
    fn in_disk(&self, lba: u64, blocks: u32) -> Result<(), Sense> {
        match lba.checked_add(u64::from(blocks)) {
            Some(end) if end <= self.blocks() => Ok(()),
            _ => Err(Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::LBA_OUT_OF_RANGE,
            )),
        }
    }

    /// The range of a data command whose buffer must hold all of it.
    fn data_range(&self, t: Transfer, buf: &dyn DataBuffer) -> Result<(u64, usize), Sense> {
        let (offset, bytes) = self.range(t)?;
        if buf.len() < bytes {
            // The request's length disagrees with its CDB.
            return Err(Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::INVALID_FIELD_IN_CDB,
            ));
        }
        Ok((offset, bytes))
    }

    fn read(&mut self, t: Transfer, buf: &mut dyn DataBuffer) -> Answer {
        let (offset, bytes) = self.data_range(t, buf)?;
        let medium = Sense::new(sense_key::MEDIUM_ERROR, asc::UNRECOVERED_READ_ERROR);
        let mut chunk = vec![0; CHUNK.min(bytes)];
        let mut done = 0;
        while done < bytes {
            let n = CHUNK.min(bytes - done);
            self.image
                .read_at(&mut chunk[..n], offset + done as u64)
                .map_err(|_| medium)?;
            buf.write_at(done, &chunk[..n]).map_err(|_| medium)?;
            done += n;
        }
        Ok(bytes)
    }

    fn write(&mut self, t: Transfer, buf: &mut dyn DataBuffer) -> Answer {
        if self.image.read_only() {
            return Err(Sense::new(sense_key::DATA_PROTECT, asc::WRITE_PROTECTED));
        }
        let (offset, bytes) = self.data_range(t, buf)?;
        let mut chunk = vec![0; CHUNK.min(bytes)];
        let mut done = 0;
        while done < bytes {
            let n = CHUNK.min(bytes - done);
            buf.read_at(done, &mut chunk[..n])
                .map_err(|_| Sense::new(sense_key::MEDIUM_ERROR, asc::WRITE_ERROR))?;
            self.image
                .write_at(&chunk[..n], offset + done as u64)
                .map_err(write_error)?;
            done += n;
        }
        if t.fua {
            self.image.flush().map_err(write_error)?;
            self.counters.flushes += 1;
        }
        Ok(bytes)
    }

    fn unmap(&mut self, param_len: usize, buf: &mut dyn DataBuffer) -> Answer {
        if self.image.read_only() {
            return Err(Sense::new(sense_key::DATA_PROTECT, asc::WRITE_PROTECTED));
        }
        if !self.image.can_discard() {
            return Err(Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::INVALID_COMMAND_OPERATION_CODE,
            ));
        }
        if param_len > buf.len() || param_len > 8 + 16 * MAX_UNMAP_DESCRIPTORS as usize {
            return Err(Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::PARAMETER_LIST_LENGTH_ERROR,
            ));
        }
        let mut params = vec![0; param_len];
        buf.read_at(0, &mut params).map_err(|_| {
            Sense::new(sense_key::ILLEGAL_REQUEST, asc::PARAMETER_LIST_LENGTH_ERROR)
        })?;
        let list = UnmapList::parse(&params).map_err(|e| e.sense())?;
        let mut total = 0u64;
        for (lba, blocks) in list.ranges() {
            self.in_disk(lba, blocks)?;
            total += u64::from(blocks);
        }
        if total > u64::from(MAX_UNMAP_BLOCKS) {
            return Err(Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::INVALID_FIELD_IN_PARAMETER_LIST,
            ));
        }
        for (lba, blocks) in list.ranges() {
            self.image
                .discard(
                    lba * u64::from(BLOCK_SIZE),
                    u64::from(blocks) * u64::from(BLOCK_SIZE),
                )
                .map_err(write_error)?;
        }
        Ok(param_len)
    }

    fn write_same(
        &mut self,
        range: Transfer,
        unmap: bool,
        ndob: bool,
        buf: &mut dyn DataBuffer,
    ) -> Answer {
        if self.image.read_only() {
            return Err(Sense::new(sense_key::DATA_PROTECT, asc::WRITE_PROTECTED));
        }
        self.in_disk(range.lba, range.blocks)?;
        if range.blocks == 0 || range.blocks > MAX_UNMAP_BLOCKS {
            return Err(
                Sense::new(sense_key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_CDB)
                    .with_field_pointer(10),
            );
        }
        let mut block = vec![0; BLOCK_SIZE as usize];
        if !ndob {
            if buf.len() < block.len() {
                return Err(Sense::new(
                    sense_key::ILLEGAL_REQUEST,
                    asc::INVALID_FIELD_IN_CDB,
                ));
            }
            buf.read_at(0, &mut block)
                .map_err(|_| Sense::new(sense_key::MEDIUM_ERROR, asc::WRITE_ERROR))?;
        }
        let offset = range.lba * u64::from(BLOCK_SIZE);
        let bytes = u64::from(range.blocks) * u64::from(BLOCK_SIZE);
        // Unmapped blocks read as zeroes (LBPRZ), so zeroes with UNMAP
        // become a hole.
        if unmap && self.image.can_discard() && block.iter().all(|b| *b == 0) {
            self.image.discard(offset, bytes).map_err(write_error)?;
            self.counters.discards += 1;
            return Ok(if ndob { 0 } else { block.len() });
        }
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() + block.len() <= CHUNK {
            chunk.extend_from_slice(&block);
        }
        let mut done = 0u64;
        while done < bytes {
            let n = (bytes - done).min(chunk.len() as u64) as usize;
            self.image
                .write_at(&chunk[..n], offset + done)
                .map_err(write_error)?;
            done += n as u64;
        }
        Ok(if ndob { 0 } else { block.len() })
    }
}

/// The sense of a failed image write: no space is its own case (Linux
/// maps it to `BLK_STS_NOSPC`).
fn write_error(e: io::Error) -> Sense {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        Sense::new(sense_key::DATA_PROTECT, asc::SPACE_ALLOCATION_FAILED)
    } else {
        Sense::new(sense_key::MEDIUM_ERROR, asc::WRITE_ERROR)
    }
}

fn kind_of(cmd: &Command) -> Kind {
    match cmd {
        Command::Read(_) => Kind::Read,
        Command::Write(_) => Kind::Write,
        Command::WriteSame { unmap: true, .. } | Command::Unmap { .. } => Kind::Discard,
        Command::WriteSame { .. } => Kind::Write,
        Command::SynchronizeCache(_) => Kind::Flush,
        _ => Kind::Other,
    }
}

/// Copies response `data` into `buf`, at most `alloc` bytes and what the
/// buffer holds; the bytes moved.
fn copy_out(buf: &mut dyn DataBuffer, data: &[u8], alloc: usize) -> Answer {
    let n = data.len().min(alloc).min(buf.len());
    buf.write_at(0, &data[..n])
        .map_err(|_| Sense::new(sense_key::HARDWARE_ERROR, asc::INTERNAL_TARGET_FAILURE))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn disk(bytes: u64, read_only: bool) -> (tempfile::NamedTempFile, ScsiDisk) {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        f.as_file().set_len(bytes).expect("size");
        let image = DiskImage::open(f.path(), read_only).expect("open");
        (f, ScsiDisk::new(image, "disk-0 lun\t0"))
    }

    fn sense_of(o: &Outcome) -> (u8, asc::Code) {
        let s = o.sense.expect("sense");
        (s.key, s.code)
    }

    #[test]
    fn probe_commands_answer_as_sd_expects() {
        let (_f, mut d) = disk(1 << 20, false);
        let mut buf = vec![0; 96];
        let o = d.execute(&[0x12, 0, 0, 0, 96, 0], &mut buf);
        assert_eq!((o.status, o.moved), (status::GOOD, 36));
        assert_eq!(&buf[8..16], b"HVHOST  ");
        // Serial: printable ASCII only.
        let o = d.execute(&[0x12, 1, 0x80, 0, 96, 0], &mut buf);
        assert_eq!(o.status, status::GOOD);
        assert_eq!(&buf[4..4 + 10], b"disk-0lun0");
        let mut rc = vec![0; 32];
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9e;
        cdb[1] = 0x10;
        cdb[13] = 32;
        assert_eq!(d.execute(&cdb, &mut rc).status, status::GOOD);
        let cap = scsi::parse_read_capacity_16(&rc).expect("capacity");
        assert_eq!((cap.blocks, cap.block_size, cap.thin), (2048, 512, true));
        let mut ms = vec![0; 64];
        let o = d.execute(&[0x1a, 0, 0x3f, 0, 64, 0], &mut ms);
        assert_eq!(o.status, status::GOOD);
        let info = scsi::parse_mode_sense(false, &ms[..o.moved as usize]).expect("mode");
        assert!(!info.write_protect && info.fua && info.write_cache);
        // An unknown VPD page is an invalid field, then REQUEST SENSE says so once.
        let o = d.execute(&[0x12, 1, 0x89, 0, 96, 0], &mut buf);
        assert_eq!(
            sense_of(&o),
            (sense_key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_CDB)
        );
        let mut s = vec![0; 18];
        assert_eq!(
            d.execute(&[0x03, 0, 0, 0, 18, 0], &mut s).status,
            status::GOOD
        );
        assert_eq!(
            Sense::parse(&s).map(|s| s.code),
            Some(asc::INVALID_FIELD_IN_CDB)
        );
        assert_eq!(
            d.execute(&[0x03, 0, 0, 0, 18, 0], &mut s).status,
            status::GOOD
        );
        assert_eq!(Sense::parse(&s).map(|s| s.key), Some(sense_key::NO_SENSE));
    }

    #[test]
    fn data_round_trips_and_ranges_are_checked() {
        let (f, mut d) = disk(1 << 20, false);
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = data.clone();
        let write = Command::rw16(
            true,
            Transfer {
                lba: 100,
                blocks: 16,
                fua: true,
            },
        );
        let o = d.execute(&write, &mut w);
        assert_eq!((o.status, o.moved), (status::GOOD, 8192));
        let mut r = vec![0; 8192];
        let read = Command::rw16(
            false,
            Transfer {
                lba: 100,
                blocks: 16,
                fua: false,
            },
        );
        assert_eq!(d.execute(&read, &mut r).status, status::GOOD);
        assert_eq!(r, data);
        let mut on_disk = vec![0; 8192];
        std::os::unix::fs::FileExt::read_exact_at(f.as_file(), &mut on_disk, 100 * 512)
            .expect("read");
        assert_eq!(on_disk, data);
        // Past the end, and wrapping.
        let past = Command::rw16(
            false,
            Transfer {
                lba: 2040,
                blocks: 16,
                fua: false,
            },
        );
        assert_eq!(
            sense_of(&d.execute(&past, &mut r)),
            (sense_key::ILLEGAL_REQUEST, asc::LBA_OUT_OF_RANGE)
        );
        let wrap = Command::rw16(
            false,
            Transfer {
                lba: u64::MAX,
                blocks: 2,
                fua: false,
            },
        );
        assert_eq!(
            sense_of(&d.execute(&wrap, &mut r)),
            (sense_key::ILLEGAL_REQUEST, asc::LBA_OUT_OF_RANGE)
        );
        // A buffer shorter than the CDB's length.
        let mut short = vec![0; 4096];
        assert_eq!(
            sense_of(&d.execute(&read, &mut short)),
            (sense_key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_CDB)
        );
        // Over the transfer limit.
        let huge = Command::rw16(
            false,
            Transfer {
                lba: 0,
                blocks: 2048 + 1,
                fua: false,
            },
        );
        assert_eq!(d.execute(&huge, &mut r).status, status::CHECK_CONDITION);
        let c = d.counters();
        assert_eq!(
            (c.reads, c.writes, c.bytes_read, c.bytes_written, c.flushes),
            (1, 1, 8192, 8192, 1)
        );
        assert_eq!(c.errors, 4);
    }

    #[test]
    fn read_only_disks_refuse_writes_and_say_so() {
        let (_f, mut d) = disk(1 << 20, true);
        let mut ms = vec![0; 64];
        let o = d.execute(&[0x5a, 0, 0x08, 0, 0, 0, 0, 0, 64, 0], &mut ms);
        assert!(
            scsi::parse_mode_sense(true, &ms[..o.moved as usize])
                .expect("mode")
                .write_protect
        );
        let mut w = vec![1; 512];
        let o = d.execute(
            &Command::rw16(
                true,
                Transfer {
                    lba: 0,
                    blocks: 1,
                    fua: false,
                },
            ),
            &mut w,
        );
        assert_eq!(
            sense_of(&o),
            (sense_key::DATA_PROTECT, asc::WRITE_PROTECTED)
        );
        let mut params = vec![0; 24];
        let n = scsi::unmap_list(&[(0, 8)], &mut params).expect("list");
        let o = d.execute(&[0x42, 0, 0, 0, 0, 0, 0, 0, n as u8, 0], &mut params);
        assert_eq!(
            sense_of(&o),
            (sense_key::DATA_PROTECT, asc::WRITE_PROTECTED)
        );
        let mut v = vec![0; 512];
        let mut rc = vec![0; 32];
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9e;
        cdb[1] = 0x10;
        cdb[13] = 32;
        d.execute(&cdb, &mut rc);
        assert!(!scsi::parse_read_capacity_16(&rc).expect("cap").thin);
        assert_eq!(
            d.execute(&[0x12, 1, 0xb2, 0, 64, 0], &mut v).status,
            status::GOOD
        );
        assert_eq!(v[5], 0, "no UNMAP on a read-only disk");
    }

    #[test]
    fn unmap_and_write_same_punch_holes() {
        let (f, mut d) = disk(4 << 20, false);
        let mut fill = vec![0x77; 1 << 20];
        for lba in (0..8192).step_by(2048) {
            let cdb = Command::rw16(
                true,
                Transfer {
                    lba,
                    blocks: 2048,
                    fua: false,
                },
            );
            assert_eq!(d.execute(&cdb, &mut fill).status, status::GOOD);
        }
        f.as_file().sync_all().expect("sync");
        let blocks = || f.as_file().metadata().expect("meta").blocks();
        let before = blocks();
        let mut params = vec![0; 40];
        let n = scsi::unmap_list(&[(0, 2048), (4096, 2048)], &mut params).expect("list");
        let o = d.execute(&[0x42, 0, 0, 0, 0, 0, 0, 0, n as u8, 0], &mut params);
        assert_eq!(o.status, status::GOOD);
        let after_unmap = blocks();
        assert!(after_unmap < before, "{before} -> {after_unmap}");
        // WRITE SAME (16) with UNMAP and no data buffer.
        let mut ws = [0u8; 16];
        ws[0] = 0x93;
        ws[1] = 0x08 | 0x01;
        ws[2..10].copy_from_slice(&2048u64.to_be_bytes());
        ws[10..14].copy_from_slice(&2048u32.to_be_bytes());
        assert_eq!(d.execute(&ws, &mut Vec::new()).status, status::GOOD);
        assert!(blocks() < after_unmap);
        let mut r = vec![0xff; 4096];
        assert_eq!(
            d.execute(
                &Command::rw16(
                    false,
                    Transfer {
                        lba: 2048,
                        blocks: 8,
                        fua: false
                    }
                ),
                &mut r
            )
            .status,
            status::GOOD
        );
        assert!(r.iter().all(|b| *b == 0));
        // A descriptor past the end refuses the whole list.
        let n = scsi::unmap_list(&[(0, 8), (8190, 8)], &mut params).expect("list");
        let o = d.execute(&[0x42, 0, 0, 0, 0, 0, 0, 0, n as u8, 0], &mut params);
        assert_eq!(
            sense_of(&o),
            (sense_key::ILLEGAL_REQUEST, asc::LBA_OUT_OF_RANGE)
        );
        // A parameter length over the buffer.
        let o = d.execute(&[0x42, 0, 0, 0, 0, 0, 0, 0, 200, 0], &mut params);
        assert_eq!(
            sense_of(&o),
            (sense_key::ILLEGAL_REQUEST, asc::PARAMETER_LIST_LENGTH_ERROR)
        );
        // WRITE SAME with data writes the block everywhere.
        let mut block = vec![0x3c; 512];
        ws[1] = 0;
        ws[10..14].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(d.execute(&ws, &mut block).status, status::GOOD);
        assert_eq!(
            d.execute(
                &Command::rw16(
                    false,
                    Transfer {
                        lba: 2048,
                        blocks: 8,
                        fua: false
                    }
                ),
                &mut r
            )
            .status,
            status::GOOD
        );
        assert!(r[..2048].iter().all(|b| *b == 0x3c) && r[2048..].iter().all(|b| *b == 0));
    }

    #[test]
    fn verify_and_sync_cache_check_bounds_not_the_transfer_limit() {
        let (_f, mut d) = disk(4 << 20, false);
        let mut none = Vec::new();
        // 4 MiB of blocks: over the 1 MiB transfer limit, inside the disk.
        let mut sync = [0u8; 16];
        sync[0] = 0x91;
        sync[10..14].copy_from_slice(&8192u32.to_be_bytes());
        assert_eq!(d.execute(&sync, &mut none).status, status::GOOD);
        let verify = [0x2f, 0, 0, 0, 0, 0, 0, 0x20, 0, 0];
        assert_eq!(d.execute(&verify, &mut none).status, status::GOOD);
        // Past the end, still refused.
        sync[10..14].copy_from_slice(&8193u32.to_be_bytes());
        assert_eq!(
            sense_of(&d.execute(&sync, &mut none)),
            (sense_key::ILLEGAL_REQUEST, asc::LBA_OUT_OF_RANGE)
        );
        let mut whole = [0u8; 10];
        whole[0] = 0x35;
        whole[2..6].copy_from_slice(&8193u32.to_be_bytes());
        assert_eq!(
            sense_of(&d.execute(&whole, &mut none)),
            (sense_key::ILLEGAL_REQUEST, asc::LBA_OUT_OF_RANGE)
        );
        whole[2..6].copy_from_slice(&8192u32.to_be_bytes());
        assert_eq!(d.execute(&whole, &mut none).status, status::GOOD);
    }

    #[test]
    fn bad_cdbs_are_check_conditions() {
        let (_f, mut d) = disk(1 << 20, false);
        let mut buf = vec![0; 64];
        assert_eq!(
            sense_of(&d.execute(&[0xc1; 16], &mut buf)),
            (
                sense_key::ILLEGAL_REQUEST,
                asc::INVALID_COMMAND_OPERATION_CODE
            )
        );
        assert_eq!(d.execute(&[], &mut buf).status, status::CHECK_CONDITION);
        assert_eq!(
            d.execute(&[0x28, 0], &mut buf).status,
            status::CHECK_CONDITION
        );
        assert_eq!(d.counters().errors, 3);
    }
}
