// SPDX-License-Identifier: GPL-2.0

//! What a blk-mq disk driver needs beyond the kernel crate's `block::mq`
//! in 7.3, over the C half in `hv_shim_blk.c` (which says why each is C):
//! what a request asks for ([`RequestInfo`]), the frames of its data
//! ([`request_pfns`]), ending it with an error ([`end`]), and a disk with
//! the limits its device reported ([`Disk`], in place of the crate's
//! `GenDiskBuilder`, which sets only the block sizes).
//!
//! Requests are the crate's [`Request`]s: `queue_rq` gets them from the
//! crate, and a driver ends every one it accepted exactly once, through
//! [`end`]. When the crate gets accessors and `Request::end` (the
//! "block: rust: bio" series), this file shrinks to nothing.

use kernel::ffi::{c_char, c_int, c_uint, c_void};
use core::ptr::NonNull;

use kernel::block::mq::{Operations, Request, TagSet};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::aref::ARef;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

#[repr(C)]
#[derive(Default)]
struct RawRequest {
    sector: u64,
    bytes: u32,
    unique_tag: u32,
    op: u8,
    fua: bool,
}

#[repr(C)]
struct RawDiskParams {
    name: *const c_char,
    capacity_sectors: u64,
    logical_block_size: u32,
    physical_block_size: u32,
    max_hw_sectors: u32,
    max_discard_sectors: u32,
    discard_granularity: u32,
    max_segments: u16,
    write_cache: bool,
    fua: bool,
    read_only: bool,
}

// The C structs are opaque here (their bindgen types hold zero-sized
// lockdep fields, which `improper_ctypes` refuses): pointers to them are
// passed as `c_void`.
mod ffi {
    use super::*;

    extern "C" {
        pub(super) fn hvg_rq_describe(rq: *mut c_void, out: *mut RawRequest);
        pub(super) fn hvg_rq_pfns(rq: *mut c_void, pfns: *mut u64, max: c_uint, offset: *mut u32) -> c_int;
        pub(super) fn hvg_rq_end(rq: *mut c_void, err: c_int);
        pub(super) fn hvg_disk_add(
            set: *mut c_void,
            p: *const RawDiskParams,
            queuedata: *mut c_void,
        ) -> *mut c_void;
        pub(super) fn hvg_disk_del(disk: *mut c_void);
    }
}

// `enum hvg_op` of hv_shim.h.
const OP_READ: u8 = 0;
const OP_WRITE: u8 = 1;
const OP_FLUSH: u8 = 2;
const OP_DISCARD: u8 = 3;

/// What a request asks the device to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
    Flush,
    Discard,
    /// Anything else (write zeroes, zone operations): not offered by the
    /// queue limits, refused if it comes.
    Other,
}

/// A request's operation, range and tag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestInfo {
    pub(crate) op: Op,
    /// First sector (512 bytes).
    pub(crate) sector: u64,
    /// Bytes of data.
    pub(crate) bytes: u32,
    /// Write through the device's cache.
    pub(crate) fua: bool,
    /// The hardware queue.
    pub(crate) hwq: u16,
    /// The tag within that queue.
    pub(crate) tag: u16,
}

/// The C request behind `rq`.
fn raw<T: Operations>(rq: &Request<T>) -> *mut c_void {
    // `Request<T>` is `#[repr(transparent)]` over `Opaque<bindings::request>`
    // (the crate documents it as a wrapper of the C struct), so its address
    // is the C request's.
    core::ptr::from_ref(rq).cast::<c_void>().cast_mut()
}

/// What `rq` asks for.
pub(crate) fn describe<T: Operations>(rq: &Request<T>) -> RequestInfo {
    let mut r = RawRequest::default();
    // SAFETY: `rq` is a live request (the borrow of the crate's reference);
    // the helper only reads it and writes `r`, a local.
    unsafe { ffi::hvg_rq_describe(raw(rq), &mut r) };
    RequestInfo {
        op: match r.op {
            OP_READ => Op::Read,
            OP_WRITE => Op::Write,
            OP_FLUSH => Op::Flush,
            OP_DISCARD => Op::Discard,
            _ => Op::Other,
        },
        sector: r.sector,
        bytes: r.bytes,
        fua: r.fua,
        hwq: (r.unique_tag >> 16) as u16,
        tag: r.unique_tag as u16,
    }
}

