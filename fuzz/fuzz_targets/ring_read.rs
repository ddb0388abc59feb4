// SPDX-License-Identifier: GPL-2.0

//! A ring whose header and data a hostile peer filled: the consumer must
//! return packets that fit or errors, and the producer must not break
//! either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmbus::packet::PacketFlags;
use vmbus::ring::{HeaderField, LocalMemory, RingConsumer, RingProducer};

fuzz_target!(|data: &[u8]| {
    // 20 header bytes, a buffer size byte, then the data area.
    if data.len() < 21 {
        return;
    }
    let (head, rest) = data.split_at(20);
    let buf_len = usize::from(rest[0]) * 4;
    // Whole 8-byte slots, so that most inputs make a valid ring size.
    let ring = &rest[1..(rest.len() - 1) / 8 * 8 + 1];
    let mut ring_bytes = ring.to_vec();
    let mem = LocalMemory::new(&mut ring_bytes);
    for (i, f) in HeaderField::ALL.into_iter().enumerate() {
        mem.set_field(f, u32::from_le_bytes([head[i * 4], head[i * 4 + 1], head[i * 4 + 2], head[i * 4 + 3]]));
    }
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
