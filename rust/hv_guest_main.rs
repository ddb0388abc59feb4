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

use kernel::{debugfs::Scope, prelude::*};

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
    pub(crate) mod ic;
    pub(crate) mod message;
    pub(crate) mod packet;
    pub(crate) mod parse;
    pub(crate) mod perf;
    pub(crate) mod ring;
    pub(crate) mod version;
}

mod bus;
mod contract_tests;
mod cpu;
mod debugfs;
mod fmt;
mod hypercall;
mod ic;
mod perf;
mod shim;
mod synic;

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

/// The loaded module. The debugfs scope goes first (its files use `core`
/// and the bus), then VMBus (unloaded while the SynIC and hypercalls still
/// work; its channel devices are deleted, unbinding their drivers), then
/// the drivers, then the core.
struct HvGuest {
    debugfs: Option<Pin<KBox<Scope<debugfs::DebugData>>>>,
    vmbus: Option<Arc<bus::VmBus>>,
    drivers: Option<Pin<KBox<ic::IcDrivers>>>,
    core: Option<Arc<Core>>,
}

impl kernel::Module for HvGuest {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let info = match cpuid::detect(&cpu::Cpu) {
            Ok(info) => info,
            Err(err @ DetectError::MissingPrivileges { .. }) => {
                pr_err!("not loading: {}\n", err);
                return Err(ENODEV);
            }
            Err(err) => {
                pr_info!("not loading: {}\n", err);
                return Err(ENODEV);
            }
        };
        log_info(&info);
        let hypercalls = hypercall::Hypercalls::new()?;
        pr_info!("hypercall page enabled\n");
        let synic = synic::SynicHandle::new()?;
        let core = Arc::new(Core { synic, hypercalls }, GFP_KERNEL)?;
        log_vectors(&core);
        // A VMBus that fails to come up is logged; the rest of the module
        // (hypercalls, SynIC, contract tests) still works without it.
        let want_vmbus = module_parameters::vmbus.value();
        // Before the bus: the channel devices it creates bind at once.
        let drivers = KBox::pin_init(ic::IcDrivers::register(module), GFP_KERNEL)?;
        let vmbus = match want_vmbus
            .then(|| bus::VmBus::connect(core.clone()))
            .unwrap_or(Ok(None))
        {
            Ok(Some(vmbus)) => Some(Arc::new(vmbus, GFP_KERNEL)?),
            Ok(None) => None,
            Err(e) => {
                pr_err!("vmbus: not connected: {:?}\n", e);
                None
            }
        };
        let scope = KBox::pin_init(
            debugfs::create(info, core.clone(), vmbus.clone()),
            GFP_KERNEL,
        )?;
        Ok(Self {
            debugfs: Some(scope),
            vmbus,
            drivers: Some(drivers),
            core: Some(core),
        })
    }
}

impl Drop for HvGuest {
    fn drop(&mut self) {
        // In order: the files, VMBus (while the SynIC and hypercalls still
        // work), then the core, which must be the last reference: anything
        // still holding it would keep the SynIC programmed with handlers in
        // this module's text after it is gone.
        drop(self.debugfs.take());
        drop(self.vmbus.take());
        drop(self.drivers.take());
        if let Some(core) = self.core.take() {
            if Arc::into_unique_or_drop(core).is_none() {
                pr_err!(
                    "unload: the SynIC and hypercall page are still referenced; they stay up\n"
                );
            }
        }
        pr_info!("unloaded\n");
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
