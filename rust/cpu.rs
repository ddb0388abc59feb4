// SPDX-License-Identifier: GPL-2.0

//! The real CPUID instruction behind the shared [`Cpuid`] trait.

use crate::hvcall::cpuid::{Cpuid, CpuidRegs};

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
