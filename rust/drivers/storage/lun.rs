// SPDX-License-Identifier: GPL-2.0

//! A LUN of the controller as a disk: what the probe asks the device
//! (INQUIRY, READ CAPACITY (16), the Block Limits VPD page, MODE SENSE's
//! caching page), the disk made from the answers, and how its requests
//! become SCSI commands.
//!
//! Probe commands go on the primary channel as the channel's own requests
//! (IDs above the tags'), with a page of this module's as the data buffer;
//! what the host wrote there is copied out once and only the copy is
//! parsed.


use kernel::block::mq::Request;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::{Acquire, Atomic, Relaxed};
use kernel::sync::Arc;

use super::queue::Io;
use super::{Controller, DiskOps, INIT_TIMEOUT_MS};
use crate::block::{self, Disk, DiskParams, Op};
use crate::shim::{self, SharedPage};
use crate::vmbus::gpadl::GpadlRange;
use crate::vmbus::scsi::{self, BlockLimits, Capacity, Command, ModeInfo, Transfer};
use crate::vmbus::vstor::{direction, operation, Outcome, VmscsiRequest, VstorPacket, VSTOR_PACKET_SIZE};

/// Most disks at once, over all controllers (`hvda` .. ).
const MAX_DISKS: u32 = 64;
/// Which disk names are taken: bit `i` for index `i`.
static NAMES: Atomic<u64> = Atomic::new(0);

/// A disk name index, released when dropped.
struct NameIndex(u32);

impl NameIndex {
    fn take() -> Result<Self> {
        let mut cur = NAMES.load(Relaxed);
        loop {
            let i = (!cur).trailing_zeros();
            if i >= MAX_DISKS {
                return Err(ENOSPC);
            }
            match NAMES.cmpxchg(cur, cur | 1 << i, Relaxed) {
                Ok(_) => return Ok(Self(i)),
                Err(now) => cur = now,
            }
        }
    }

    /// `hvd` and letters, as disks are named: a..z, then aa..zz.
    fn name(&self) -> Result<CString> {
        let i = self.0;
        if i < 26 {
            CString::try_from_fmt(fmt!("hvd{}", char::from(b'a' + i as u8)))
        } else {
            let (hi, lo) = (i / 26 - 1, i % 26);
            CString::try_from_fmt(fmt!(
                "hvd{}{}",
                char::from(b'a' + hi as u8),
                char::from(b'a' + lo as u8)
            ))
        }
    }
}

impl Drop for NameIndex {
    fn drop(&mut self) {
        let mut cur = NAMES.load(Relaxed);
        while let Err(now) = NAMES.cmpxchg(cur, cur & !(1 << self.0), Relaxed) {
            cur = now;
        }
    }
}

/// What debugfs shows of a disk.
struct LunCounters {
    reads: Atomic<u64>,
    writes: Atomic<u64>,
    /// Writes through the device's cache (FUA).
    fua_writes: Atomic<u64>,
    flushes: Atomic<u64>,
    discards: Atomic<u64>,
    /// Requests refused before they were sent (read-only, unsupported,
    /// controller gone).
    refused: Atomic<u64>,
}

impl LunCounters {
    const fn new() -> Self {
        Self {
            reads: Atomic::new(0),
            writes: Atomic::new(0),
            fua_writes: Atomic::new(0),
            flushes: Atomic::new(0),
            discards: Atomic::new(0),
            refused: Atomic::new(0),
        }
    }
}

/// A disk's requests: the queue data of its blk-mq queue.
pub(crate) struct Lun {
    ctl: Arc<Controller>,
    lun: u8,
    /// log2 of the logical block size over 512.
    block_shift: u32,
    read_only: bool,
    counters: LunCounters,
}

impl Lun {
    /// `queue_rq`: `rq` as a SCSI command on the queue blk-mq chose.
    pub(super) fn submit(&self, rq: ARef<Request<DiskOps>>) -> Result {
        let info = block::describe(&rq);
        let refuse = |e| {
            self.counters.refused.add(1, Relaxed);
            Err(e)
        };
        if self.ctl.dead.load(Acquire) {
            return refuse(EIO);
        }
        let Some(queue) = self.ctl.queues.get(usize::from(info.hwq)) else {
            return refuse(EIO);
        };
        let shift = self.block_shift;
        let lba = info.sector >> shift;
        let blocks = info.bytes >> (9 + shift);
        let t = Transfer {
            lba,
            blocks,
            fua: info.fua,
        };
        let io = match info.op {
            Op::Read => {
                self.counters.reads.add(1, Relaxed);
                Io::Read(t)
            }
            Op::Write if self.read_only => return refuse(EIO),
            Op::Write => {
                self.counters.writes.add(1, Relaxed);
                if t.fua {
                    self.counters.fua_writes.add(1, Relaxed);
                }
                Io::Write(t)
            }
            Op::Flush => {
                self.counters.flushes.add(1, Relaxed);
                Io::Flush
            }
            Op::Discard if self.read_only => return refuse(EIO),
            Op::Discard => {
                self.counters.discards.add(1, Relaxed);
                Io::Discard { lba, blocks }
            }
            Op::Other => return refuse(EOPNOTSUPP),
        };
        queue.submit(self.lun, io, &info, rq)
    }
}

