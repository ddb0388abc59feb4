// SPDX-License-Identifier: GPL-2.0

//! Ring throughput against plain copies. Each ring round is everything a
//! producer and a consumer do for one in-band packet of the given payload
//! size: `RingProducer::write_inband` (free-space check, descriptor, payload
//! copied into the ring, padding, trailer, write index published, the full
//! barrier, the signal decision), `RingConsumer::read_packet` (write index
//! loaded and checked, descriptor checked, the packet copied out into the
//! caller's buffer, where the caller reads it) and `commit` (read index
//! published, the signal decision). It is compared with
//!
//! - **memcpy**: the same payload moved once by `copy_from_slice` (the
//!   baseline; the goal is ring ≥ 50% of it at 4 KiB), and
//! - **copy floor**: the two payload copies the ring makes and nothing else
//!   (into a ring-sized buffer at the position the packet would take, then
//!   out of it into the caller's buffer), the best any ring whose producer
//!   copies in and whose consumer copies out can do.
//!
//! Prints ratios of payload bytes per second, not times: only ratios from one
//! run mean anything on a shared machine.
//!
//! Run: `cargo bench -p vmbus --bench ring_copy`

use std::hint::black_box;
use std::time::{Duration, Instant};

use vmbus::packet::{align8, PacketFlags, DESCRIPTOR_SIZE, TRAILER_SIZE};
use vmbus::ring::{LocalMemory, RingConsumer, RingProducer};

/// Ring size: 256 KiB holds the largest packet; `VMBUS_BENCH_RING_KIB` overrides it.
fn ring_data() -> usize {
    std::env::var("VMBUS_BENCH_RING_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(256 * 1024, |k| k * 1024)
}
/// Time per measurement and pass; each of the three rates is measured in
/// `PASSES` interleaved passes and the best kept, so that a burst of load
/// from elsewhere on a shared machine hits one pass, not one column.
const BUDGET: Duration = Duration::from_millis(100);
const PASSES: usize = 3;

/// Page-aligned buffers. The copies' rate depends on where the buffers
/// sit relative to each other (this machine's `memcpy` is many times slower
/// when the destination is 8 or 16 bytes past the source modulo 4 KiB), so
/// the bench places them itself instead of leaving that to the allocator:
/// source and destination page-aligned (a fast case for the baseline) and
/// the ring's data area page-aligned, as a real ring's is.
struct Pages(Vec<u8>, usize);

impl Pages {
    fn new(len: usize) -> Self {
        let v = vec![0u8; len + 4096];
        let off = (v.as_ptr() as usize).next_multiple_of(4096) - v.as_ptr() as usize;
        Self(v, off)
    }
    fn get(&mut self, len: usize) -> &mut [u8] {
        &mut self.0[self.1..self.1 + len]
    }
}

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
    let mut ring = Pages::new(ring_data());
    let mem = LocalMemory::new(ring.get(ring_data()));
    let mut p = RingProducer::new(&mem).expect("ring");
    let mut c = RingConsumer::new(&mem).expect("ring");
    let mut src = Pages::new(64 * 1024);
    let src = src.get(64 * 1024);
    src.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    let mut area = Pages::new(ring_data());
    let area = area.get(ring_data());
    let mut dst = Pages::new(64 * 1024 + 64);
    let dst = dst.get(64 * 1024 + 64);

    println!(
        "VMBus ring copy rate: payload bytes per second as ratios, {} KiB ring (LocalMemory)",
        ring_data() / 1024
    );
    println!(
        "  ring       = write_inband + read_packet into the caller's buffer + commit, per packet"
    );
    println!("  memcpy     = one copy_from_slice of the payload (baseline)");
    println!("  copy floor = the ring's two payload copies alone (in at the packet's position, out to the caller)");
    println!(
        "{:>8}  {:>12}  {:>16}  {:>18}",
        "size", "ring/memcpy", "ring/copy floor", "copy floor/memcpy"
    );
    let mut at_4k = None;
    for size in [64usize, 256, 1024, 4096, 16 * 1024, 64 * 1024]
        .into_iter()
        .filter(|&s| s + 64 < ring_data())
    {
        let payload = &src[..size];
        let mut id = 0u64;
        // The packet's payload sits after its descriptor, and packets
        // follow each other with their trailers, as in the ring; a packet
        // that would wrap starts over at 0 instead of being split.
        let stride = align8(DESCRIPTOR_SIZE + size) + TRAILER_SIZE;
        let mut pos = 0usize;
        let (mut ring, mut one, mut floor) = (0f64, 0f64, 0f64);
        for _ in 0..PASSES {
            ring = ring.max(measure(size, || {
                id += 1;
                let signal = p
                    .write_inband(id, PacketFlags::NONE, black_box(payload))
                    .expect("fits");
                black_box(signal);
                let pk = c.read_packet(dst).expect("valid").expect("a packet");
                black_box(pk.data()[0]);
                black_box(c.commit().expect("valid"));
            }));
            one = one.max(measure(size, || {
                dst[..size].copy_from_slice(black_box(payload));
                black_box(&dst[0]);
            }));
            floor = floor.max(measure(size, || {
                if pos + stride > area.len() {
                    pos = 0;
                }
                let at = pos + DESCRIPTOR_SIZE;
                area[at..at + size].copy_from_slice(black_box(payload));
                black_box(&area[at]);
                dst[DESCRIPTOR_SIZE..DESCRIPTOR_SIZE + size]
                    .copy_from_slice(black_box(&area[at..at + size]));
                black_box(&dst[DESCRIPTOR_SIZE]);
                pos += stride;
            }));
        }
        let label = if size >= 1024 {
            format!("{} KiB", size / 1024)
        } else {
            format!("{} B", size)
        };
        println!(
            "{:>8}  {:>11.0}%  {:>15.0}%  {:>17.0}%",
            label,
            100.0 * ring / one,
            100.0 * ring / floor,
            100.0 * floor / one
        );
        if size == 4096 {
            at_4k = Some((ring / one, floor / one));
        }
    }
    if let Some((ring, floor)) = at_4k {
        println!(
            "4 KiB: ring write+read = {:.0}% of one memcpy of the payload (goal: 50%); its two payload copies alone = {:.0}%",
            100.0 * ring,
            100.0 * floor
        );
    }
}
