// SPDX-License-Identifier: GPL-2.0

//! One VMBus ring as hvhost sees it: a header page and data pages in guest
//! RAM, listed by a GPADL, reached through [`GuestPages`]. It implements
//! the shared ring algorithm's [`RingMemory`], so the host runs exactly the
//! producer and consumer code the guest module runs.
//!
//! The pages were checked to be RAM when the GPADL was created, so accesses
//! do not fail in practice; if one does (a bug, or RAM that went away), the
//! access reads zeros or is dropped, and [`GuestRing::failed`] says so: the
//! channel checks it after every ring operation and closes itself. Header
//! fields are 32-bit atomics on guest RAM; the data area is copied, and the
//! guest may change it meanwhile (the algorithm copies a packet once before
//! believing anything in it).

use std::cell::Cell;
use std::sync::Arc;

use vmbus::message::HV_PAGE_SIZE;
use vmbus::ring::{HeaderField, RingMemory};

use crate::hyperv::guest_mem::GuestPages;

/// A ring in guest memory: its header page and its data pages, in order.
pub struct GuestRing {
    mem: Arc<dyn GuestPages>,
    header: u64,
    data: Vec<u64>,
    failed: Cell<bool>,
}

impl GuestRing {
    /// The ring whose header is the page at GPA `header` and whose data
    /// area is the pages at the GPAs in `data`.
    pub fn new(mem: Arc<dyn GuestPages>, header: u64, data: Vec<u64>) -> Self {
        Self {
            mem,
            header,
            data,
            failed: Cell::new(false),
        }
    }

    /// Whether a guest memory access failed (the ring is unusable).
    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// The GPA of the 8-byte word at data offset `offset` (8-aligned, so
    /// within one page).
    fn word_gpa(&self, offset: usize) -> Option<u64> {
        let page = HV_PAGE_SIZE as usize;
        if !offset.is_multiple_of(8) {
            return None;
        }
        let gpa = self.data.get(offset / page)?;
        Some(gpa + (offset % page) as u64)
    }

    /// Calls `f` for each piece of `offset..offset+len` in the data area:
    /// (GPA, position in the caller's buffer, length).
    fn pieces(&self, offset: usize, len: usize, mut f: impl FnMut(u64, usize, usize)) {
        let page = HV_PAGE_SIZE as usize;
        let mut done = 0;
        while done < len {
            let at = offset + done;
            let Some(&gpa) = self.data.get(at / page) else {
                // RingMemory's contract rules this out; be safe anyway.
                self.failed.set(true);
                return;
            };
            let n = (page - at % page).min(len - done);
            f(gpa + (at % page) as u64, done, n);
            done += n;
        }
    }
}

impl RingMemory for GuestRing {
    fn data_len(&self) -> usize {
        self.data.len() * HV_PAGE_SIZE as usize
    }

    fn read_data(&self, offset: usize, buf: &mut [u8]) {
        let len = buf.len();
        self.pieces(offset, len, |gpa, pos, n| {
            if self.mem.read(gpa, &mut buf[pos..pos + n]).is_err() {
                buf[pos..pos + n].fill(0);
                self.failed.set(true);
            }
        });
    }

    fn write_data(&self, offset: usize, data: &[u8]) {
        self.pieces(offset, data.len(), |gpa, pos, n| {
            if self.mem.write(gpa, &data[pos..pos + n]).is_err() {
                self.failed.set(true);
            }
        });
    }

    fn read_word(&self, offset: usize) -> u64 {
        match self.word_gpa(offset).map(|gpa| self.mem.load_u64(gpa)) {
            Some(Ok(value)) => value,
            // RingMemory's contract rules out a bad offset; be safe anyway.
            _ => {
                self.failed.set(true);
                0
            }
        }
    }

    fn write_word(&self, offset: usize, value: u64) {
        match self
            .word_gpa(offset)
            .map(|gpa| self.mem.store_u64(gpa, value))
        {
            Some(Ok(())) => {}
            _ => self.failed.set(true),
        }
    }

    fn load_acquire(&self, field: HeaderField) -> u32 {
        self.mem
            .load_u32(self.header + field.offset() as u64)
            .unwrap_or_else(|_| {
                self.failed.set(true);
                0
            })
    }

    fn store_release(&self, field: HeaderField, value: u32) {
        if self
            .mem
            .store_u32(self.header + field.offset() as u64, value)
            .is_err()
        {
            self.failed.set(true);
        }
    }

    fn fence(&self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperv::guest_mem::FakeMemory;
    use vmbus::packet::PacketFlags;
    use vmbus::ring::{RingConsumer, RingProducer};

    #[test]
    fn packets_cross_scattered_pages() {
        let mem = Arc::new(FakeMemory::new(0x10000));
        // Header at 0x8000, data pages out of order: 0x3000, 0x1000.
        let a = GuestRing::new(mem.clone(), 0x8000, vec![0x3000, 0x1000]);
        let b = GuestRing::new(mem.clone(), 0x8000, vec![0x3000, 0x1000]);
        let mut p = RingProducer::new(a).expect("producer");
        let mut c = RingConsumer::new(b).expect("consumer");
        let big = vec![0x5a; 3000];
        let mut buf = vec![0u8; 8192];
        for i in 0..10u64 {
            let _ = p.write_inband(i, PacketFlags::NONE, &big).expect("fits");
            let (pkt, _) = c.read_and_commit(&mut buf).expect("ok").expect("packet");
            assert_eq!(pkt.desc.trans_id, i);
            assert_eq!(&pkt.data()[..3000], &big[..]);
        }
        assert!(!p.memory().failed());
        let mut x = [0u8; 4];
        mem.read(0x1000, &mut x).expect("second page was used");
    }

    #[test]
    fn unreachable_pages_mark_the_ring_failed() {
        let mem = Arc::new(FakeMemory::new(0x2000));
        let r = GuestRing::new(mem, 0x1000, vec![0x10_0000]);
        let mut buf = [1u8; 8];
        r.read_data(0, &mut buf);
        assert_eq!(buf, [0; 8]);
        assert!(r.failed());
        let r = GuestRing::new(Arc::new(FakeMemory::new(0x2000)), 0x4000, vec![0x1000]);
        assert_eq!(r.load_acquire(HeaderField::WriteIndex), 0);
        assert!(r.failed());
        // Words: outside RAM, misaligned, past the data area.
        let r = GuestRing::new(Arc::new(FakeMemory::new(0x2000)), 0x1000, vec![0x10_0000]);
        assert_eq!(r.read_word(8), 0);
        assert!(r.failed());
        let r = GuestRing::new(Arc::new(FakeMemory::new(0x2000)), 0x1000, vec![0x0]);
        r.write_word(4, 1);
        assert!(r.failed());
        let r = GuestRing::new(Arc::new(FakeMemory::new(0x2000)), 0x1000, vec![0x0]);
        r.write_word(0x1000, 1);
        assert!(r.failed());
        let r = GuestRing::new(Arc::new(FakeMemory::new(0x2000)), 0x1000, vec![0x0]);
        r.write_word(0xff8, 0x0102_0304_0506_0708);
        let mut b = [0u8; 8];
        r.read_data(0xff8, &mut b);
        assert_eq!(
            (u64::from_le_bytes(b), r.read_word(0xff8)),
            (0x0102_0304_0506_0708, 0x0102_0304_0506_0708)
        );
        assert!(!r.failed());
    }
}
