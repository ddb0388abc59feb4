// SPDX-License-Identifier: GPL-2.0

//! The benchmark sink ([`PerfSink`]) against the fake partition: counting,
//! completions with the counters, the `pending_send_sz` wakeup of a guest
//! whose send ring was full, and what a hostile guest gets (a closed
//! channel, never a panic).

use vmbus::gpadl::GpadlRange;
use vmbus::packet::{PacketFlags, PacketType};
use vmbus::perf::PerfCounters;
use vmbus::ring::{RingError, RingProducer};

use super::super::perf::PerfSink;
use super::*;

/// The sink's relid: after the three ICs.
const PERF: u32 = 4;

fn perf_rig() -> Rig {
    let mut r = rig();
    assert_eq!(r.server.add_device(Box::new(PerfSink::new())), Some(PERF));
    r.connect();
    r
}

/// Reads every packet the host wrote to the guest; completions' counters.
fn completions(ch: &mut GuestChannel) -> Vec<(u64, PerfCounters)> {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    while let Some((p, _)) = ch
        .recv
        .read_and_commit(&mut buf)
        .expect("host ring is sane")
    {
        assert_eq!(p.desc.ty, PacketType::COMP);
        let c = PerfCounters::from_completion(p.data()).expect("counters");
        out.push((p.desc.trans_id, c));
    }
    out
}

fn interrupts(r: &Rig) -> usize {
    r.port
        .signals
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, relid)| *relid == PERF)
        .count()
}

#[test]
fn sink_counts_packets_and_answers_with_its_counters() {
    let mut r = perf_rig();
    let (status, mut ch) = r.open(PERF);
    assert_eq!(status, 0);
    // Opening sends nothing: the sink only answers.
    assert_eq!(interrupts(&r), 0);
    for i in 0..10u64 {
        let _ = ch
            .send
            .write_inband(i, PacketFlags::NONE, &[0xa5; 60])
            .expect("room");
    }
    r.server.handle_signal(PERF, r.now);
    assert!(completions(&mut ch).is_empty());
    let _ = ch
        .send
        .write_inband(99, PacketFlags::COMPLETION_REQUESTED, &[])
        .expect("room");
    r.server.handle_signal(PERF, r.now);
    let got = completions(&mut ch);
    assert_eq!(
        got,
        vec![(
            99,
            PerfCounters {
                packets: 11,
                // 60 bytes travel padded to 64.
                bytes: 10 * 64,
                guest_signals: 2,
                guest_interrupts: 0,
                completions_dropped: 0,
            }
        )]
    );
    // The completion went into an empty ring: one interrupt.
    assert_eq!(interrupts(&r), 1);
    // Closing and reopening starts from zero.
    r.send(&msg(&CloseChannel { child_relid: PERF }));
    assert!(!r.server.is_open(PERF));
    // The report keeps the closed channel's counts (the benchmark reads them).
    let report = r.server.report("");
    assert!(
        report.contains(" name=perf ")
            && report.contains(" packets=11 bytes=640 completions_dropped=0"),
        "{report}"
    );
    r.send(&msg(&GpadlTeardown {
        child_relid: PERF,
        gpadl: ch.gpadl,
    }));
    r.replies();
    let (_, mut ch) = r.open(PERF);
    let _ = ch
        .send
        .write_inband(1, PacketFlags::COMPLETION_REQUESTED, &[1; 8])
        .expect("room");
    r.server.handle_signal(PERF, r.now);
    let got = completions(&mut ch);
    assert_eq!((got[0].1.packets, got[0].1.bytes), (1, 8));
}

/// A guest that found its send ring full sets `pending_send_sz` and waits:
/// the host's drain signals it exactly once, when the free space crosses
/// the threshold, not once per packet read.
#[test]
fn full_send_ring_is_woken_once_by_pending_send_size() {
    let mut r = perf_rig();
    let (_, mut ch) = r.open(PERF);
    ch.send.enable_pending_send_size();
    let data = [7u8; 1000];
    let mut sent = 0u64;
    let need = loop {
        match ch.send.write_inband(sent, PacketFlags::NONE, &data) {
            Ok(_) => sent += 1,
            Err(RingError::Full { need, .. }) => break need,
            Err(e) => panic!("{e}"),
        }
    };
    // 3 data pages, 1024 bytes a packet (1016 + 8 trailer), one slot free.
    assert_eq!(sent, 11);
    // Ask for half the ring, as hv_guest's sender does.
    let threshold = (ch.send.data_len() / 2).max(need as u32);
    assert_eq!(ch.send.set_pending_send_size(threshold), Ok(false));
    r.server.handle_signal(PERF, r.now);
    assert_eq!(interrupts(&r), 1, "one wakeup for the whole drain");
    assert!(ch.send.free_bytes().expect("sane") > threshold);
    ch.send.clear_pending_send_size();
    // Without pending_send_sz, a drain sends nothing.
    for i in 0..5 {
        let _ = ch
            .send
            .write_inband(i, PacketFlags::NONE, &data)
            .expect("room");
    }
    r.server.handle_signal(PERF, r.now);
    assert_eq!(interrupts(&r), 1);
    let _ = ch
        .send
        .write_inband(0, PacketFlags::COMPLETION_REQUESTED, &[])
        .expect("room");
    r.server.handle_signal(PERF, r.now);
    let got = completions(&mut ch);
    assert_eq!(got[0].1.packets, 11 + 5 + 1);
    assert_eq!(got[0].1.guest_interrupts, 1);
    assert_eq!(got[0].1.guest_signals, 3);
}

