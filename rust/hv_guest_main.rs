// SPDX-License-Identifier: GPL-2.0

//! hv_guest: the guest half of the Hyper-V enlightenment contract.
//!
//! On load the module decides, from CPUID alone, whether the hypervisor
//! presents a usable Hyper-V interface (`Hv#1` with the hypercall and VP
//! index privileges). If not, it refuses to load with `ENODEV` and one log
//! line that says why. If so, it logs what the hypervisor offers, writes
//! the guest OS ID, enables its own hypercall page ([`hypercall`]), sets up
//! the SynIC with vectors of its own on every CPU ([`synic`]), and shows all
//! of it under `/sys/kernel/debug/hv_guest/`. Unloading undoes it in
//! reverse: SynIC, hypercall page, guest OS ID last.
//!
//! The contract itself (leaf layouts, bit names, the detection rule) is the
//! shared `hvcall` crate, included below by path so that hvhost and this
//! module compile one implementation.

use kernel::prelude::*;

/// The shared TLFS contract, compiled into this module from `hvcall/src`.
#[path = "../hvcall/src"]
// The contract is included whole and its API is `pub` for the host crate;
// here it is crate-internal and this side uses only part of it so far.
#[allow(dead_code, unreachable_pub)]
mod hvcall {
    pub(crate) mod bits;
    pub(crate) mod cpuid;
    pub(crate) mod hypercall;
    pub(crate) mod msr;
    pub(crate) mod synic;
    pub(crate) mod testdev;
}

/// The shared VMBus contract, compiled into this module from `vmbus/src`.
#[path = "../vmbus/src"]
// Included whole, like `hvcall`; this side uses only part of it.
#[allow(dead_code, unreachable_pub)]
mod vmbus {
    pub(crate) mod gpadl;
    pub(crate) mod guid;
    pub(crate) mod hvsock;
    pub(crate) mod ic;
    pub(crate) mod message;
    pub(crate) mod packet;
    pub(crate) mod parse;
    pub(crate) mod perf;
    pub(crate) mod ring;
    pub(crate) mod scsi;
    pub(crate) mod version;
    pub(crate) mod vstor;
}

// The layers, each using only those above it in this list (and the
// shared contract): the C shim and its wrappers, the CPU, hypercalls and
// the SynIC, the VMBus client, the drivers of its devices, the debugfs
// views, and in the selftest build the tests that drive all of them.
mod shim;
mod block;
mod vsock;
mod control;
mod cpu;
mod fmt;
mod hypercall;
mod synic;
mod bus;
mod drivers;
mod debugfs;
#[cfg(hv_guest_selftest)]
mod selftest;

use hvcall::cpuid::{self, DetectError, HvInfo};
use kernel::sync::Arc;

module! {
    type: HvGuest,
    name: "hv_guest",
    authors: ["hvguest developers"],
    description: "Hyper-V enlightenment guest: detection, hypercalls, SynIC, VMBus",
    license: "GPL",
    params: {
        vmbus: bool {
            default: true,
            description: "Connect to the host's VMBus and bind the utility drivers (0: hypercalls and SynIC only)",
        },
    },
}

/// What the module runs on: the hypercalls and the SynIC. Fields drop in
/// order: the SynIC (every CPU torn down) before the hypercall page and
/// the guest OS ID.
pub(crate) struct Core {
    pub(crate) synic: synic::SynicHandle,
    pub(crate) hypercalls: hypercall::Hypercalls,
}

/// The loaded module. Fields drop in declaration order, which is the
/// teardown order: the selftest build's files, the debugfs files (they use
/// the core and the bus), then
/// VMBus (unloaded while the SynIC and hypercalls still work; its channel
/// devices are deleted, unbinding their drivers), then the drivers, then
/// the directories, then the core.
#[pin_data]
struct HvGuest {
    /// First to go: no socket can use the transport by then (each holds
    /// a reference to this module).
    _vsock: Option<drivers::vsock::VsockTransport>,
    _selftest: SelftestFiles,
    _files: debugfs::Files,
    _vmbus: Option<Arc<bus::VmBus>>,
    #[pin]
    _drivers: drivers::Drivers,
    _dirs: debugfs::Dirs,
    _core: LastCore,
}

impl kernel::InPlaceModule for HvGuest {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let init = || -> Result<_> {
            let info = detect()?;
            log_info(&info);
            let core = LastCore(Some(bring_up()?));
            let dirs = debugfs::Dirs::new();
            let vmbus = connect_vmbus(core.core()?, &dirs);
            let data = debugfs::DebugData {
                info,
                core: core.core()?.clone(),
                vmbus: vmbus.clone(),
            };
            let data = Arc::new(data, GFP_KERNEL)?;
            let selftest = selftest_files(&dirs, &data)?;
            let files = debugfs::create(&dirs, data)?;
            let vsock = match &vmbus {
                Some(vm) => drivers::vsock::VsockTransport::register(vm.bus(), &dirs.vmbus)?,
                None => None,
            };
            Ok((vsock, selftest, files, vmbus, dirs, core))
        };
        // Each part carries the error, if any; the first field fails with it.
        let (vsock, selftest, files, vmbus, dirs, core) = match init() {
            Ok((t, s, f, v, d, c)) => (Ok(t), Ok(s), Ok(f), Ok(v), Ok(d), Ok(c)),
            Err(e) => (Err(e), Err(e), Err(e), Err(e), Err(e), Err(e)),
        };
        // The channel devices the bus made bind as each driver registers.
        try_pin_init!(Self {
            _vsock: vsock?,
            _selftest: selftest?,
            _files: files?,
            _vmbus: vmbus?,
            _drivers <- drivers::Drivers::register(module),
            _dirs: dirs?,
            _core: core?,
        }? Error)
    }
}

