// SPDX-License-Identifier: GPL-2.0

//! hv_guest: the guest half of the Hyper-V enlightenment contract.
//!
//! On load the module decides, from CPUID alone, whether the hypervisor
//! presents a usable Hyper-V interface (`Hv#1` with the hypercall and VP
//! index privileges). If not, it refuses to load with `ENODEV` and one log
//! line that says why; if so, it logs what the hypervisor offers and shows
//! the same under `/sys/kernel/debug/hv_guest/`.
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
    pub(crate) mod msr;
}

mod cpu;
mod debugfs;
mod fmt;

use hvcall::cpuid::{self, DetectError, HvInfo};

module! {
    type: HvGuest,
    name: "hv_guest",
    authors: ["hvguest developers"],
    description: "Hyper-V enlightenment guest: detection, hypercalls, SynIC, VMBus",
    license: "GPL",
}

/// The loaded module: what was detected, kept alive by its debugfs scope.
struct HvGuest {
    _info: Pin<KBox<Scope<HvInfo>>>,
}

impl kernel::Module for HvGuest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
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
        let scope = KBox::pin_init(debugfs::create(info), GFP_KERNEL)?;
        Ok(Self { _info: scope })
    }
}

impl Drop for HvGuest {
    fn drop(&mut self) {
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
