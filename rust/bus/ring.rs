// SPDX-License-Identifier: GPL-2.0

//! The pages of one channel's rings, and [`RingMemory`] over them.
//!
//! A channel's ring GPADL covers one run of pages: the guest-to-host
//! (send) ring first, its header page and then its data, and right after
//! it the host-to-guest (receive) ring. The pages are allocated one by one
//! (the GPADL lists every PFN, they need not be contiguous) and are owned
//! by [`RingPages`], which the channel keeps until the host has confirmed
//! the GPADL torn down: before that the host may still write to them.
//!
//! Everything here treats the pages as shared with a party that may change
//! any byte at any time: header fields are 32-bit atomics, data is copied
//! with raw pointer copies (a torn copy is some bytes, never a fault),
//! descriptor and trailer words are single volatile loads and stores, and
//! no Rust reference to the shared bytes is ever formed. The ring algorithm
//! in `vmbus::ring` validates every index it reads.

use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Relaxed, Release};
use kernel::sync::Arc;

use crate::shim::SharedPage;
use crate::vmbus::ring::{HeaderField, RingMemory, RING_HEADER_SIZE};

const _: () = assert!(RING_HEADER_SIZE == PAGE_SIZE);

/// Ring pages allocated and not yet freed, module-wide (debugfs
/// `vmbus/state`): back to its old value once a channel is closed.
pub(crate) static LIVE_PAGES: Atomic<u64> = Atomic::new(0);
/// Ring pages given up for good because the host never confirmed their
/// GPADL torn down (it may still write to them).
pub(crate) static LEAKED_PAGES: Atomic<u64> = Atomic::new(0);

/// The zeroed pages of both rings of a channel.
///
/// # Invariants
///
/// `pages` has `send_pages + recv_pages` entries and each ring has at
/// least two pages (a header and one data page).
pub(crate) struct RingPages {
    pages: KVec<SharedPage>,
    send_pages: usize,
}

impl RingPages {
    /// Allocates `send_pages + recv_pages` zeroed pages (each count
    /// includes the ring's header page).
    pub(crate) fn new(send_pages: usize, recv_pages: usize) -> Result<Arc<Self>> {
        if send_pages < 2 || recv_pages < 2 {
            return Err(EINVAL);
        }
        let total = send_pages.checked_add(recv_pages).ok_or(EINVAL)?;
        let mut pages = KVec::with_capacity(total, GFP_KERNEL)?;
        for _ in 0..total {
            pages.push(SharedPage::new()?, GFP_KERNEL)?;
        }
        // INVARIANT: `total` pages, at least two per ring (checked).
        let this = Arc::new(Self { pages, send_pages }, GFP_KERNEL)?;
        LIVE_PAGES.fetch_add(total as u64, Relaxed);
        Ok(this)
    }

    /// Never frees these pages (the host may still write to them) and
    /// counts them in [`LEAKED_PAGES`].
    pub(crate) fn leak(self: Arc<Self>) {
        LEAKED_PAGES.fetch_add(self.pages.len() as u64, Relaxed);
        core::mem::forget(self);
    }

    /// Page frame numbers of every page, in GPADL order.
    pub(crate) fn pfns(&self) -> Result<KVec<u64>> {
        let mut pfns = KVec::with_capacity(self.pages.len(), GFP_KERNEL)?;
        for p in self.pages.iter() {
            pfns.push(p.phys() >> 12, GFP_KERNEL)?;
        }
        Ok(pfns)
    }

    /// Pages of the send ring, header included: the offset of the receive
    /// ring in the GPADL, in pages.
    pub(crate) fn send_pages(&self) -> usize {
        self.send_pages
    }

    /// All pages.
    pub(crate) fn total_pages(&self) -> usize {
        self.pages.len()
    }

    /// Marks both rings as honouring `pending_send_sz` (Linux sets
    /// `feat_pending_send_sz` in both headers before opening).
    pub(crate) fn init_headers(self: &Arc<Self>) {
        for ring in [self.send_ring(), self.recv_ring()] {
            ring.store_release(
                HeaderField::FeatureBits,
                crate::vmbus::ring::FEAT_PENDING_SEND_SZ,
            );
        }
    }

    /// The guest-to-host ring.
    pub(crate) fn send_ring(self: &Arc<Self>) -> RingView {
        RingView {
            pages: self.clone(),
            first: 0,
            count: self.send_pages,
        }
    }

    /// The host-to-guest ring.
    pub(crate) fn recv_ring(self: &Arc<Self>) -> RingView {
        RingView {
            pages: self.clone(),
            first: self.send_pages,
            count: self.pages.len() - self.send_pages,
        }
    }
}

/// One ring inside [`RingPages`].
///
/// # Invariants
///
/// `first + count <= pages.pages.len()` and `count >= 2`.
pub(crate) struct RingView {
    pages: Arc<RingPages>,
    first: usize,
    count: usize,
}