/// The selftest build's control files (`contract`, `vmbus/misbehave`);
/// nothing in the production build.
#[cfg(hv_guest_selftest)]
type SelftestFiles = selftest::Files;
#[cfg(not(hv_guest_selftest))]
struct SelftestFiles;

#[cfg(hv_guest_selftest)]
fn selftest_files(dirs: &debugfs::Dirs, data: &Arc<debugfs::DebugData>) -> Result<SelftestFiles> {
    selftest::create_files(dirs, data)
}

#[cfg(not(hv_guest_selftest))]
fn selftest_files(_dirs: &debugfs::Dirs, _data: &Arc<debugfs::DebugData>) -> Result<SelftestFiles> {
    Ok(SelftestFiles)
}

/// Detection, from CPUID alone: whether the hypervisor presents a usable
/// Hyper-V interface; `ENODEV` with one log line that says why if not.
fn detect() -> Result<HvInfo> {
    match cpuid::detect(&cpu::Cpu) {
        Ok(info) => Ok(info),
        Err(err @ DetectError::MissingPrivileges { .. }) => {
            pr_err!("not loading: {}\n", err);
            Err(ENODEV)
        }
        Err(err) => {
            pr_info!("not loading: {}\n", err);
            Err(ENODEV)
        }
    }
}

/// Enables the hypercall page and the SynIC.
fn bring_up() -> Result<Arc<Core>> {
    let hypercalls = hypercall::Hypercalls::new()?;
    pr_info!("hypercall page enabled\n");
    let synic = synic::SynicHandle::new()?;
    let core = Arc::new(Core { synic, hypercalls }, GFP_KERNEL)?;
    log_vectors(&core);
    Ok(core)
}

/// Connects to the host's VMBus unless the `vmbus` parameter says not to.
/// A VMBus that fails to come up is logged; the rest of the module
/// (hypercalls, SynIC) still works without it.
fn connect_vmbus(core: &Arc<Core>, dirs: &debugfs::Dirs) -> Option<Arc<bus::VmBus>> {
    if !module_parameters::vmbus.value() {
        return None;
    }
    match bus::VmBus::connect(core.clone(), dirs.devices.clone()) {
        Ok(Some(vmbus)) => match Arc::new(vmbus, GFP_KERNEL) {
            Ok(vmbus) => Some(vmbus),
            Err(_) => {
                pr_err!("vmbus: out of memory; unloaded again\n");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            pr_err!("vmbus: not connected: {:?}\n", e);
            None
        }
    }
}

/// The module's reference to the core, dropped last. It must be the last
/// reference: anything still holding the core would keep the SynIC
/// programmed with handlers in this module's text after it is gone.
///
/// INVARIANT: `Some` until dropped.
struct LastCore(Option<Arc<Core>>);

impl LastCore {
    fn core(&self) -> Result<&Arc<Core>> {
        self.0.as_ref().ok_or(EINVAL)
    }
}

impl Drop for LastCore {
    fn drop(&mut self) {
        if let Some(core) = self.0.take() {
            if Arc::into_unique_or_drop(core).is_none() {
                pr_err!(
                    "unload: the SynIC and hypercall page are still referenced; they stay up\n"
                );
            }
        }
        // A key=value record, as for VMBus's unload.
        pr_info!("module_unload complete=1\n");
    }
}

/// Logs what the hypervisor presents, with bit names.
fn log_info(info: &HvInfo) {
    pr_info!(
        "Hyper-V interface: vendor {}, max leaf {:#x}, version {}\n",
        hvcall::cpuid::VendorText(&info.vendor),
        info.max_leaf,
        info.version
    );
    pr_info!("privileges: {}\n", info.privileges);
    pr_info!("features: {}\n", info.features);
    pr_info!(
        "recommendations: {}, spinlock retries {:#x}\n",
        info.recommendations,
        info.spin_retries
    );
    pr_info!(
        "limits: {} virtual processors, {} logical processors, {} interrupt vectors\n",
        info.limits.max_vps,
        info.limits.max_lps,
        info.limits.max_int_vectors
    );
}

/// Logs the vectors the SynIC got, one line per CPU.
fn log_vectors(core: &Core) {
    let mut v = KVec::new();
    if core.synic.synic().vectors(&mut v).is_err() {
        return;
    }
    for s in v.iter() {
        pr_info!(
            "CPU {}: SINT {} on vector {:#x} (irq {})\n",
            s.cpu,
            s.sint,
            s.vector,
            s.irq
        );
    }
}
