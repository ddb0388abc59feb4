// SPDX-License-Identifier: GPL-2.0

//! One hardware queue of the controller: a channel (the primary or a
//! sub-channel) and the requests in flight on it.
//!
//! A request goes out as one packet: a VSTOR EXECUTE_SRB with the SCSI
//! command, GPA-direct with the PFNs of the request's pages when it moves
//! data. Its transaction ID is the request's blk-mq unique tag plus one in
//! the low 32 bits, as storvsc numbers them, and a per-queue sequence
//! number in bits 32..62: a completion must match both, so an answer that
//! comes after its request timed out (and the tag was reused) completes
//! nothing. IDs from bit 63 up are the channel's own requests
//! (`REQUEST_ID_BASE`).
//!
//! The table of requests in flight is indexed by tag. A request is in it
//! from just before its packet is written until its completion, timeout
//! or the controller's shutdown takes it out; whoever takes it ends it,
//! so every request ends exactly once.

use kernel::block::mq::Request;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_spinlock, Arc, SpinLock};
use kernel::time::{Instant, Monotonic};

use super::{DiskOps, DEPTH, MAX_PFNS};
use crate::block::{self, RequestInfo};
use crate::bus::channel::Channel;
use crate::shim::{self, SharedPage};
use crate::vmbus::gpadl::GpadlRange;
use crate::vmbus::packet::PacketFlags;
use crate::vmbus::scsi::{self, Command, Transfer};
use crate::vmbus::vstor::{direction, operation, Outcome, VmscsiRequest, VstorPacket};

/// Bytes of the UNMAP parameter list slot of each tag in the queue's
/// UNMAP page (a list with one descriptor is 24 bytes).
const UNMAP_SLOT: usize = 32;
const _: () = assert!(UNMAP_SLOT * DEPTH as usize <= 4096);
const UNMAP_LIST_LEN: usize = 8 + scsi::UNMAP_DESCRIPTOR_LEN;

/// What a request asks of the disk, in its logical blocks.
#[derive(Clone, Copy)]
pub(super) enum Io {
    Read(Transfer),
    Write(Transfer),
    Flush,
    Discard { lba: u64, blocks: u32 },
}

/// A request in flight.
struct Slot {
    rq: ARef<Request<DiskOps>>,
    id: u64,
    sent: Instant<Monotonic>,
    /// Bytes a data command must move; `None` for the others.
    expect: Option<u32>,
}

/// What debugfs shows of a queue.
pub(super) struct QueueCounters {
    pub(super) submitted: Atomic<u64>,
    pub(super) completed: Atomic<u64>,
    pub(super) errors: Atomic<u64>,
    pub(super) timeouts: Atomic<u64>,
    /// Completions whose ID matched no request in flight.
    pub(super) unknown_id: Atomic<u64>,
    /// Completions too short, or not COMPLETE_IO.
    pub(super) bad_packets: Atomic<u64>,
    /// Sends refused for a full ring (blk-mq retried them).
    pub(super) ring_full: Atomic<u64>,
    /// Requests failed by the controller's shutdown.
    pub(super) aborted: Atomic<u64>,
}

impl QueueCounters {
    const fn new() -> Self {
        Self {
            submitted: Atomic::new(0),
            completed: Atomic::new(0),
            errors: Atomic::new(0),
            timeouts: Atomic::new(0),
            unknown_id: Atomic::new(0),
            bad_packets: Atomic::new(0),
            ring_full: Atomic::new(0),
            aborted: Atomic::new(0),
        }
    }
}

/// One hardware queue.
#[pin_data]
pub(super) struct Queue {
    pub(super) ch: Arc<Channel>,
    #[pin]
    slots: SpinLock<KVec<Option<Slot>>>,
    /// The PFNs of the request being sent.
    #[pin]
    scratch: SpinLock<KVec<u64>>,
    /// One UNMAP parameter list per tag, which the host reads.
    unmap: SharedPage,
    seq: Atomic<u32>,
    pub(super) counters: QueueCounters,
}

