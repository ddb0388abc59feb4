// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/hv_guest/`, the top layer's view of the module: what
//! detection found, one value per file, in the same text as the load-time
//! log; the hypercall statistics (a record per call code) and the SynIC's
//! vectors (a record per CPU and SINT) and counters (a record per SINT),
//! one record per line with `key=value` fields;
//! `vmbus/`, the VMBus client and its channels ([`crate::bus::view`]) and
//! what the utility drivers saw; `vmbus/devices/<class>.<relid>/`, one
//! directory per channel device, where its driver puts its own files.
//! Removed with the module. (The selftest build adds its control files
//! from `crate::selftest`, above this layer.)
//!
//! The directories are [`Dir`] handles so that files can come and go with
//! the devices; each file owns a reference to [`DebugData`].

use core::fmt::{self, Formatter};

use kernel::debugfs::{Dir, File};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uaccess::UserSliceReader;

use crate::control::read_command;

use crate::hvcall::cpuid::VendorText;
use crate::hvcall::cpuid::HvInfo;
use crate::hypercall::COUNTED;
use crate::synic::SINTS;
use crate::Core;

/// What the files show.
pub(crate) struct DebugData {
    pub(crate) info: HvInfo,
    pub(crate) core: Arc<Core>,
    /// The VMBus client, if the host has VMBus.
    pub(crate) vmbus: Option<Arc<crate::bus::VmBus>>,
}

/// The module's directories: `hv_guest/`, `hv_guest/vmbus/` and
/// `hv_guest/vmbus/devices/` (made before the bus, which puts its devices'
/// directories there).
pub(crate) struct Dirs {
    pub(crate) root: Dir,
    pub(crate) vmbus: Dir,
    pub(crate) devices: Dir,
}

impl Dirs {
    pub(crate) fn new() -> Self {
        let root = Dir::new(c"hv_guest");
        let vmbus = root.subdir(c"vmbus");
        let devices = vmbus.subdir(c"devices");
        Self {
            root,
            vmbus,
            devices,
        }
    }
}

/// A file that shows (and maybe takes commands about) [`DebugData`].
type DataFile = Pin<KBox<File<Arc<DebugData>>>>;

/// The files; dropping this removes them.
pub(crate) struct Files {
    _files: KVec<DataFile>,
}

/// `data` as a file's initializer.
fn d(data: &Arc<DebugData>) -> Result<Arc<DebugData>> {
    Ok(data.clone())
}

/// Adds the file `init` makes to `files`.
fn add(
    files: &mut KVec<DataFile>,
    init: impl PinInit<File<Arc<DebugData>>, Error>,
) -> Result {
    files.push(KBox::pin_init(init, GFP_KERNEL)?, GFP_KERNEL)?;
    Ok(())
}

/// Creates the module's files in `dirs`.
pub(crate) fn create(dirs: &Dirs, data: Arc<DebugData>) -> Result<Files> {
    let mut f = KVec::new();
    let (root, vmbus) = (&dirs.root, &dirs.vmbus);
    add(&mut f, root.read_callback_file(c"vendor", d(&data), &show_vendor))?;
    add(&mut f, root.read_callback_file(c"max_leaf", d(&data), &show_max_leaf))?;
    add(&mut f, root.read_callback_file(c"version", d(&data), &show_version))?;
    add(&mut f, root.read_callback_file(c"privileges", d(&data), &show_privileges))?;
    add(&mut f, root.read_callback_file(c"features", d(&data), &show_features))?;
    add(
        &mut f,
        root.read_callback_file(c"recommendations", d(&data), &show_recommendations),
    )?;
    add(&mut f, root.read_callback_file(c"spin_retries", d(&data), &show_spin_retries))?;
    add(&mut f, root.read_callback_file(c"limits", d(&data), &show_limits))?;
    add(&mut f, root.read_callback_file(c"hypercalls", d(&data), &show_hypercalls))?;
    add(&mut f, root.read_callback_file(c"synic", d(&data), &show_synic))?;
    add(&mut f, vmbus.read_callback_file(c"state", d(&data), &show_vmbus_state))?;
    add(&mut f, vmbus.read_callback_file(c"channels", d(&data), &show_vmbus_channels))?;
    add(&mut f, vmbus.read_callback_file(c"ic", d(&data), &show_vmbus_ic))?;
    add(&mut f, vmbus.write_callback_file(c"retarget", d(&data), &run_retarget))?;
    Ok(Files { _files: f })
}

type D = Arc<DebugData>;

fn show_vendor(d: &D, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", VendorText(&d.info.vendor))
}

fn show_max_leaf(d: &D, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{:#x}", d.info.max_leaf)
}

fn show_version(d: &D, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", d.info.version)
}

fn show_privileges(d: &D, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", d.info.privileges)
}

fn show_features(d: &D, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", d.info.features)
}

fn show_recommendations(d: &D, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", d.info.recommendations)
}

fn show_spin_retries(d: &D, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{:#x}", d.info.spin_retries)
}

fn show_limits(d: &D, f: &mut Formatter<'_>) -> fmt::Result {
    let limits = &d.info.limits;
    writeln!(
        f,
        "max_vps={} max_lps={} max_int_vectors={}",
        limits.max_vps, limits.max_lps, limits.max_int_vectors
    )
}

fn show_hypercalls(data: &D, f: &mut Formatter<'_>) -> fmt::Result {
    let stats = &data.core.hypercalls.stats.0;
    for (i, s) in stats.iter().enumerate() {
        let name = COUNTED.get(i).map_or("other", |(_, n)| *n);
        let calls = s.calls.load(kernel::sync::atomic::Relaxed);
        let errors = s.errors.load(kernel::sync::atomic::Relaxed);
        writeln!(f, "call={} calls={} errors={}", name, calls, errors)?;
    }
    Ok(())
}

fn show_synic(data: &D, f: &mut Formatter<'_>) -> fmt::Result {
    let synic = data.core.synic.synic();
    let mut vectors = KVec::new();
    if synic.vectors(&mut vectors).is_ok() {
        for v in vectors.iter() {
            writeln!(
                f,
                "cpu={} sint={} vector={:#x} irq={}",
                v.cpu, v.sint, v.vector, v.irq
            )?;
        }
    }
    for (sint, _) in SINTS {
        if let Some(c) = synic.counters(sint) {
            write!(f, "sint={}", sint)?;
            for (name, value) in c.values() {
                write!(f, " {}={}", name, value)?;
            }
            writeln!(f)?;
        }
    }
    Ok(())
}

fn show_vmbus_state(data: &D, f: &mut Formatter<'_>) -> fmt::Result {
    crate::bus::view::show_state(data.vmbus.as_deref(), f)
}

fn show_vmbus_channels(data: &D, f: &mut Formatter<'_>) -> fmt::Result {
    crate::bus::view::show_channels(data.vmbus.as_deref(), f)
}

fn show_vmbus_ic(_data: &D, f: &mut Formatter<'_>) -> fmt::Result {
    crate::drivers::ic::show(f)
}

/// Writing `RELID CPU` moves channel RELID's interrupts to CPU
/// (MODIFYCHANNEL); `ENODEV` for an unknown relid or without VMBus.
fn run_retarget(data: &D, reader: &mut UserSliceReader) -> Result {
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