/// A LUN with its disk.
pub(super) struct LunDisk {
    lun: Arc<Lun>,
    params: DiskParams,
    // Dropped before the name is free again.
    _disk: Disk<DiskOps>,
    _name: NameIndex,
}

impl LunDisk {
    /// Probes `lun`: `None` if no disk is there.
    pub(super) fn probe(ctl: &Controller, lun: u8) -> Result<Option<Self>> {
        let page = SharedPage::new()?;
        let mut buf = [0u8; 64];
        let n = command(ctl, &page, lun, Command::Inquiry { evpd: false, page: 0, alloc: 36 }, &mut buf)?;
        if !scsi::parse_inquiry(&buf[..n]).map_err(|_| EIO)?.is_disk() {
            return Ok(None);
        }
        let n = command(ctl, &page, lun, Command::ReadCapacity16 { alloc: 32 }, &mut buf)?;
        let cap = scsi::parse_read_capacity_16(&buf[..n]).map_err(|e| {
            pr_err!("storage: LUN {}: READ CAPACITY (16): {:?}\n", lun, e);
            EIO
        })?;
        // Optional pages: a device without them gets the defaults.
        let limits = command(ctl, &page, lun, Command::Inquiry { evpd: true, page: 0xb0, alloc: 64 }, &mut buf)
            .ok()
            .and_then(|n| scsi::parse_block_limits(&buf[..n]).ok())
            .unwrap_or_default();
        let mode_cmd = Command::ModeSense {
            ten: true,
            dbd: true,
            pc: 0,
            page: scsi::CACHING_PAGE,
            subpage: 0,
            alloc: 64,
        };
        let mode = command(ctl, &page, lun, mode_cmd, &mut buf)
            .ok()
            .and_then(|n| scsi::parse_mode_sense(true, &buf[..n]).ok())
            .unwrap_or(ModeInfo {
                write_protect: false,
                fua: false,
                write_cache: false,
            });
        let name = NameIndex::take()?;
        let params = disk_params(ctl, &cap, &limits, &mode, name.name()?)?;
        let l = Arc::new(
            Lun {
                ctl: ctl.self_arc(),
                lun,
                block_shift: cap.block_size.trailing_zeros() - 9,
                read_only: mode.write_protect,
                counters: LunCounters::new(),
            },
            GFP_KERNEL,
        )?;
        let disk = Disk::add(ctl.tagset.clone(), &params, l.clone())?;
        pr_info!(
            "storage: LUN {} is {}: {} sectors of {} bytes{}\n",
            lun,
            params.name.to_str().unwrap_or("?"),
            params.capacity_sectors,
            params.logical_block_size,
            if params.read_only { ", read-only" } else { "" }
        );
        Ok(Some(Self {
            lun: l,
            params,
            _disk: disk,
            _name: name,
        }))
    }

    pub(super) fn lun(&self) -> u8 {
        self.lun.lun
    }

    /// The debugfs line of this disk.
    pub(super) fn show(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let p = &self.params;
        let c = &self.lun.counters;
        writeln!(
            f,
            "disk name={} lun={} sectors={} logical_block_size={} physical_block_size={} max_sectors={} max_segments={} read_only={} write_cache={} fua={} discard_max_sectors={} reads={} writes={} fua_writes={} flushes={} discards={} refused={}",
            p.name.to_str().unwrap_or("?"),
            self.lun.lun,
            p.capacity_sectors,
            p.logical_block_size,
            p.physical_block_size,
            p.max_hw_sectors,
            p.max_segments,
            u8::from(p.read_only),
            u8::from(p.write_cache),
            u8::from(p.fua),
            p.max_discard_sectors,
            c.reads.load(Relaxed),
            c.writes.load(Relaxed),
            c.fua_writes.load(Relaxed),
            c.flushes.load(Relaxed),
            c.discards.load(Relaxed),
            c.refused.load(Relaxed),
        )
    }
}