impl Queue {
    pub(super) fn new(ch: Arc<Channel>) -> Result<Arc<Self>> {
        let mut slots = KVec::with_capacity(DEPTH.into(), GFP_KERNEL)?;
        for _ in 0..DEPTH {
            slots.push(None, GFP_KERNEL)?;
        }
        let mut scratch = KVec::with_capacity(MAX_PFNS, GFP_KERNEL)?;
        scratch.resize(MAX_PFNS, 0, GFP_KERNEL)?;
        Arc::pin_init(
            try_pin_init!(Self {
                ch,
                slots <- new_spinlock!(slots, "hv_guest_storage_slots"),
                scratch <- new_spinlock!(scratch, "hv_guest_storage_scratch"),
                unmap: SharedPage::new()?,
                seq: Atomic::new(0),
                counters: QueueCounters::new(),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// Requests in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.slots.lock().iter().filter(|s| s.is_some()).count()
    }

    /// Takes the request with transaction `id` out of the table.
    fn take(&self, id: u64) -> Option<Slot> {
        let tag = usize::from(unique_tag(id)? as u16);
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(tag)?;
        if slot.as_ref().is_some_and(|s| s.id == id) {
            slot.take()
        } else {
            None
        }
    }

    /// Sends `rq` (its tag in `info`) to `lun` as `io`. An error is the
    /// request's status, as blk-mq takes it from `queue_rq`: `ENOMEM`
    /// (retry later) when the ring is full.
    pub(super) fn submit(
        &self,
        lun: u8,
        io: Io,
        info: &RequestInfo,
        rq: ARef<Request<DiskOps>>,
    ) -> Result {
        let tag = usize::from(info.tag);
        if tag >= usize::from(DEPTH) {
            return Err(EIO);
        }
        let unique = u32::from(info.hwq) << 16 | u32::from(info.tag);
        let seq = self.seq.fetch_add(1, Relaxed) & 0x7fff_ffff;
        let id = u64::from(seq) << 32 | (u64::from(unique) + 1);
        let (cmd, dir, len, expect) = match io {
            Io::Read(t) => (Command::Read(t), direction::READ, info.bytes, Some(info.bytes)),
            Io::Write(t) => (Command::Write(t), direction::WRITE, info.bytes, Some(info.bytes)),
            Io::Discard { .. } => (
                Command::Unmap {
                    param_len: UNMAP_LIST_LEN as u16,
                },
                direction::WRITE,
                UNMAP_LIST_LEN as u32,
                None,
            ),
            Io::Flush => (
                Command::SynchronizeCache(Transfer {
                    lba: 0,
                    blocks: 0,
                    fua: false,
                }),
                direction::UNKNOWN,
                0,
                None,
            ),
        };
        let cdb = cmd.cdb().ok_or(EIO)?;
        let vm = VmscsiRequest::command(lun, cdb.as_slice(), dir, len);
        let pkt = VstorPacket::request(operation::EXECUTE_SRB).with_body(&vm);
        let mut scratch = self.scratch.lock();
        let (pages, offset) = match io {
            Io::Read(_) | Io::Write(_) => block::request_pfns(&rq, &mut scratch)?,
            Io::Discard { lba, blocks } => {
                let at = tag * UNMAP_SLOT;
                let mut list = [0u8; UNMAP_LIST_LEN];
                scsi::unmap_list(&[(lba, blocks)], &mut list).ok_or(EIO)?;
                // SAFETY: `at + UNMAP_LIST_LEN` is within the page (the
                // assertion on UNMAP_SLOT, `tag < DEPTH`); the slot is
                // this tag's alone.
                unsafe { shim::copy_shared(self.unmap.as_ptr().add(at), list.as_ptr(), list.len()) };
                scratch[0] = self.unmap.phys() >> 12;
                (1, at as u32)
            }
            Io::Flush => (0, 0),
        };
        self.slots.lock()[tag] = Some(Slot {
            rq,
            id,
            sent: Instant::now(),
            expect,
        });
        let flags = PacketFlags::COMPLETION_REQUESTED;
        let sent = if pages == 0 {
            self.ch.send_inband(id, flags, pkt.as_bytes())
        } else {
            let range = [GpadlRange {
                byte_count: len,
                byte_offset: offset,
                pfns: &scratch[..pages],
            }];
            self.ch.send_with_pages(id, flags, &range, pkt.as_bytes())
        };
        drop(scratch);
        let Err(e) = sent else {
            self.counters.submitted.add(1, Relaxed);
            return Ok(());
        };
        match self.take(id) {
            // Not sent: back to blk-mq, which retries a full ring later.
            Some(_slot) if e == EAGAIN => {
                self.counters.ring_full.add(1, Relaxed);
                Err(ENOMEM)
            }
            Some(_slot) => Err(EIO),
            // Already ended by the controller's shutdown.
            None => Ok(()),
        }
    }

    /// A completion with transaction `id` and payload `data` arrived.
    pub(super) fn complete(&self, id: u64, data: &[u8]) {
        let Some(p) = VstorPacket::from_data(data).filter(|p| p.operation == operation::COMPLETE_IO)
        else {
            if self.counters.bad_packets.fetch_add(1, Relaxed) == 0 {
                pr_err!(
                    "storage: relid {}: completion {:#x} of {} bytes is not a COMPLETE_IO packet; dropped (counted from now on)\n",
                    self.ch.relid(),
                    id,
                    data.len()
                );
            }
            return;
        };
        let Some(slot) = self.take(id) else {
            if self.counters.unknown_id.fetch_add(1, Relaxed) == 0 {
                pr_err!(
                    "storage: relid {}: completion for unknown transaction {:#x}; dropped (counted from now on)\n",
                    self.ch.relid(),
                    id
                );
            }
            return;
        };
        let vm: VmscsiRequest = p.body_as().unwrap_or_default();
        let expect = slot.expect.unwrap_or(vm.data_transfer_length);
        let result = match vm.outcome(expect) {
            Outcome::Done => Ok(()),
            Outcome::IoError => Err(EIO),
            Outcome::Target => Err(EREMOTEIO),
            Outcome::NoSpace => Err(ENOSPC),
            Outcome::Medium => Err(ENODATA),
        };
        if result.is_err() {
            self.counters.errors.add(1, Relaxed);
        }
        self.counters.completed.add(1, Relaxed);
        block::end(slot.rq, result);
    }

    /// Fails every request in flight for longer than `timeout_ms`
    /// (`ETIMEDOUT`); returns how many.
    pub(super) fn expire(&self, timeout_ms: i64) -> u64 {
        let mut n = 0;
        loop {
            let expired = {
                let mut slots = self.slots.lock();
                slots
                    .iter_mut()
                    .find(|s| s.as_ref().is_some_and(|s| s.sent.elapsed().as_millis() >= timeout_ms))
                    .and_then(Option::take)
            };
            let Some(slot) = expired else {
                break;
            };
            pr_err!(
                "storage: relid {}: request {:#x} not completed in {} ms; failed\n",
                self.ch.relid(),
                slot.id,
                timeout_ms
            );
            self.counters.timeouts.add(1, Relaxed);
            block::end(slot.rq, Err(ETIMEDOUT));
            n += 1;
        }
        n
    }

    /// Fails every request in flight (`EIO`): the controller is going away.
    pub(super) fn abort_all(&self) {
        loop {
            let slot = self.slots.lock().iter_mut().find_map(Option::take);
            let Some(slot) = slot else {
                break;
            };
            self.counters.aborted.add(1, Relaxed);
            block::end(slot.rq, Err(EIO));
        }
    }
}

/// The blk-mq unique tag in a transaction ID, if the ID is one of ours.
pub(super) fn unique_tag(id: u64) -> Option<u32> {
    if id >= crate::bus::channel::REQUEST_ID_BASE {
        return None;
    }
    (id as u32).checked_sub(1)
}

