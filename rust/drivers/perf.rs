// SPDX-License-Identifier: GPL-2.0

//! The driver of hvhost's benchmark sink (class `vmbus::guid::HVHOST_PERF`, offered by
//! `hvhost --vmbus-perf`; protocol in `vmbus::perf`; selftest build only:
//! a benchmark, not a device a user has)
//! and the benchmark it serves in the file `perf` of its device's debugfs
//! directory, `/sys/kernel/debug/hv_guest/vmbus/devices/hvhost_perf.N/`:
//!
//! - `stream COUNT SIZE`: sends COUNT in-band packets of SIZE bytes as fast
//!   as the ring allows (waiting for space with `pending_send_sz` when it
//!   is full, [`Channel::send_inband_wait`]), bracketed by two requests
//!   that fetch the host's counters, so the report says whether every
//!   packet arrived and what the host saw meanwhile;
//! - `rtt COUNT SIZE`: COUNT round trips, each a packet that asks for a
//!   completion and waits for it.
//!
//! The raw exit the ratios are taken against is the contract tests'
//! `bench raw_exit` (`crate::selftest::contract`).
//!
//! Reading the file gives the last run's report, one line of `key=value`
//! pairs. Cycles are guest TSC cycles (RDTSC): `cycles_per_packet` over the
//! whole loop, and `median_cycles_per_packet`, the median over
//! [`CHUNKS`] equal slices of the loop, which a stall of the machine
//! (the rig shares two cores) moves far less. Like every timing from the
//! rig they mean something only as a ratio to another measurement of the
//! same run (the raw exit).
//!
//! Nothing the host answers is trusted: a completion that is too short or
//! counters that went backwards are errors (`EIO`), and every wait has a
//! timeout.

use core::fmt::Write;

use kernel::auxiliary;
use kernel::debugfs::File;
use kernel::device::Core as DeviceCore;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_mutex, Arc, Mutex};
use kernel::uaccess::UserSliceReader;

use crate::bus::channel::{Channel, ChannelHandler};
use crate::bus::device::{channel_of, debugfs_of, Binding, MODULE_NAME};
use crate::cpu::tsc;
use crate::fmt::Out;
use crate::control::{read_command, show_report};
use crate::vmbus::guid::HVHOST_PERF_CLASS;
use crate::vmbus::packet::{align8, Packet, PacketFlags};
use crate::vmbus::perf::{PerfCounters, PERF_COUNTERS_SIZE};

/// Send ring pages, header included: 128 KiB of data, so that one wakeup
/// at half the ring buys many packets.
const SEND_RING_PAGES: usize = 33;
/// Receive ring pages, header included: completions only.
const RECV_RING_PAGES: usize = 5;
/// How long one send waits for ring space, or a request for its answer
/// (generous: the rig is nested emulation).
const WAIT_MS: u32 = 10_000;
/// Bounds of a run.
const MAX_COUNT: u64 = 10_000_000;
const MAX_SIZE: usize = 16384;
/// Slices of a run timed separately (at most; fewer if COUNT is smaller).
const CHUNKS: u64 = 64;

/// The channel handler: the sink sends nothing but completions, which the
/// channel matches to requests itself; anything else is counted.
struct PerfHandler {
    unexpected: Atomic<u64>,
}

impl ChannelHandler for PerfHandler {
    fn on_packet(&self, _ch: &Arc<Channel>, pkt: &Packet<'_>) {
        if self.unexpected.fetch_add(1, Relaxed) == 0 {
            pr_err!(
                "hvhost_perf: unexpected packet of type {:?} from the host (counted from now on)\n",
                pkt.desc.ty
            );
        }
    }
}

kernel::auxiliary_device_table!(
    PERF_IDS,
    (),
    [(auxiliary::DeviceId::new(MODULE_NAME, HVHOST_PERF_CLASS.name), ())]
);

/// The auxiliary driver of the sink's channel devices
/// (`hv_guest.hvhost_perf.N`): probing opens the channel and adds the
/// `perf` file to the device's debugfs directory; unbinding removes the
/// file, then closes the channel. Registered by [`crate::drivers::Drivers`].
pub(crate) struct PerfDriver;

