// SPDX-License-Identifier: GPL-2.0

//! A ring whose header and data a hostile peer filled: the consumer must
//! return packets that fit or errors, and the producer must not break
//! either.

#![no_main]

use std::cell::{Cell, RefCell};

use libfuzzer_sys::fuzz_target;
use vmbus::packet::PacketFlags;
use vmbus::ring::{HeaderField, RingConsumer, RingMemory, RingProducer};

struct Mem {
    data: RefCell<Vec<u8>>,
    fields: [Cell<u32>; 5],
}

fn idx(f: HeaderField) -> usize {
    match f {
        HeaderField::WriteIndex => 0,
        HeaderField::ReadIndex => 1,
        HeaderField::InterruptMask => 2,
        HeaderField::PendingSendSize => 3,
        HeaderField::FeatureBits => 4,
    }
}

impl RingMemory for Mem {
    fn data_len(&self) -> usize {
        self.data.borrow().len()
    }
    fn read_data(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.data.borrow()[offset..offset + buf.len()]);
    }
    fn write_data(&self, offset: usize, data: &[u8]) {
        self.data.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn load_acquire(&self, f: HeaderField) -> u32 {
        self.fields[idx(f)].get()
    }
    fn store_release(&self, f: HeaderField, v: u32) {
        self.fields[idx(f)].set(v)
    }
    fn fence(&self) {}
}

fuzz_target!(|data: &[u8]| {
    // 20 header bytes, a buffer size byte, then the data area.
    if data.len() < 21 {
        return;
    }
    let (head, rest) = data.split_at(20);
    let buf_len = usize::from(rest[0]) * 4;
    // Whole 8-byte slots, so that most inputs make a valid ring size.
    let ring = &rest[1..(rest.len() - 1) / 8 * 8 + 1];
    let fields = core::array::from_fn(|i| {
        Cell::new(u32::from_le_bytes([head[i * 4], head[i * 4 + 1], head[i * 4 + 2], head[i * 4 + 3]]))
    });
    let mem = Mem { data: RefCell::new(ring.to_vec()), fields };
    let mut buf = vec![0u8; buf_len];
    if let Ok(mut c) = RingConsumer::new(&mem) {
        // Every packet read is at least 24 bytes: this loop is bounded.
        for _ in 0..ring.len() / 24 + 1 {
            match c.read_packet(&mut buf) {
                Ok(Some(p)) => {
                    assert!(p.bytes.len() <= buf_len);
                    assert!(p.desc.data_offset() <= p.bytes.len());
                    let _ = c.commit();
                }
                _ => break,
            }
        }
        let _ = c.unmask_interrupts();
    }
    if let Ok(mut p) = RingProducer::new(&mem) {
        let _ = p.write_inband(1, PacketFlags::COMPLETION_REQUESTED, &ring[..ring.len().min(64)]);
    }
});
