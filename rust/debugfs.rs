// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/hv_guest/`: what detection found, one value per file,
//! in the same text as the load-time log; the hypercall statistics; the
//! SynIC's vectors and counters; and `contract`, which runs the contract
//! tests when written and shows their KTAP when read; `vmbus/`, the VMBus
//! client and its channels ([`crate::bus::view`]) and `vmbus/perf`, the
//! streaming benchmark against hvhost's sink ([`crate::perf`]). Removed
//! with the module.

use core::fmt::{self, Display, Formatter};

use kernel::sync::{new_mutex, Arc, Mutex};
use kernel::uaccess::UserSliceReader;
use kernel::{debugfs::Scope, prelude::*};

use crate::hvcall::cpuid::{HvInfo, LimitsLeaf, VendorText};
use crate::hypercall::COUNTED;
use crate::synic::SINTS;
use crate::Core;

/// What the files show.
#[pin_data]
pub(crate) struct DebugData {
    info: HvInfo,
    core: Arc<Core>,
    /// The VMBus client, if the host has VMBus.
    vmbus: Option<Arc<crate::bus::VmBus>>,
    /// KTAP of the last contract test run (serializes runs, too).
    #[pin]
    contract: Mutex<KVec<u8>>,
    /// What the last `vmbus/misbehave` command did (serializes them, too).
    #[pin]
    misbehave: Mutex<KVec<u8>>,
    /// Report of the last `vmbus/perf` run (serializes runs, too).
    #[pin]
    perf: Mutex<KVec<u8>>,
}

fn show<T: Display>(value: &T, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", value)
}

fn show_vendor(vendor: &[u8; 12], f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", VendorText(vendor))
}

fn show_hex(value: &u32, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{:#x}", value)
}

fn show_limits(limits: &LimitsLeaf, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "max_vps {}", limits.max_vps)?;
    writeln!(f, "max_lps {}", limits.max_lps)?;
    writeln!(f, "max_int_vectors {}", limits.max_int_vectors)
}

fn show_hypercalls(data: &DebugData, f: &mut Formatter<'_>) -> fmt::Result {
    let stats = &data.core.hypercalls.stats.0;
    for (i, s) in stats.iter().enumerate() {
        let name = COUNTED.get(i).map_or("other", |(_, n)| *n);
        let calls = s.calls.load(kernel::sync::atomic::Relaxed);
        let errors = s.errors.load(kernel::sync::atomic::Relaxed);
        writeln!(f, "{} calls {} errors {}", name, calls, errors)?;
    }
    Ok(())
}

fn show_synic(data: &DebugData, f: &mut Formatter<'_>) -> fmt::Result {
    let synic = data.core.synic.synic();
    let mut vectors = KVec::new();
    if synic.vectors(&mut vectors).is_ok() {
        for v in vectors.iter() {
            writeln!(
                f,
                "cpu {} sint {} vector {:#x} irq {}",
                v.cpu, v.sint, v.vector, v.irq
            )?;
        }
    }
    for (sint, _) in SINTS {
        if let Some(c) = synic.counters(sint) {
            write!(f, "sint {}", sint)?;
            for (name, value) in c.values() {
                write!(f, " {} {}", name, value)?;
            }
            writeln!(f)?;
        }
    }
    Ok(())
}

/// The text a control file's last command left (a report, KTAP).
fn show_report(report: &Mutex<KVec<u8>>, f: &mut Formatter<'_>) -> fmt::Result {
    let out = report.lock();
    f.write_str(core::str::from_utf8(&out).unwrap_or("# (not UTF-8)\n"))
}

/// Reads the command written to a control file into `buf` (a longer write
/// is cut at its size) and returns it trimmed; `EINVAL` if not UTF-8.
fn read_command<'a>(reader: &mut UserSliceReader, buf: &'a mut [u8]) -> Result<&'a str> {
    let n = reader.len().min(buf.len());
    reader.read_slice(&mut buf[..n])?;
    Ok(core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?.trim())
}

fn show_contract(data: &DebugData, f: &mut Formatter<'_>) -> fmt::Result {
    show_report(&data.contract, f)
}

/// Writing `run` runs the contract tests expecting the TLFS's answers,
/// `run qemu` also accepting QEMU+KVM's documented ones, `traffic` only a
/// message echo and an event on every CPU, `statuses` and `roundtrip`
/// the two halves of `run`, `hostile` hvhost's fault
/// injection (see `contract_tests`), `bench PHASE` one benchmark
/// phase (in the writer's context; one run at a time).
fn run_contract(data: &DebugData, reader: &mut UserSliceReader) -> Result {
    use crate::contract_tests::{BenchPhase, Peer, Suite};
    let mut buf = [0u8; 32];
    let cmd = read_command(reader, &mut buf)?;
    let (peer, suite) = match cmd {
        "run" => (Peer::Tlfs, Suite::All),
        "run qemu" => (Peer::Qemu, Suite::All),
        "traffic" => (Peer::Tlfs, Suite::Traffic),
        "hostile" => (Peer::Tlfs, Suite::Hostile),
        "statuses" => (Peer::Tlfs, Suite::Statuses),
        "roundtrip" => (Peer::Tlfs, Suite::Roundtrip),
        _ => match cmd.strip_prefix("bench ").and_then(BenchPhase::parse) {
            Some(phase) => (Peer::Tlfs, Suite::Bench(phase)),
            None => return Err(EINVAL),
        },
    };
    let mut out = data.contract.lock();
    *out = crate::contract_tests::run(&data.core.hypercalls, data.core.synic.synic(), peer, suite)?;
    Ok(())
}

