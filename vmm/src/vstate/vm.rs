// SPDX-License-Identifier: GPL-2.0

//! The KVM VM: capabilities, memory slots, the in-kernel irqchip (PIC + IOAPIC + LAPICs)
//! and PIT, and interrupt lines (KVM_IRQFD).
//!
//! This is the only place that issues VM ioctls. It owns guest RAM for as long as the VM
//! file descriptor exists, because KVM keeps pointers into that mapping.

use std::sync::Arc;

use kvm_bindings::{
    kvm_cpuid_entry2, kvm_enable_cap, kvm_msi, kvm_pit_config, kvm_userspace_memory_region,
    KVM_CAP_X86_USER_SPACE_MSR, KVM_MAX_CPUID_ENTRIES, KVM_MSR_EXIT_REASON_FILTER,
    KVM_MSR_EXIT_REASON_INVAL, KVM_MSR_EXIT_REASON_UNKNOWN, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{
    Cap, Kvm, MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags, VcpuFd, VmFd,
};
use vm_memory::{
    Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress,
};
use vmm_sys_util::eventfd::EventFd;

use crate::cpuid::HostCpuidCaps;
use crate::memory::{KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};

use super::VstateError;

/// A KVM VM with its irqchip, PIT and guest RAM.
pub struct Vm {
    kvm: Kvm,
    // Declared before `memory`: the VM fd is closed before RAM is unmapped. Shared with
    // the MSI sink ([`KvmMsi`]), which the Hyper-V partition holds together with its own
    // reference to RAM, declared in the same order.
    fd: Arc<VmFd>,
    memory: Arc<GuestMemoryMmap>,
}

impl Vm {
    /// Opens /dev/kvm, checks the capabilities hvhost needs and creates a VM with an
    /// in-kernel irqchip and PIT, backed by `memory`.
    pub fn new(memory: Arc<GuestMemoryMmap>) -> Result<Self, VstateError> {
        let kvm = Kvm::new().map_err(VstateError::OpenKvm)?;
        for (cap, name) in [
            (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
            (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
            (Cap::Pit2, "KVM_CAP_PIT2"),
            (Cap::Irqfd, "KVM_CAP_IRQFD"),
            (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
            (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(VstateError::MissingCapability(name));
            }
        }
        let fd = kvm
            .create_vm()
            .map_err(|e| VstateError::kvm("create a VM", e))?;
        fd.set_tss_address(KVM_TSS_ADDR as usize)
            .map_err(|e| VstateError::kvm("set the TSS address", e))?;
        if kvm.check_extension(Cap::SetIdentityMapAddr) {
            fd.set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
                .map_err(|e| VstateError::kvm("set the identity map address", e))?;
        }
        fd.create_irq_chip()
            .map_err(|e| VstateError::kvm("create the in-kernel irqchip", e))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit)
            .map_err(|e| VstateError::kvm("create the in-kernel PIT", e))?;

        let vm = Self {
            kvm,
            fd: Arc::new(fd),
            memory,
        };
        vm.register_memory()?;
        Ok(vm)
    }

    fn register_memory(&self) -> Result<(), VstateError> {
        for (slot, region) in self.memory.iter().enumerate() {
            let host = region
                .get_host_address(MemoryRegionAddress(0))
                .map_err(VstateError::MemorySlotHostAddress)?;
            let slot = u32::try_from(slot).map_err(|_| VstateError::TooManyMemorySlots)?;
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
                .map_err(|e| VstateError::kvm("register a guest memory slot", e))?;
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
    pub fn supported_cpuid(&self) -> Result<Vec<kvm_cpuid_entry2>, VstateError> {
        let cpuid = self
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| VstateError::kvm("report the supported CPUID leaves", e))?;
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
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<(), VstateError> {
        self.fd
            .register_irqfd(evt, gsi)
            .map_err(|e| VstateError::kvm("connect an interrupt eventfd (KVM_IRQFD)", e))
    }

    /// Hands every synthetic Hyper-V MSR (0x40000000..0x400001FF) to user space: first
    /// KVM_CAP_X86_USER_SPACE_MSR with the FILTER, UNKNOWN and INVAL exit reasons, then an
    /// MSR filter that denies the range, so that a KVM with its own Hyper-V emulation
    /// (KVM_HYPERV) does not serve them either. Other MSRs stay KVM's; the ones KVM does
    /// not know also exit, and hvhost answers them with the #GP KVM would have given.
    pub fn route_synthetic_msrs_to_user_space(&self) -> Result<(), VstateError> {
        for (cap, name) in [
            (Cap::X86UserSpaceMsr, "KVM_CAP_X86_USER_SPACE_MSR"),
            (Cap::X86MsrFilter, "KVM_CAP_X86_MSR_FILTER"),
        ] {
            if !self.kvm.check_extension(cap) {
                return Err(VstateError::MissingCapability(name));
            }
        }
        let mut cap = kvm_enable_cap {
            cap: KVM_CAP_X86_USER_SPACE_MSR,
            ..Default::default()
        };
        cap.args[0] = u64::from(
            KVM_MSR_EXIT_REASON_FILTER | KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_INVAL,
        );
        self.fd
            .enable_cap(&cap)
            .map_err(|e| VstateError::kvm("enable user-space MSR exits", e))?;
        // A clear bit denies the access: all clear, both directions.
        let bitmap = [0u8; (hvcall::msr::SYNTHETIC_COUNT / 8) as usize];
        let range = MsrFilterRange {
            flags: MsrFilterRangeFlags::READ | MsrFilterRangeFlags::WRITE,
            base: hvcall::msr::SYNTHETIC_BASE,
            msr_count: hvcall::msr::SYNTHETIC_COUNT,
            bitmap: &bitmap,
        };
        self.fd
            .set_msr_filter(MsrFilterDefaultAction::ALLOW, &[range])
            .map_err(|e| VstateError::kvm("install the synthetic MSR filter", e))?;
        log::debug!(
            "synthetic MSRs {:#x}+{:#x} routed to user space",
            hvcall::msr::SYNTHETIC_BASE,
            hvcall::msr::SYNTHETIC_COUNT
        );
        Ok(())
    }

    /// An interrupt sink that raises vectors on the in-kernel LAPICs.
    pub fn msi_sink(&self) -> Arc<KvmMsi> {
        Arc::new(KvmMsi {
            fd: self.fd.clone(),
        })
    }

    /// Creates vCPU `index` (its APIC ID is the index).
    pub fn create_vcpu(&self, index: u8) -> Result<VcpuFd, VstateError> {
        self.fd
            .create_vcpu(index.into())
            .map_err(|source| VstateError::KvmVcpu {
                what: "create the vCPU",
                vcpu: index,
                source,
            })
    }
}

/// Raises LAPIC vectors with KVM_SIGNAL_MSI: fixed delivery, physical destination, edge.
pub struct KvmMsi {
    fd: Arc<VmFd>,
}

/// The MSI address window; the destination APIC ID goes in bits 19:12.
const MSI_ADDRESS_BASE: u32 = 0xfee0_0000;

/// The MSI that delivers `vector` to APIC `apic_id`: fixed, physical, edge.
pub fn msi_for(apic_id: u32, vector: u8) -> kvm_msi {
    kvm_msi {
        address_lo: MSI_ADDRESS_BASE | (apic_id & 0xff) << 12,
        address_hi: 0,
        // Delivery mode fixed (0), edge trigger (bit 15 clear).
        data: u32::from(vector),
        ..Default::default()
    }
}

impl crate::hyperv::synic::InterruptSink for KvmMsi {
    fn raise(&self, apic_id: u32, vector: u8) {
        match self.fd.signal_msi(msi_for(apic_id, vector)) {
            Ok(0) => log::debug!("MSI vector {vector:#x} to APIC {apic_id} was blocked"),
            Ok(_) => {}
            Err(e) => log::warn!("KVM_SIGNAL_MSI vector {vector:#x} to APIC {apic_id}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msi_address_and_data() {
        let msi = msi_for(3, 0xed);
        assert_eq!(msi.address_lo, 0xfee0_3000);
        assert_eq!(msi.data, 0xed);
    }
}