/// Fills `pfns` with the frames of `rq`'s data, one GPA range's worth:
/// returns how many, and the offset of the data in the first. `EINVAL` if
/// the segments do not make one range (the disk's limits prevent that),
/// `E2BIG` if `pfns` is too short.
pub(crate) fn request_pfns<T: Operations>(rq: &Request<T>, pfns: &mut [u64]) -> Result<(usize, u32)> {
    let mut offset = 0u32;
    let max = c_uint::try_from(pfns.len()).map_err(|_| EINVAL)?;
    // SAFETY: `rq` is live and owned by the driver while it is being
    // submitted or in flight (the caller holds the crate's reference);
    // the helper writes at most `max` entries of `pfns` and `offset`.
    let n = unsafe { ffi::hvg_rq_pfns(raw(rq), pfns.as_mut_ptr(), max, &mut offset) };
    let n = kernel::error::to_result(n).map(|()| n as usize)?;
    Ok((n, offset))
}

/// Ends `rq`: with success if `result` is `Ok`, else with the block status
/// of its error (`EIO` I/O error, `EREMOTEIO` target, `ENOSPC`, `ENODATA`
/// medium, `ETIMEDOUT`, as `errno_to_blk_status` maps them).
///
/// The caller holds the only reference to the request besides the block
/// layer's (the request has been taken out of the driver's table).
pub(crate) fn end<T: Operations>(rq: ARef<Request<T>>, result: Result) {
    let rq = match result {
        Ok(()) => match Request::end_ok(rq) {
            Ok(()) => return,
            // Another reference exists: a driver bug. End it anyway, as
            // an error, rather than leave it hanging.
            Err(rq) => {
                pr_err!("hv_guest: request ended with a reference left\n");
                rq
            }
        },
        Err(_) => rq,
    };
    let err = result.err().unwrap_or(EIO).to_errno();
    let ptr = raw(&rq);
    // The request goes back to the block layer here: the reference is
    // given up without being dropped. The crate's private count stays as
    // it was and is reset by its `queue_rq` when the request is reused;
    // 7.3 reads it nowhere else (no `tag_to_rq`).
    core::mem::forget(rq);
    // SAFETY: the request is live and the driver's to end (see above);
    // nothing touches it after this.
    unsafe { ffi::hvg_rq_end(ptr, err) };
}

/// A tag set, shared by the disks of one device and used from every CPU.
pub(crate) struct SharedTagSet<T: Operations>(Arc<TagSet<T>>);

// SAFETY: the C tag set is made for concurrent use from every CPU (blk-mq
// locks what it changes); the crate's `TagSet` gives nothing through
// `&self` but its address and is freed once, with the last `Arc`. The 7.3
// crate lacks these impls (its `GenDisk` is `Send` only if they hold).
unsafe impl<T: Operations> Send for SharedTagSet<T> {}
// SAFETY: as above.
unsafe impl<T: Operations> Sync for SharedTagSet<T> {}

impl<T: Operations> SharedTagSet<T> {
    /// A tag set of `nr_hw_queues` queues of `depth` tags each.
    pub(crate) fn new(nr_hw_queues: u32, depth: u32) -> Result<Self> {
        Ok(Self(Arc::pin_init(TagSet::new(nr_hw_queues, depth, 1), GFP_KERNEL)?))
    }

    fn raw(&self) -> *mut c_void {
        // `TagSet<T>` is `#[repr(transparent)]` over
        // `Opaque<bindings::blk_mq_tag_set>`: its address is the C set's.
        core::ptr::from_ref::<TagSet<T>>(&self.0).cast::<c_void>().cast_mut()
    }
}