/// What the driver holds while bound. Dropped in field order: the file
/// (no run can be in progress after it is gone), then the binding, which
/// closes the channel.
pub(crate) struct PerfBound {
    _file: Pin<KBox<File<PerfFile>>>,
    _binding: Binding,
}

/// The data of the `perf` file: the channel and the last run's report
/// (whose lock also serializes runs).
#[pin_data]
pub(crate) struct PerfFile {
    ch: Arc<Channel>,
    #[pin]
    report: Mutex<KVec<u8>>,
}

fn show_perf(file: &PerfFile, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    show_report(&file.report, f)
}

/// Writing `stream COUNT SIZE` or `rtt COUNT SIZE` runs that benchmark,
/// in the writer's context.
fn write_perf(file: &PerfFile, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 64];
    let cmd = read_command(reader, &mut buf)?;
    let mut out = file.report.lock();
    run(&file.ch, cmd, &mut out)
}

impl auxiliary::Driver for PerfDriver {
    type IdInfo = ();
    type Data<'bound> = PerfBound;

    const ID_TABLE: auxiliary::IdTable<()> = &PERF_IDS;

    fn probe<'bound>(
        adev: &'bound auxiliary::Device<DeviceCore<'_>>,
        _info: &'bound (),
    ) -> impl PinInit<PerfBound, Error> + 'bound {
        let ch = channel_of(adev)?;
        let dir = debugfs_of(adev)?;
        open(&ch)?;
        // Bound from here on: a failure below drops the binding, which
        // closes the channel again.
        let binding = Binding::new(ch.clone(), "hvhost_perf");
        let file = KBox::pin_init(
            dir.read_write_callback_file(
                c"perf",
                try_pin_init!(PerfFile {
                    ch,
                    report <- new_mutex!(KVec::new(), "hv_guest_perf_report"),
                }? Error),
                &show_perf,
                &write_perf,
            ),
            GFP_KERNEL,
        )?;
        Ok(PerfBound {
            _file: file,
            _binding: binding,
        })
    }
}

/// Opens the sink's channel.
fn open(ch: &Arc<Channel>) -> Result {
    let handler = Arc::new(
        PerfHandler {
            unexpected: Atomic::new(0),
        },
        GFP_KERNEL,
    )?;
    ch.open(SEND_RING_PAGES, RECV_RING_PAGES, handler)
}

/// Asks the host for its counters (one request, counted by the host).
fn host_counters(ch: &Channel) -> Result<PerfCounters> {
    let mut reply = [0u8; PERF_COUNTERS_SIZE];
    let n = ch.request(&[], &mut reply, WAIT_MS)?;
    reply
        .get(..n)
        .and_then(PerfCounters::from_completion)
        .ok_or_else(|| {
            pr_err!(
                "hvhost_perf: completion of {} bytes, need {}\n",
                n,
                PERF_COUNTERS_SIZE
            );
            EIO
        })
}

/// `later - earlier` of a host counter; a host whose counters go backwards
/// is lying.
fn delta(what: &str, earlier: u64, later: u64) -> Result<u64> {
    later.checked_sub(earlier).ok_or_else(|| {
        pr_err!(
            "hvhost_perf: host {} went from {} to {}\n",
            what,
            earlier,
            later
        );
        EIO
    })
}

/// `sent - arrived` as a signed count, saturating: the host's numbers are
/// not trusted to be sane, and a host that saw more than was sent is as
/// wrong as one that saw less.
fn missing(sent: u64, arrived: u64) -> i64 {
    if arrived <= sent {
        i64::try_from(sent - arrived).unwrap_or(i64::MAX)
    } else {
        i64::try_from(arrived - sent).map_or(i64::MIN, |n| -n)
    }
}

/// Guest-side counters of the channel at one moment.
#[derive(Clone, Copy)]
struct Snapshot {
    tsc: u64,
    signals: u64,
    events: u64,
    ring_full: u64,
    space_waits: u64,
}

impl Snapshot {
    fn take(ch: &Channel) -> Self {
        let c = &ch.counters;
        Self {
            tsc: tsc(),
            signals: c.signals.load(Relaxed),
            events: c.events.load(Relaxed),
            ring_full: c.ring_full.load(Relaxed),
            space_waits: c.space_waits.load(Relaxed),
        }
    }
}


