// SPDX-License-Identifier: GPL-2.0

//! Ring throughput against plain copies: each round writes one in-band
//! packet of the given payload size into the ring and reads it out again
//! (two copies plus descriptor, trailer and index work), versus the same
//! payload moved by `copy_from_slice` once (the brief's baseline) and twice
//! (the same copying work without the ring). Prints ratios, not times: only
//! ratios from one run mean anything on a shared machine.
//!
//! Run: `cargo bench -p vmbus --bench ring_copy`

use std::hint::black_box;
use std::time::{Duration, Instant};

use vmbus::packet::PacketFlags;
use vmbus::ring::{LocalMemory, RingConsumer, RingProducer};

/// Ring size: 256 KiB holds the largest packet; `VMBUS_BENCH_RING_KIB` overrides it.
fn ring_data() -> usize {
    std::env::var("VMBUS_BENCH_RING_KIB").ok().and_then(|v| v.parse::<usize>().ok()).map_or(256 * 1024, |k| k * 1024)
}
const BUDGET: Duration = Duration::from_millis(300);

/// Best bytes per second of `round` (which moves `size` payload bytes)
/// over a few timed batches.
fn measure(size: usize, mut round: impl FnMut()) -> f64 {
    let mut n = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            round();
        }
        if t.elapsed() > Duration::from_millis(20) {
            break;
        }
        n *= 2;
    }
    let mut best = 0f64;
    let start = Instant::now();
    while start.elapsed() < BUDGET {
        let t = Instant::now();
        for _ in 0..n {
            round();
        }
        best = best.max((n * size) as f64 / t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let mut ring = vec![0; ring_data()];
    let mem = LocalMemory::new(&mut ring);
    let mut p = RingProducer::new(&mem).expect("ring");
    let mut c = RingConsumer::new(&mem).expect("ring");
    let src: Vec<u8> = (0..64 * 1024).map(|i| i as u8).collect();
    let mut mid = vec![0u8; 64 * 1024 + 64];
    let mut dst = vec![0u8; 64 * 1024 + 64];

    println!("ring write+read vs copy_from_slice, {} KiB ring, payload bytes per second as ratios", ring_data() / 1024);
    println!("{:>8}  {:>14}  {:>16}", "size", "ring/memcpy", "ring/2x memcpy");
    for size in [64usize, 256, 1024, 4096, 16 * 1024, 64 * 1024].into_iter().filter(|&s| s + 64 < ring_data()) {
        let payload = &src[..size];
        let mut id = 0u64;
        let ring = measure(size, || {
            id += 1;
            let signal = p.write_inband(id, PacketFlags::NONE, black_box(payload)).expect("fits");
            black_box(signal);
            let pk = c.read_packet(&mut dst).expect("valid").expect("a packet");
            black_box(pk.data()[0]);
            black_box(c.commit().expect("valid"));
        });
        let one = measure(size, || {
            dst[..size].copy_from_slice(black_box(payload));
            black_box(&dst[0]);
        });
        let two = measure(size, || {
            mid[..size].copy_from_slice(black_box(payload));
            black_box(&mid[0]);
            dst[..size].copy_from_slice(black_box(&mid[..size]));
            black_box(&dst[0]);
        });
        let label = if size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{} B", size) };
        println!("{:>8}  {:>13.0}%  {:>15.0}%", label, 100.0 * ring / one, 100.0 * ring / two);
    }
}