impl Drop for RingPages {
    fn drop(&mut self) {
        LIVE_PAGES.fetch_sub(self.pages.len() as u64, Relaxed);
    }
}

impl RingView {
    fn header(&self, field: HeaderField) -> &Atomic<u32> {
        // INVARIANT use: `first` is a valid page index.
        let page = &self.pages.pages[self.first];
        // SAFETY: the header fields are at 4-byte aligned offsets below
        // 0x44 within the page, which lives as long as `self.pages`; the
        // other side accesses them concurrently, hence an atomic.
        unsafe { Atomic::<u32>::from_ptr(page.as_ptr().add(field.offset()).cast::<u32>()) }
    }

    /// The 8-byte word at data offset `offset`, if `offset` is 8-aligned and
    /// inside this ring's data area (a word then lies within one page).
    fn word(&self, offset: usize) -> Option<*mut u64> {
        if offset % 8 != 0 {
            return None;
        }
        let index = self.first + 1 + offset / PAGE_SIZE;
        if index >= self.first + self.count {
            return None;
        }
        let page = self.pages.pages.get(index)?;
        // SAFETY: `offset % PAGE_SIZE` is 8-aligned and at most
        // `PAGE_SIZE - 8`, so the word is inside the live page.
        Some(unsafe { page.as_ptr().add(offset % PAGE_SIZE) }.cast::<u64>())
    }

    /// Calls `f(page, offset_in_page, range_in_buf)` for each page piece of
    /// `len` bytes at data offset `offset`.
    fn pieces(
        &self,
        offset: usize,
        len: usize,
        mut f: impl FnMut(&SharedPage, usize, usize, usize),
    ) {
        let mut done = 0;
        while done < len {
            let pos = offset + done;
            let index = self.first + 1 + pos / PAGE_SIZE;
            let within = pos % PAGE_SIZE;
            let n = (PAGE_SIZE - within).min(len - done);
            // The ring algorithm keeps `offset + len <= data_len()`
            // (RingMemory's contract); `get` keeps a broken caller from
            // reaching another ring's page or beyond.
            match self.pages.pages.get(index) {
                Some(page) if index < self.first + self.count => f(page, within, done, n),
                _ => return,
            }
            done += n;
        }
    }
}

impl RingMemory for RingView {
    fn data_len(&self) -> usize {
        (self.count - 1) * PAGE_SIZE
    }

    fn read_data(&self, offset: usize, buf: &mut [u8]) {
        let dst = buf.as_mut_ptr();
        self.pieces(offset, buf.len(), |page, within, at, n| {
            // SAFETY: `within + n <= PAGE_SIZE` inside a live page and
            // `at + n <= buf.len()`, and the ring page is not `buf`. The
            // host may be writing the page: `copy_shared` copies some
            // bytes, which is all the ring code relies on (it checks
            // everything in the copy).
            unsafe { crate::shim::copy_shared(dst.add(at), page.as_ptr().add(within), n) }
        });
    }

    fn write_data(&self, offset: usize, data: &[u8]) {
        let src = data.as_ptr();
        self.pieces(offset, data.len(), |page, within, at, n| {
            // SAFETY: as in `read_data`, the other way round; the producer
            // owns the bytes it writes until it publishes the write index,
            // though a host that breaks the protocol may write them too.
            unsafe { crate::shim::copy_shared(page.as_ptr().add(within), src.add(at), n) }
        });
    }

    fn read_word(&self, offset: usize) -> u64 {
        match self.word(offset) {
            // SAFETY: an aligned word inside a live page (`word`); a
            // volatile load reads the shared memory once, whatever the
            // host writes meanwhile, and the ring code checks the value.
            Some(w) => unsafe { core::ptr::read_volatile(w) },
            // Not reachable through the ring algorithm (RingMemory's
            // contract); a value it rejects or ignores.
            None => 0,
        }
    }

    fn write_word(&self, offset: usize, value: u64) {
        if let Some(w) = self.word(offset) {
            // SAFETY: as in `read_word`; the producer owns the space it
            // writes until it publishes the write index.
            unsafe { core::ptr::write_volatile(w, value.to_le()) }
        }
    }

    fn load_acquire(&self, field: HeaderField) -> u32 {
        self.header(field).load(Acquire)
    }

    fn store_release(&self, field: HeaderField, value: u32) {
        self.header(field).store(value, Release)
    }

    fn fence(&self) {
        // virt_mb(), which is __smp_mb() on every kernel: a full barrier
        // against the host even if this kernel were UP. With SMP that is
        // smp_mb(), on x86 a locked add (about a tenth of `mfence`, which
        // mb() is and which only non-temporal stores and device memory
        // need); a UP kernel's smp_mb() is only a compiler barrier, so it
        // takes mb().
        if cfg!(CONFIG_SMP) {
            kernel::sync::barrier::smp_mb(kernel::sync::barrier::Full);
        } else {
            kernel::sync::barrier::mb(kernel::sync::barrier::Full);
        }
    }
}
