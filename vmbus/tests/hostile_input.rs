// SPDX-License-Identifier: GPL-2.0

//! Whatever the other side puts in a message or a ring, the parsers and
//! the ring return (an error or a value) without panicking, out-of-bounds
//! access or an endless loop.

use proptest::prelude::*;
use vmbus::gpadl::GpadlAssembler;
use vmbus::message::MAX_MESSAGE_SIZE;
use vmbus::packet::{Packet, PacketFlags};
use vmbus::parse::{parse, Message};
use vmbus::ring::{HeaderField, LocalMemory, RingConsumer, RingProducer};

fn message_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Bias the type toward real ones so that the bodies get exercised.
    (
        0u32..30,
        prop::collection::vec(any::<u8>(), 0..MAX_MESSAGE_SIZE + 8),
    )
        .prop_map(|(t, mut v)| {
            if v.len() >= 4 {
                v[..4].copy_from_slice(&t.to_le_bytes());
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn parse_never_panics(bytes in message_bytes()) {
        if let Ok(m) = parse(&bytes) {
            prop_assert!(bytes.len() >= m.msgtype().min_len().unwrap_or(usize::MAX));
            if let Message::GpadlHeader(h) = m {
                let mut storage = vec![0u64; usize::from(h.header.range_buflen) / 8];
                if let Ok(a) = GpadlAssembler::new(&h, &mut storage) {
                    let _ = a.finish();
                }
            }
        }
    }

    #[test]
    fn gpadl_assembly_never_panics(header in message_bytes(), bodies in prop::collection::vec(message_bytes(), 0..6)) {
        let mut h = header;
        if h.len() >= 4 { h[0] = 8; }
        if let Ok(Message::GpadlHeader(hv)) = parse(&h) {
            let mut storage = vec![0u64; 64];
            if let Ok(mut a) = GpadlAssembler::new(&hv, &mut storage) {
                for mut b in bodies {
                    if b.len() >= 4 { b[0] = 9; }
                    if let Ok(Message::GpadlBody(bv)) = parse(&b) {
                        let _ = a.add_body(&bv);
                    }
                }
                if let Ok(g) = a.finish() {
                    prop_assert!(g.ranges().count() >= 1);
                }
            }
        }
    }

    #[test]
    fn packets_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = Packet::from_bytes(&bytes) {
            let _ = p.data();
            if let Ok(r) = p.gpa_ranges() {
                for _ in r {}
            }
        }
    }

    #[test]
    fn corrupt_ring_never_panics(
        data_len in prop::sample::select(vec![32usize, 64, 128, 256]),
        fields in prop::collection::vec(any::<u32>(), 5),
        small in prop::collection::vec(0u32..300, 5),
        use_small in any::<[bool; 5]>(),
        data in prop::collection::vec(any::<u8>(), 256),
        buf_len in 0usize..300,
        writes in prop::collection::vec(0usize..100, 0..4),
    ) {
        let mut ring = data[..data_len].to_vec();
        let mem = LocalMemory::new(&mut ring);
        for (i, f) in HeaderField::ALL.into_iter().enumerate() {
            mem.set_field(f, if use_small[i] { small[i] & !3 } else { fields[i] });
        }
        let mut buf = vec![0u8; buf_len];
        if let Ok(mut c) = RingConsumer::new(&mem) {
            // Each successful read consumes at least 24 bytes, so this ends.
            for _ in 0..(data_len / 24 + 2) {
                match c.read_packet(&mut buf) {
                    Ok(Some(p)) => {
                        prop_assert!(p.bytes.len() <= buf_len);
                        let _ = c.commit();
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = c.unmask_interrupts();
        }
        if let Ok(mut p) = RingProducer::new(&mem) {
            for w in writes {
                let _ = p.write_inband(1, PacketFlags::NONE, &vec![0; w]);
                let _ = p.set_pending_send_size(w as u32);
            }
        }
    }
}