impl<T: Operations> Clone for SharedTagSet<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// How a disk is presented: geometry and what the device supports.
pub(crate) struct DiskParams {
    pub(crate) name: CString,
    pub(crate) capacity_sectors: u64,
    pub(crate) logical_block_size: u32,
    pub(crate) physical_block_size: u32,
    /// Largest request, in sectors.
    pub(crate) max_hw_sectors: u32,
    /// Most segments (pages) in one request.
    pub(crate) max_segments: u16,
    /// Largest discard, in sectors; 0 for no discard.
    pub(crate) max_discard_sectors: u32,
    /// Discard granularity in bytes.
    pub(crate) discard_granularity: u32,
    pub(crate) write_cache: bool,
    pub(crate) fua: bool,
    pub(crate) read_only: bool,
}

/// A disk on a tag set: added (visible, partitions scanned) when made,
/// deleted when dropped (after which no request of it is in the driver).
///
/// # Invariants
///
/// `gendisk` was returned by `hvg_disk_add` and is deleted only in `drop`;
/// its queue's `queuedata` is `queuedata`, from `T::QueueData::into_foreign`,
/// converted back only in `drop`.
pub(crate) struct Disk<T: Operations> {
    gendisk: NonNull<c_void>,
    queuedata: *mut c_void,
    // Kept until the disk is deleted (fields drop after `drop`).
    _tagset: SharedTagSet<T>,
}

// SAFETY: the disk is an owned pointer, deleted once; the queue data is
// `Send` where `T::QueueData` is, and the tag set is `Send`.
unsafe impl<T: Operations> Send for Disk<T> where T::QueueData: Send {}
// SAFETY: `&Disk` gives access to nothing.
unsafe impl<T: Operations> Sync for Disk<T> where T::QueueData: Sync {}

impl<T: Operations> Disk<T> {
    /// Adds a disk whose requests go to `T` with `data`, on `tagset`.
    pub(crate) fn add(tagset: SharedTagSet<T>, p: &DiskParams, data: T::QueueData) -> Result<Self> {
        let raw_params = RawDiskParams {
            name: p.name.as_char_ptr(),
            capacity_sectors: p.capacity_sectors,
            logical_block_size: p.logical_block_size,
            physical_block_size: p.physical_block_size,
            max_hw_sectors: p.max_hw_sectors,
            max_discard_sectors: p.max_discard_sectors,
            discard_granularity: p.discard_granularity,
            max_segments: p.max_segments,
            write_cache: p.write_cache,
            fua: p.fua,
            read_only: p.read_only,
        };
        let set = tagset.raw();
        let queuedata = data.into_foreign();
        // SAFETY: `set` is an initialized tag set (the `Arc` keeps it until
        // after the disk is deleted); `raw_params` and the name it points
        // to live across the call; `queuedata` is handed to the queue.
        let disk = unsafe { ffi::hvg_disk_add(set, &raw_params, queuedata) };
        let err = kernel::error::from_err_ptr(disk).err();
        let Some(gendisk) = NonNull::new(disk).filter(|_| err.is_none()) else {
            // SAFETY: not given to any queue (the add failed).
            drop(unsafe { T::QueueData::from_foreign(queuedata) });
            return Err(err.unwrap_or(ENOMEM));
        };
        // INVARIANT: as required, from `hvg_disk_add`.
        Ok(Self {
            gendisk,
            queuedata,
            _tagset: tagset,
        })
    }
}

impl<T: Operations> Drop for Disk<T> {
    fn drop(&mut self) {
        // SAFETY: added by `hvg_disk_add` and not deleted yet (invariant).
        // `del_gendisk` returns once no request of the disk is left.
        unsafe { ffi::hvg_disk_del(self.gendisk.as_ptr()) };
        // SAFETY: from `into_foreign` (invariant); the queue is gone.
        drop(unsafe { T::QueueData::from_foreign(self.queuedata) });
    }
}