fn show_perf(data: &DebugData, f: &mut Formatter<'_>) -> fmt::Result {
    show_report(&data.perf, f)
}

/// Writing `stream COUNT SIZE` or `rtt COUNT SIZE` runs that benchmark
/// against hvhost's sink (see [`crate::perf`]), in the writer's context;
/// `raw` measures the raw exit the ratios are taken against, with the
/// contract tests' `bench raw_exit` (the same numbers bench_hypercalls
/// divides by).
fn run_perf(data: &DebugData, reader: &mut UserSliceReader) -> Result {
    use crate::contract_tests::{BenchPhase, Peer, Suite};
    let mut buf = [0u8; 64];
    let cmd = read_command(reader, &mut buf)?;
    let mut out = data.perf.lock();
    if cmd == "raw" {
        *out = crate::contract_tests::run(
            &data.core.hypercalls,
            data.core.synic.synic(),
            Peer::Tlfs,
            Suite::Bench(BenchPhase::RawExit),
        )?;
        return Ok(());
    }
    crate::perf::run(data.vmbus.as_deref(), cmd, &mut out)
}

fn show_vmbus_state(data: &DebugData, f: &mut Formatter<'_>) -> fmt::Result {
    crate::bus::view::show_state(data.vmbus.as_deref(), f)
}

fn show_vmbus_channels(data: &DebugData, f: &mut Formatter<'_>) -> fmt::Result {
    crate::bus::view::show_channels(data.vmbus.as_deref(), f)
}

fn show_vmbus_ic(_data: &DebugData, f: &mut Formatter<'_>) -> fmt::Result {
    crate::bus::view::show_ic(f)
}

fn show_misbehave(data: &DebugData, f: &mut Formatter<'_>) -> fmt::Result {
    show_report(&data.misbehave, f)
}

/// Writing `RELID CPU` moves channel RELID's interrupts to CPU
/// (MODIFYCHANNEL); `ENODEV` for an unknown relid or without VMBus.
fn run_retarget(data: &DebugData, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 32];
    let text = read_command(reader, &mut buf)?;
    let (relid, cpu) = text.split_once(' ').ok_or(EINVAL)?;
    let relid: u32 = relid.trim().parse().map_err(|_| EINVAL)?;
    let cpu: u32 = cpu.trim().parse().map_err(|_| EINVAL)?;
    let vmbus = data.vmbus.as_ref().ok_or(ENODEV)?;
    let ch = vmbus
        .bus()
        .channels()
        .into_iter()
        .find(|c| c.relid() == relid)
        .ok_or(ENODEV)?;
    ch.retarget(cpu)
}

/// Writing a command makes the VMBus client break the protocol on purpose
/// (see [`crate::bus::misbehave`]); `ENODEV` without VMBus.
fn run_misbehave(data: &DebugData, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 64];
    let cmd = read_command(reader, &mut buf)?;
    let vmbus = data.vmbus.as_ref().ok_or(ENODEV)?;
    let mut out = data.misbehave.lock();
    crate::bus::misbehave::run(vmbus.bus(), cmd, &mut out)
}

/// Creates the directory; it lives as long as the returned scope.
pub(crate) fn create(
    info: HvInfo,
    core: Arc<Core>,
    vmbus: Option<Arc<crate::bus::VmBus>>,
) -> impl PinInit<Scope<DebugData>, Error> {
    let data = try_pin_init!(DebugData {
        info,
        core,
        vmbus,
        contract <- new_mutex!(KVec::new(), "hv_guest_contract"),
        misbehave <- new_mutex!(KVec::new(), "hv_guest_misbehave"),
        perf <- new_mutex!(KVec::new(), "hv_guest_perf"),
    }? Error);
    Scope::dir(data, c"hv_guest", |data, dir| {
        let info = &data.info;
        dir.read_callback_file(c"vendor", &info.vendor, &show_vendor);
        dir.read_callback_file(c"max_leaf", &info.max_leaf, &show_hex);
        dir.read_callback_file(c"version", &info.version, &show);
        dir.read_callback_file(c"privileges", &info.privileges, &show);
        dir.read_callback_file(c"features", &info.features, &show);
        dir.read_callback_file(c"recommendations", &info.recommendations, &show);
        dir.read_callback_file(c"spin_retries", &info.spin_retries, &show_hex);
        dir.read_callback_file(c"limits", &info.limits, &show_limits);
        dir.read_callback_file(c"hypercalls", data, &show_hypercalls);
        dir.read_callback_file(c"synic", data, &show_synic);
        dir.read_write_callback_file(c"contract", data, &show_contract, &run_contract);
        let vmbus = dir.dir(c"vmbus");
        vmbus.read_callback_file(c"state", data, &show_vmbus_state);
        vmbus.read_callback_file(c"channels", data, &show_vmbus_channels);
        vmbus.read_callback_file(c"ic", data, &show_vmbus_ic);
        vmbus.read_write_callback_file(c"misbehave", data, &show_misbehave, &run_misbehave);
        vmbus.write_only_callback_file(c"retarget", data, &run_retarget);
        vmbus.read_write_callback_file(c"perf", data, &show_perf, &run_perf);
    })
}
