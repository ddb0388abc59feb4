// SPDX-License-Identifier: GPL-2.0

//! The KVM VM: capabilities, memory slots, the in-kernel irqchip (PIC + IOAPIC + LAPICs)
//! and PIT, and interrupt lines (KVM_IRQFD).
//!
//! This is the only place that issues VM ioctls. It owns guest RAM for as long as the VM
//! file descriptor exists, because KVM keeps pointers into that mapping.

use std::sync::Arc;

use kvm_bindings::{
    kvm_cpuid_entry2, kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES,
    KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use vm_memory::{
    Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress,
};
use vmm_sys_util::eventfd::EventFd;

use crate::cpuid::HostCpuidCaps;
use crate::error::{Error, Result};
use crate::memory::{KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};

/// A KVM VM with its irqchip, PIT and guest RAM.
pub struct Vm {
    kvm: Kvm,
    // Declared before `memory`: the VM fd is closed before RAM is unmapped.
    fd: VmFd,
    memory: Arc<GuestMemoryMmap>,
}

impl Vm {
    /// Opens /dev/kvm, checks the capabilities hvhost needs and creates a VM with an
    /// in-kernel irqchip and PIT, backed by `memory`.
    pub fn new(memory: Arc<GuestMemoryMmap>) -> Result<Self> {
        let kvm = Kvm::new().map_err(Error::OpenKvm)?;
        for (cap, name) in [
            (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
            (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
            (Cap::Pit2, "KVM_CAP_PIT2"),
            (Cap::Irqfd, "KVM_CAP_IRQFD"),
            (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
            (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(Error::MissingCapability(name));
            }
        }
        let fd = kvm.create_vm().map_err(|e| Error::kvm("create a VM", e))?;
        fd.set_tss_address(KVM_TSS_ADDR as usize)
            .map_err(|e| Error::kvm("set the TSS address", e))?;
        if kvm.check_extension(Cap::SetIdentityMapAddr) {
            fd.set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
                .map_err(|e| Error::kvm("set the identity map address", e))?;
        }
        fd.create_irq_chip()
            .map_err(|e| Error::kvm("create the in-kernel irqchip", e))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit)
            .map_err(|e| Error::kvm("create the in-kernel PIT", e))?;

        let vm = Self { kvm, fd, memory };
        vm.register_memory()?;
        Ok(vm)
    }

    fn register_memory(&self) -> Result<()> {
        for (slot, region) in self.memory.iter().enumerate() {
            let host = region
                .get_host_address(MemoryRegionAddress(0))
                .map_err(|source| Error::GuestMemoryWrite {
                    what: "memory slot table",
                    source,
                })?;
            let slot =
                u32::try_from(slot).map_err(|_| Error::BootSetup("too many memory slots"))?;
            let entry = kvm_userspace_memory_region {
                slot,
                flags: 0,
                guest_phys_addr: region.start_addr().raw_value(),
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: `host..host + len` is a live anonymous mapping owned by
            // `self.memory`, which this struct keeps alive until after `self.fd` (and every
            // vCPU holds another reference until its fd is closed), so KVM never sees the
            // range unmapped or reused.
            unsafe { self.fd.set_user_memory_region(entry) }
                .map_err(|e| Error::kvm("register a guest memory slot", e))?;
        }
        Ok(())
    }

    /// Guest RAM.
    pub fn memory(&self) -> &Arc<GuestMemoryMmap> {
        &self.memory
    }

    /// Most vCPUs this KVM allows in one VM.
    pub fn max_vcpus(&self) -> usize {
        self.kvm.get_max_vcpus()
    }

    /// KVM_GET_SUPPORTED_CPUID.
    pub fn supported_cpuid(&self) -> Result<Vec<kvm_cpuid_entry2>> {
        let cpuid = self
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| Error::kvm("report the supported CPUID leaves", e))?;
        Ok(cpuid.as_slice().to_vec())
    }

    /// Host capabilities that decide optional CPUID features.
    pub fn cpuid_caps(&self) -> HostCpuidCaps {
        HostCpuidCaps {
            tsc_deadline_timer: self.kvm.check_extension(Cap::TscDeadlineTimer),
            xsave: true,
        }
    }

    /// Connects `evt` to interrupt line `gsi`: each write to it pulses the line.
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<()> {
        self.fd
            .register_irqfd(evt, gsi)
            .map_err(|e| Error::kvm("connect an interrupt eventfd (KVM_IRQFD)", e))
    }

    /// Creates vCPU `index` (its APIC ID is the index).
    pub fn create_vcpu(&self, index: u8) -> Result<VcpuFd> {
        self.fd
            .create_vcpu(index.into())
            .map_err(|source| Error::KvmVcpu {
                what: "create the vCPU",
                vcpu: index,
                source,
            })
    }
}
