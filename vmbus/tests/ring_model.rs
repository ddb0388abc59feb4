// SPDX-License-Identifier: GPL-2.0

//! The ring against a model: random operations on a producer and a
//! consumer sharing one ring, checked against a queue of packets and the
//! signal rules written down from Linux's `ring_buffer.c` in terms of the
//! model's state (empty before a write; free space crossing
//! `pending_send_sz` on a read).

use std::collections::VecDeque;

use proptest::prelude::*;
use vmbus::packet::{PacketFlags, DESCRIPTOR_SIZE, TRAILER_SIZE};
use vmbus::ring::{HeaderField, LocalMemory, RingConsumer, RingError, RingProducer};

#[derive(Clone, Debug)]
enum Op {
    Write(usize),
    Read,
    Commit,
    Mask,
    Unmask,
    Pending(u32),
    ClearPending,
    Feature,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300).prop_map(Op::Write),
        4 => Just(Op::Read),
        3 => Just(Op::Commit),
        1 => Just(Op::Mask),
        1 => Just(Op::Unmask),
        1 => (0u32..600).prop_map(Op::Pending),
        1 => Just(Op::ClearPending),
        1 => Just(Op::Feature),
    ]
}

fn footprint(len: usize) -> usize {
    (DESCRIPTOR_SIZE + len).div_ceil(8) * 8 + TRAILER_SIZE
}

#[derive(Default)]
struct Model {
    size: usize,
    /// Written, not yet read: (trans_id, data).
    queue: VecDeque<(u64, Vec<u8>)>,
    /// Bytes between the published read index and the write index.
    used: usize,
    /// Bytes read but not committed.
    uncommitted: usize,
    mask: bool,
    pending: u32,
    feature: bool,
}

fn run(size: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut ring = vec![0; size];
    let mem = LocalMemory::new(&mut ring);
    let mut p = RingProducer::new(&mem).expect("ring");
    let mut c = RingConsumer::new(&mem).expect("ring");
    let mut m = Model {
        size,
        ..Default::default()
    };
    let mut next_id = 0u64;
    let mut buf = vec![0u8; size];
    for op in ops {
        match op {
            Op::Write(len) => {
                let data: Vec<u8> = (0..len).map(|i| (i as u64 + next_id * 31) as u8).collect();
                let need = footprint(len);
                let free = m.size - m.used;
                let got = p.write_inband(next_id, PacketFlags::NONE, &data);
                if free <= need {
                    prop_assert_eq!(got, Err(RingError::Full { need, free }));
                } else {
                    // Signal iff the consumer is unmasked and had consumed
                    // (and published) everything.
                    prop_assert_eq!(got, Ok(!m.mask && m.used == 0));
                    m.used += need;
                    m.queue.push_back((next_id, data));
                    next_id += 1;
                }
            }
            Op::Read => {
                let got = c.read_packet(&mut buf).expect("valid ring");
                match m.queue.pop_front() {
                    None => prop_assert!(got.is_none()),
                    Some((id, data)) => {
                        let pk = got.expect("a packet");
                        prop_assert_eq!(pk.desc.trans_id, id);
                        prop_assert_eq!(&pk.data()[..data.len()], &data[..]);
                        prop_assert!(pk.data()[data.len()..].iter().all(|&b| b == 0));
                        m.uncommitted += footprint(data.len());
                    }
                }
            }
            Op::Commit => {
                let free_before = m.size - m.used;
                m.used -= m.uncommitted;
                let free_now = m.size - m.used;
                let expect = m.uncommitted > 0
                    && m.feature
                    && m.pending != 0
                    && free_before <= m.pending as usize
                    && free_now > m.pending as usize;
                m.uncommitted = 0;
                prop_assert_eq!(c.commit(), Ok(expect));
            }
            Op::Mask => {
                c.mask_interrupts();
                m.mask = true;
            }
            Op::Unmask => {
                m.mask = false;
                prop_assert_eq!(c.unmask_interrupts(), Ok(!m.queue.is_empty()));
            }
            Op::Pending(n) => {
                m.pending = n;
                prop_assert_eq!(p.set_pending_send_size(n), Ok(m.size - m.used > n as usize));
            }
            Op::ClearPending => {
                m.pending = 0;
                p.clear_pending_send_size();
            }
            Op::Feature => {
                m.feature = true;
                p.enable_pending_send_size();
            }
        }
        // Free-space and availability accounting is exact.
        prop_assert_eq!(p.free_bytes(), Ok((m.size - m.used) as u32));
        prop_assert_eq!(c.bytes_available(), Ok((m.used - m.uncommitted) as u32));
        prop_assert_eq!(mem.field(HeaderField::WriteIndex), p.write_index());
        prop_assert_eq!(mem.field(HeaderField::ReadIndex), c.read_index());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ring_matches_model(size in prop::sample::select(vec![64usize, 128, 256, 520, 1024, 4096]),
                          ops in prop::collection::vec(op(), 1..200)) {
        run(size, ops)?;
    }

    /// Writes and reads in random batches: every byte read is what was
    /// written, in order, however the packets wrap.
    #[test]
    fn streams_survive_wrapping(sizes in prop::collection::vec(0usize..200, 1..100), batch in 1usize..6) {
        let mut ring = vec![0; 512];
        let mem = LocalMemory::new(&mut ring);
        let mut p = RingProducer::new(&mem).expect("ring");
        let mut c = RingConsumer::new(&mem).expect("ring");
        let mut buf = [0u8; 512];
        let mut pending: VecDeque<(u64, u8, usize)> = VecDeque::new();
        for (i, len) in sizes.iter().copied().enumerate() {
            let fill = (i * 7) as u8;
            loop {
                match p.write_inband(i as u64, PacketFlags::NONE, &vec![fill; len]) {
                    Ok(_) => break,
                    Err(RingError::Full { .. }) => {
                        for _ in 0..batch {
                            if let Some((pk, _)) = c.read_and_commit(&mut buf).expect("valid") {
                                let (id, f, l) = pending.pop_front().expect("model has it");
                                prop_assert_eq!(pk.desc.trans_id, id);
                                prop_assert!(pk.data()[..l].iter().all(|&b| b == f));
                            }
                        }
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                }
            }
            pending.push_back((i as u64, fill, len));
        }
        while let Some((pk, _)) = c.read_and_commit(&mut buf).expect("valid") {
            let (id, f, l) = pending.pop_front().expect("model has it");
            prop_assert_eq!(pk.desc.trans_id, id);
            prop_assert!(pk.data()[..l].iter().all(|&b| b == f));
        }
        prop_assert!(pending.is_empty());
    }
}
