// SPDX-License-Identifier: GPL-2.0

//! The real CPUID instruction behind the shared [`Cpuid`] trait, the VP
//! index the hypervisor gave each CPU, and the time stamp counter.

use kernel::prelude::*;

use crate::hvcall::cpuid::{Cpuid, CpuidRegs};
use crate::hvcall::msr;
use crate::shim;

/// The CPU this code runs on. Hypervisor leaves are the same on every CPU of
/// a partition, so which CPU answers does not matter.
pub(crate) struct Cpu;

impl Cpuid for Cpu {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidRegs {
        // `__cpuid_count` is an unsafe fn in the oldest rustc the kernel
        // accepts (1.85) and a safe one in newer releases.
        // SAFETY: CPUID exists on every x86-64 CPU and only reads; leaves
        // that the CPU does not define return data, not a fault.
        #[allow(unused_unsafe)]
        let r = unsafe { core::arch::x86_64::__cpuid_count(leaf, subleaf) };
        CpuidRegs {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }
}

/// The VP index of `cpu`: its VP_INDEX MSR, read on that CPU. `EINVAL` if
/// `cpu` is not online, `EIO` if the MSR cannot be read or its value does
/// not fit 32 bits.
pub(crate) fn vp_index(cpu: u32) -> Result<u32> {
    let vp = shim::on_cpu(cpu, || shim::rdmsr(msr::VP_INDEX))
        .map_err(|_| EINVAL)?
        .map_err(|_| EIO)?;
    u32::try_from(vp).map_err(|_| EIO)
}

/// The time stamp counter of this CPU (the benchmarks' clock).
#[cfg(hv_guest_selftest)]
pub(crate) fn tsc() -> u64 {
    // `_rdtsc` is an unsafe fn in the oldest rustc the kernel accepts.
    // SAFETY: RDTSC only reads the time stamp counter.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}