/// The disk's parameters from the device's answers and the controller's
/// transfer limit.
fn disk_params(
    ctl: &Controller,
    cap: &Capacity,
    limits: &BlockLimits,
    mode: &ModeInfo,
    name: CString,
) -> Result<DiskParams> {
    let lbs = cap.block_size;
    // The crate's own check (512 ..= PAGE_SIZE, a power of two).
    kernel::block::mq::gen_disk::GenDiskBuilder::validate_block_size(lbs)?;
    let physical = lbs
        .checked_shl(cap.physical_exponent.into())
        .filter(|p| *p <= 1 << 20)
        .unwrap_or(lbs);
    let per_block = u64::from(lbs / 512);
    let capacity_sectors = cap.blocks.checked_mul(per_block).ok_or(EOVERFLOW)?;
    let mut max_bytes = ctl.max_transfer;
    if limits.max_transfer != 0 {
        let device = u64::from(limits.max_transfer) * u64::from(lbs);
        max_bytes = max_bytes.min(u32::try_from(device).unwrap_or(u32::MAX)) & !4095;
    }
    let max_bytes = max_bytes.max(4096);
    let (max_discard_sectors, discard_granularity) = if cap.thin && limits.max_unmap_blocks != 0 {
        let sectors = u64::from(limits.max_unmap_blocks) * per_block;
        (
            u32::try_from(sectors).unwrap_or(u32::MAX),
            limits.unmap_granularity.max(1).saturating_mul(lbs),
        )
    } else {
        (0, 0)
    };
    Ok(DiskParams {
        name,
        capacity_sectors,
        logical_block_size: lbs,
        physical_block_size: physical,
        max_hw_sectors: max_bytes / 512,
        max_segments: u16::try_from(max_bytes / 4096 + 1).unwrap_or(u16::MAX),
        max_discard_sectors,
        discard_granularity,
        write_cache: mode.write_cache,
        fua: mode.fua,
        read_only: mode.write_protect,
    })
}

/// Sends `cmd` to `lun` on the primary channel with `page` as the data-in
/// buffer and copies what came back into `out`; the bytes copied. A
/// command that did not succeed is `EIO`.
fn command(ctl: &Controller, page: &SharedPage, lun: u8, cmd: Command, out: &mut [u8]) -> Result<usize> {
    use zerocopy::IntoBytes;
    let cdb = cmd.cdb().ok_or(EINVAL)?;
    let len = u32::try_from(out.len()).map_err(|_| EINVAL)?;
    let vm = VmscsiRequest::command(lun, cdb.as_slice(), direction::READ, len);
    let pkt = VstorPacket::request(operation::EXECUTE_SRB).with_body(&vm);
    let pfns = [page.phys() >> 12];
    let range = [GpadlRange {
        byte_count: len,
        byte_offset: 0,
        pfns: &pfns,
    }];
    let mut reply = [0u8; VSTOR_PACKET_SIZE];
    let n = ctl
        .primary
        .request_with_pages(&range, pkt.as_bytes(), &mut reply, INIT_TIMEOUT_MS)?;
    let p = VstorPacket::from_data(&reply[..n])
        .filter(|p| p.operation == operation::COMPLETE_IO)
        .ok_or(EIO)?;
    let done: VmscsiRequest = p.body_as().ok_or(EIO)?;
    let moved = done.data_transfer_length.min(len);
    if done.outcome(done.data_transfer_length) != Outcome::Done {
        return Err(EIO);
    }
    let moved = moved as usize;
    // SAFETY: `page` is a whole page and `moved <= out.len() <= 4096`;
    // `out` is ours.
    unsafe { shim::copy_shared(out.as_mut_ptr(), page.as_ptr(), moved) };
    Ok(moved)
}

/// The LUNs the controller reports.
pub(super) fn report_luns(ctl: &Controller) -> Result<KVec<u8>> {
    let page = SharedPage::new()?;
    let mut buf = [0u8; 8 + 8 * 32];
    let n = command(ctl, &page, 0, Command::ReportLuns { select: 0, alloc: buf.len() as u32 }, &mut buf)?;
    let mut luns = KVec::new();
    for l in scsi::parse_report_luns(&buf[..n]).map_err(|_| EIO)? {
        if !luns.contains(&l) {
            luns.push(l, GFP_KERNEL)?;
        }
    }
    Ok(luns)
}