/// A guest that asks for completions and never reads them fills its
/// receive ring: the sink drops (and counts) the rest and keeps going.
#[test]
fn completions_that_do_not_fit_are_dropped_and_counted() {
    let mut r = perf_rig();
    let (_, mut ch) = r.open(PERF);
    // Each completion takes 16 + 40 + 8 = 64 bytes of the 12 KiB ring.
    let fit = (ch.recv.data_len() as usize - 1) / 64;
    let asked = fit + 10;
    for round in 0..asked / 100 + 1 {
        for i in 0..100 {
            let t = (round * 100 + i) as u64;
            if t < asked as u64 {
                let _ = ch
                    .send
                    .write_inband(t, PacketFlags::COMPLETION_REQUESTED, &[])
                    .expect("room");
            }
        }
        r.server.handle_signal(PERF, r.now);
    }
    assert!(r.server.is_open(PERF));
    let got = completions(&mut ch);
    assert_eq!(got.len(), fit);
    let _ = ch
        .send
        .write_inband(7, PacketFlags::COMPLETION_REQUESTED, &[])
        .expect("room");
    r.server.handle_signal(PERF, r.now);
    let last = completions(&mut ch);
    assert_eq!(last[0].1.packets, asked as u64 + 1);
    assert_eq!(last[0].1.completions_dropped, 10);
}

#[test]
fn anything_but_inband_data_closes_the_channel() {
    type Bad = fn(&mut RingProducer<GuestRing>) -> Result<bool, RingError>;
    let cases: [(&str, Bad); 3] = [
        ("gpa direct", |p| {
            let range = GpadlRange {
                byte_count: 16,
                byte_offset: 0,
                pfns: &[0x10],
            };
            p.write_gpa_direct(1, PacketFlags::NONE, &[range], b"x")
        }),
        ("unknown flag", |p| {
            p.write_inband(1, PacketFlags(0x8), b"x")
        }),
        ("completion", |p| {
            p.write_packet(PacketType::COMP, PacketFlags::NONE, 1, &[], b"x")
        }),
    ];
    for (what, bad) in cases {
        let mut r = perf_rig();
        let (_, mut ch) = r.open(PERF);
        let _ = ch
            .send
            .write_inband(0, PacketFlags::NONE, &[1; 8])
            .expect("room");
        let _ = bad(&mut ch.send).expect("room");
        r.server.handle_signal(PERF, r.now);
        assert!(!r.server.is_open(PERF), "{what}: still open");
        assert_eq!(r.server.stats().faults, 1, "{what}");
        // The other channels are untouched.
        let (status, _) = r.open(1);
        assert_eq!(status, 0, "{what}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Arbitrary packet types, flags and lengths never panic the sink: it
    /// counts what is valid, closes the channel at the first packet that is
    /// not, and until then every completion carries exact counters.
    #[test]
    fn hostile_packets_never_panic(packets in proptest::collection::vec(
        (0u16..16, 0u16..4, proptest::collection::vec(any::<u8>(), 0..200)), 1..40)) {
        let mut r = perf_rig();
        let (_, mut ch) = r.open(PERF);
        let (mut valid, mut bytes, mut broken) = (0u64, 0u64, false);
        for (ty, flags, data) in packets {
            let ty = PacketType(ty);
            let ok = ty == PacketType::DATA_INBAND && flags & !1 == 0;
            if ch.send.write_packet(ty, PacketFlags(flags), 1, &[], &data).is_err() {
                break;
            }
            r.server.handle_signal(PERF, r.now);
            if !ok {
                broken = true;
                break;
            }
            valid += 1;
            bytes += data.len().div_ceil(8) as u64 * 8;
            if flags & 1 != 0 {
                let got = completions(&mut ch);
                prop_assert_eq!(got.len(), 1);
                prop_assert_eq!((got[0].1.packets, got[0].1.bytes), (valid, bytes));
            }
        }
        prop_assert_eq!(r.server.is_open(PERF), !broken);
    }
}

/// A drain that ran out of budget leaves the guest's ring masked (no
/// signal will come) and the rest for the server's next poll; a device's
/// own poll in between (its thread's waker: storvsp's I/O thread) must not
/// forget that rest. Found by storage_hostile's flood: the guest's writes
/// stalled with its ring full and the host no longer reading.
#[test]
fn a_device_poll_between_drains_keeps_the_rest_of_the_ring() {
    let mut r = perf_rig();
    let (_, mut ch) = r.open(PERF);
    let n = crate::vmbus::server::DRAIN_BUDGET as u64 + 40;
    for i in 0..n {
        // The last asks for the sink's counters.
        let flags = if i == n - 1 {
            PacketFlags::COMPLETION_REQUESTED
        } else {
            PacketFlags::NONE
        };
        let _ = ch.send.write_inband(i, flags, &[1; 8]).expect("room");
    }
    r.server.handle_signal(PERF, r.now);
    // The device's thread asks for a poll before the server's loop runs.
    r.server.poll_channel(PERF, r.now);
    // The server's loop: what is due, until nothing is. No signal comes
    // from the guest: the host masked its interrupts for the drain.
    while r.server.poll(r.now).is_some_and(|t| t <= r.now) {}
    let got = completions(&mut ch);
    assert_eq!(
        got.len(),
        1,
        "the last packet was read without a new signal"
    );
    assert_eq!(got[0].1.packets, n);
}