#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stream,
    RoundTrip,
}

/// Runs one command written to the `perf` file on channel `ch`; the report
/// goes to `out` (also when the run failed part way: it says how far it
/// got).
fn run(ch: &Channel, cmd: &str, out: &mut KVec<u8>) -> Result {
    let mut words = cmd.split_ascii_whitespace();
    let mode = match words.next() {
        Some("stream") => Mode::Stream,
        Some("rtt") => Mode::RoundTrip,
        _ => return Err(EINVAL),
    };
    let count: u64 = words.next().and_then(|w| w.parse().ok()).ok_or(EINVAL)?;
    let size: usize = words.next().and_then(|w| w.parse().ok()).ok_or(EINVAL)?;
    if words.next().is_some() || count == 0 || count > MAX_COUNT || size > MAX_SIZE {
        return Err(EINVAL);
    }
    let mut payload = KVec::new();
    payload.resize(size, 0x5a, GFP_KERNEL)?;
    out.clear();
    let mut w = Out(out);

    let chunk = count.div_ceil(CHUNKS);
    let mut slices = KVec::with_capacity(CHUNKS as usize, GFP_KERNEL)?;
    let before = host_counters(ch)?;
    let start = Snapshot::take(ch);
    let mut slice_start = start.tsc;
    let mut done = 0u64;
    let mut failed = None;
    let mut reply = [0u8; PERF_COUNTERS_SIZE];
    while done < count {
        let r = match mode {
            Mode::Stream => ch.send_inband_wait(done, PacketFlags::NONE, &payload, WAIT_MS),
            Mode::RoundTrip => ch.request(&payload, &mut reply, WAIT_MS).map(|_| ()),
        };
        if let Err(e) = r {
            failed = Some(e);
            break;
        }
        done += 1;
        if done % chunk == 0 {
            let now = tsc();
            // Capacity was reserved: never allocates.
            let _ = slices.push(now.wrapping_sub(slice_start) / chunk, GFP_KERNEL);
            slice_start = now;
        }
    }
    let end = Snapshot::take(ch);
    slices.sort_unstable();
    let median = slices.get(slices.len() / 2).copied().unwrap_or(0);
    let name = if mode == Mode::Stream {
        "stream"
    } else {
        "rtt"
    };
    let cycles = end.tsc.wrapping_sub(start.tsc);
    let _ = write!(
        w,
        "mode={} packets={} size={} cycles={} cycles_per_packet={} median_cycles_per_packet={} slices={} signals={} ring_full={} space_waits={} interrupts={}",
        name,
        done,
        size,
        cycles,
        cycles / done.max(1),
        median,
        slices.len(),
        end.signals.wrapping_sub(start.signals),
        end.ring_full.wrapping_sub(start.ring_full),
        end.space_waits.wrapping_sub(start.space_waits),
        end.events.wrapping_sub(start.events),
    );
    if let Some(e) = failed {
        let _ = writeln!(w, " error={}", e.to_errno());
        pr_err!(
            "hvhost_perf: {} stopped after {} of {} packets: {:?}\n",
            name,
            done,
            count,
            e
        );
        return Err(e);
    }
    // In order: this answer comes after the host read every packet above.
    let after = host_counters(ch)?;
    // The host counts both bracketing requests; `after` includes itself.
    let host_packets = delta("packets", before.packets, after.packets)?.saturating_sub(1);
    let host_bytes = delta("bytes", before.bytes, after.bytes)?;
    // At most MAX_COUNT * MAX_SIZE: no overflow.
    let expected_bytes = done * align8(size) as u64;
    let _ = writeln!(
        w,
        " host_packets={} host_bytes={} host_signals={} host_interrupts={} completions_dropped={} lost={} bytes_lost={}",
        host_packets,
        host_bytes,
        delta("signals", before.guest_signals, after.guest_signals)?,
        delta("interrupts", before.guest_interrupts, after.guest_interrupts)?,
        delta("dropped", before.completions_dropped, after.completions_dropped)?,
        missing(done, host_packets),
        missing(expected_bytes, host_bytes),
    );
    Ok(())
}
