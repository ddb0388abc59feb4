// SPDX-License-Identifier: GPL-2.0

//! The CPUID table each vCPU sees.
//!
//! Built in two steps from KVM_GET_SUPPORTED_CPUID: [`vm_template`] removes what hvhost
//! cannot honour for any vCPU (nested virtualisation, MONITOR/MWAIT, PMU, thermal and power
//! management, KVM's paravirtual leaves), then [`vcpu_entries`] adds the per-vCPU topology
//! (APIC IDs, one core per vCPU, one package). Pure functions over `kvm_cpuid_entry2`
//! slices, so they are tested without KVM.
//!
//! Leaves 0x4000_0000..=0x4FFF_FFFF are removed entirely: that range is reserved for the
//! Hyper-V interface hvhost will publish, and Linux must not find "KVMKVMKVM" there.

use kvm_bindings::{kvm_cpuid_entry2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

/// Host facts that decide optional features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCpuidCaps {
    /// KVM_CAP_TSC_DEADLINE_TIMER: the in-kernel LAPIC emulates the TSC-deadline timer.
    pub tsc_deadline_timer: bool,
    /// Offer XSAVE and the state it manages (AVX and later). Off with `--no-xsave`: an outer
    /// hypervisor that does not intercept XSETBV for its nested guests (QEMU TCG's SVM, in
    /// the test rig) leaves KVM's view of XCR0 stale, so CPUID.0xD reports a wrong XSAVE
    /// size and Linux disables XSAVE half-way through boot and then oopses.
    pub xsave: bool,
}

/// Bits that depend on XSAVE: removed together with it.
mod xsave_deps {
    /// Leaf 1 ECX: FMA, XSAVE, OSXSAVE, AVX, F16C.
    pub const LEAF1_ECX: u32 = 1 << 12 | 1 << 26 | 1 << 27 | 1 << 28 | 1 << 29;
    /// Leaf 7.0 EBX: AVX2 and the AVX-512 family.
    pub const LEAF7_EBX: u32 =
        1 << 5 | 1 << 16 | 1 << 17 | 1 << 21 | 1 << 26 | 1 << 27 | 1 << 28 | 1 << 30 | 1 << 31;
    /// Leaf 7.0 ECX: AVX-512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ; VAES, VPCLMULQDQ.
    pub const LEAF7_ECX: u32 = 1 << 1 | 1 << 6 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12 | 1 << 14;
    /// Leaf 7.0 EDX: AVX-512 4VNNIW, 4FMAPS, VP2INTERSECT, FP16; AMX.
    pub const LEAF7_EDX: u32 = 1 << 2 | 1 << 3 | 1 << 8 | 1 << 22 | 1 << 23 | 1 << 24 | 1 << 25;
    /// Leaf 7.1 EAX: AVX-VNNI, AVX512-BF16.
    pub const LEAF7_1_EAX: u32 = 1 << 4 | 1 << 5;
    /// Leaf 0x8000_0001 ECX: XOP, FMA4.
    pub const EXT1_ECX: u32 = 1 << 11 | 1 << 16;
}

/// First leaf of the hypervisor range.
pub const HYPERVISOR_LEAF_FIRST: u32 = 0x4000_0000;
/// Last leaf of the hypervisor range.
pub const HYPERVISOR_LEAF_LAST: u32 = 0x4fff_ffff;

mod leaf1 {
    pub const ECX_MONITOR: u32 = 1 << 3;
    pub const ECX_DS_CPL: u32 = 1 << 4;
    pub const ECX_VMX: u32 = 1 << 5;
    pub const ECX_SMX: u32 = 1 << 6;
    pub const ECX_EST: u32 = 1 << 7;
    pub const ECX_TM2: u32 = 1 << 8;
    pub const ECX_PDCM: u32 = 1 << 15;
    pub const ECX_TSC_DEADLINE: u32 = 1 << 24;
    pub const ECX_HYPERVISOR: u32 = 1 << 31;
    pub const EDX_HTT: u32 = 1 << 28;
    pub const EBX_APIC_ID_SHIFT: u32 = 24;
    pub const EBX_LOGICAL_COUNT_SHIFT: u32 = 16;
    pub const EBX_LOW_MASK: u32 = 0xffff;
}

mod ext1 {
    pub const ECX_SVM: u32 = 1 << 2;
    pub const ECX_PERFCTR_CORE: u32 = 1 << 23;
    pub const ECX_PERFCTR_NB: u32 = 1 << 24;
    pub const ECX_PERFCTR_LLC: u32 = 1 << 28;
    pub const ECX_MONITORX: u32 = 1 << 29;
}

/// Leaves zeroed in every vCPU: MONITOR/MWAIT (5), thermal and power (6), architectural
/// PMU (0xA), SVM features (0x8000_000A), AMD PMU v2 (0x8000_0022).
const ZEROED_LEAVES: [u32; 5] = [0x5, 0x6, 0xa, 0x8000_000a, 0x8000_0022];

/// Level types of leaves 0xB/0x1F.
const TOPO_LEVEL_SMT: u32 = 1;
const TOPO_LEVEL_CORE: u32 = 2;

/// The VM-wide CPUID table: `supported` (KVM_GET_SUPPORTED_CPUID) minus what hvhost cannot
/// honour, with the hypervisor bit set.
pub fn vm_template(supported: &[kvm_cpuid_entry2], caps: HostCpuidCaps) -> Vec<kvm_cpuid_entry2> {
    supported
        .iter()
        .filter(|e| !(HYPERVISOR_LEAF_FIRST..=HYPERVISOR_LEAF_LAST).contains(&e.function))
        .map(|e| {
            let mut e = *e;
            match e.function {
                0x1 => {
                    e.ecx &= !(leaf1::ECX_MONITOR
                        | leaf1::ECX_DS_CPL
                        | leaf1::ECX_VMX
                        | leaf1::ECX_SMX
                        | leaf1::ECX_EST
                        | leaf1::ECX_TM2
                        | leaf1::ECX_PDCM
                        | leaf1::ECX_TSC_DEADLINE);
                    if caps.tsc_deadline_timer {
                        e.ecx |= leaf1::ECX_TSC_DEADLINE;
                    }
                    e.ecx |= leaf1::ECX_HYPERVISOR;
                    if !caps.xsave {
                        e.ecx &= !xsave_deps::LEAF1_ECX;
                    }
                }
                0x7 if !caps.xsave && e.index == 0 => {
                    e.ebx &= !xsave_deps::LEAF7_EBX;
                    e.ecx &= !xsave_deps::LEAF7_ECX;
                    e.edx &= !xsave_deps::LEAF7_EDX;
                }
                0x7 if !caps.xsave && e.index == 1 => e.eax &= !xsave_deps::LEAF7_1_EAX,
                0xd if !caps.xsave => {
                    e.eax = 0;
                    e.ebx = 0;
                    e.ecx = 0;
                    e.edx = 0;
                }
                0x8000_0001 => {
                    if !caps.xsave {
                        e.ecx &= !xsave_deps::EXT1_ECX;
                    }
                    e.ecx &= !(ext1::ECX_SVM
                        | ext1::ECX_PERFCTR_CORE
                        | ext1::ECX_PERFCTR_NB
                        | ext1::ECX_PERFCTR_LLC
                        | ext1::ECX_MONITORX);
                }
                f if ZEROED_LEAVES.contains(&f) => {
                    e.eax = 0;
                    e.ebx = 0;
                    e.ecx = 0;
                    e.edx = 0;
                }
                _ => {}
            }
            e
        })
        .collect()
}

/// APIC ID of vCPU `index`: hvhost numbers them densely from 0.
pub fn apic_id(index: u8) -> u32 {
    index.into()
}

/// Bits of the APIC ID that number the cores of a package of `count` vCPUs.
fn core_id_bits(count: u8) -> u32 {
    match count {
        0 | 1 => 0,
        n => u32::BITS - u32::from(n - 1).leading_zeros(),
    }
}

fn topology_subleaves(function: u32, apic: u32, count: u8) -> [kvm_cpuid_entry2; 3] {
    let entry = |index: u32, eax: u32, ebx: u32, ecx: u32| kvm_cpuid_entry2 {
        function,
        index,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        eax,
        ebx,
        ecx,
        edx: apic,
        ..Default::default()
    };
    [
        // One thread per core.
        entry(0, 0, 1, TOPO_LEVEL_SMT << 8),
        // `count` cores per package.
        entry(
            1,
            core_id_bits(count),
            count.into(),
            TOPO_LEVEL_CORE << 8 | 1,
        ),
        // End of the list (level type 0).
        entry(2, 0, 0, 2),
    ]
}

/// The CPUID table of vCPU `index` out of `count`: `template` plus its topology. Every vCPU
/// is one core of a single package, with APIC ID equal to its index.
pub fn vcpu_entries(template: &[kvm_cpuid_entry2], index: u8, count: u8) -> Vec<kvm_cpuid_entry2> {
    let apic = apic_id(index);
    let count = count.max(1);
    let mut out = Vec::with_capacity(template.len() + 3);
    let mut topology_leaves_done = Vec::new();
    for e in template {
        let mut e = *e;
        match e.function {
            0x1 => {
                e.ebx = (e.ebx & leaf1::EBX_LOW_MASK)
                    | apic << leaf1::EBX_APIC_ID_SHIFT
                    | u32::from(count) << leaf1::EBX_LOGICAL_COUNT_SHIFT;
                if count > 1 {
                    e.edx |= leaf1::EDX_HTT;
                } else {
                    e.edx &= !leaf1::EDX_HTT;
                }
            }
            0x4 if e.eax & 0x1f != 0 => {
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { u32::from(count) - 1 } else { 0 };
                e.eax = (e.eax & 0x3fff) | (u32::from(count) - 1) << 26 | sharing << 14;
            }
            0xb | 0x1f => {
                if !topology_leaves_done.contains(&e.function) {
                    topology_leaves_done.push(e.function);
                    out.extend(topology_subleaves(e.function, apic, count));
                }
                continue;
            }
            0x8000_0008 => {
                e.ecx = (e.ecx & !0xf0ff) | (u32::from(count) - 1);
            }
            0x8000_001e => {
                e.eax = apic;
                e.ebx = u32::from(index); // core ID; threads per core - 1 = 0.
                e.ecx = 0; // node 0, one node per package.
                e.edx = 0;
            }
            _ => {}
        }
        out.push(e);
    }
    out
}

/// Appends the Hyper-V leaves (`hvcall::advertise`, the one source of what is advertised)
/// for a partition of `count` vCPUs, replacing any entry for the same leaf.
pub fn add_hyperv_leaves(entries: &mut Vec<kvm_cpuid_entry2>, count: u8) {
    for (function, regs) in hvcall::advertise::leaves(count.into()) {
        entries.retain(|e| e.function != function);
        entries.push(kvm_cpuid_entry2 {
            function,
            index: 0,
            flags: 0,
            eax: regs.eax,
            ebx: regs.ebx,
            ecx: regs.ecx,
            edx: regs.edx,
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(function: u32, index: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        }
    }

    /// Roughly what an AMD host with nested SVM and KVM PV leaves reports.
    fn supported() -> Vec<kvm_cpuid_entry2> {
        vec![
            leaf(0x0, 0, 0x1f, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
            leaf(
                0x1,
                0,
                0x00a2_0f10,
                0x0000_0800,
                0xf6f8_3203 | 1 << 5 | 1 << 3,
                0x178b_fbff,
            ),
            leaf(0x4, 0, 0x121, 0x01c0_003f, 0x3f, 0),
            leaf(0x4, 3, 0x163, 0x03c0_003f, 0x3fff, 0),
            leaf(0x5, 0, 0x40, 0x40, 3, 0x11),
            leaf(0x6, 0, 0x4, 0, 0, 0),
            leaf(0x7, 0, 0, 0x219c_97a9, 0, 0),
            leaf(0xa, 0, 0x0703_0602, 0, 0, 0),
            leaf(0xb, 0, 1, 2, 0x100, 7),
            leaf(0xb, 1, 4, 16, 0x201, 7),
            leaf(0xd, 0, 7, 0x340, 0x340, 0),
            leaf(0xd, 2, 0x100, 0x240, 0, 0),
            leaf(0x4000_0000, 0, 0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
            leaf(0x4000_0001, 0, 0x0100_7afb, 0, 0, 0),
            leaf(0x4000_0100, 0, 0x4000_0101, 0, 0, 0),
            leaf(0x8000_0000, 0, 0x8000_0022, 0, 0, 0),
            leaf(0x8000_0001, 0, 0, 0, 0x75c2_37ff | 1 << 2, 0x2fd3_fbff),
            leaf(0x8000_0008, 0, 0x3030, 0, 0x7007, 0),
            leaf(0x8000_000a, 0, 1, 0x8000, 0, 0x1bbf_cbff),
            leaf(0x8000_001e, 0, 9, 0x0100, 0x0300, 0),
        ]
    }

    #[test]
    fn no_xsave_hides_xsave_and_its_dependents() {
        let with = vm_template(
            &supported(),
            HostCpuidCaps {
                xsave: true,
                ..Default::default()
            },
        );
        assert_ne!(
            find(&with, 0x1, 0).ecx & 1 << 26,
            0,
            "XSAVE offered when allowed"
        );
        assert_eq!(
            find(&with, 0xd, 0).eax,
            7,
            "leaf 0xD passed through when allowed"
        );

        let without = vm_template(
            &supported(),
            HostCpuidCaps {
                xsave: false,
                ..Default::default()
            },
        );
        let l1 = find(&without, 0x1, 0);
        assert_eq!(
            l1.ecx & (1 << 26 | 1 << 27 | 1 << 28 | 1 << 12 | 1 << 29),
            0,
            "XSAVE, OSXSAVE, AVX, FMA, F16C"
        );
        assert_eq!(find(&without, 0x7, 0).ebx & 1 << 5, 0, "AVX2");
        assert_eq!(find(&without, 0x7, 0).ebx & 1 << 16, 0, "AVX512F");
        for index in [0, 2] {
            let d = find(&without, 0xd, index);
            assert_eq!(
                (d.eax, d.ebx, d.ecx, d.edx),
                (0, 0, 0, 0),
                "leaf 0xD.{index} zeroed"
            );
        }
        assert_ne!(l1.ecx & 1 << 31, 0, "hypervisor bit still set");
    }

    fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> kvm_cpuid_entry2 {
        *entries
            .iter()
            .find(|e| e.function == function && e.index == index)
            .unwrap_or_else(|| panic!("leaf {function:#x}.{index} missing"))
    }

    #[test]
    fn template_removes_hypervisor_leaves_and_nested_virt() {
        let t = vm_template(&supported(), HostCpuidCaps::default());
        assert!(t
            .iter()
            .all(|e| !(0x4000_0000..=0x4fff_ffff).contains(&e.function)));
        let l1 = find(&t, 0x1, 0);
        assert_ne!(l1.ecx & 1 << 31, 0, "hypervisor bit set");
        assert_eq!(l1.ecx & 1 << 5, 0, "VMX cleared");
        assert_eq!(l1.ecx & 1 << 3, 0, "MONITOR cleared");
        assert_eq!(
            l1.ecx & 1 << 24,
            0,
            "no TSC deadline without the capability"
        );
        assert_eq!(find(&t, 0x8000_0001, 0).ecx & 1 << 2, 0, "SVM cleared");
        for f in [0x5, 0x6, 0xa, 0x8000_000a] {
            let e = find(&t, f, 0);
            assert_eq!((e.eax, e.ebx, e.ecx, e.edx), (0, 0, 0, 0), "leaf {f:#x}");
        }
    }

    #[test]
    fn tsc_deadline_follows_the_capability() {
        let caps = HostCpuidCaps {
            tsc_deadline_timer: true,
            xsave: true,
        };
        let t = vm_template(&supported(), caps);
        assert_ne!(find(&t, 0x1, 0).ecx & 1 << 24, 0);
    }

    #[test]
    fn vcpu_tables_carry_their_apic_ids() {
        let t = vm_template(&supported(), HostCpuidCaps::default());
        for index in 0..4u8 {
            let v = vcpu_entries(&t, index, 4);
            let l1 = find(&v, 0x1, 0);
            assert_eq!(l1.ebx >> 24, u32::from(index));
            assert_eq!((l1.ebx >> 16) & 0xff, 4);
            assert_eq!(l1.ebx & 0xffff, 0x0800, "CLFLUSH size kept");
            assert_ne!(l1.edx & 1 << 28, 0, "HTT with more than one logical CPU");
            for sub in 0..3 {
                assert_eq!(find(&v, 0xb, sub).edx, u32::from(index));
            }
            assert_eq!(find(&v, 0x8000_001e, 0).eax, u32::from(index));
        }
    }

    #[test]
    fn topology_is_one_core_per_vcpu() {
        let t = vm_template(&supported(), HostCpuidCaps::default());
        let v = vcpu_entries(&t, 2, 3);
        let smt = find(&v, 0xb, 0);
        assert_eq!((smt.eax, smt.ebx, smt.ecx >> 8 & 0xff), (0, 1, 1));
        let core = find(&v, 0xb, 1);
        assert_eq!((core.eax, core.ebx, core.ecx), (2, 3, 0x201));
        assert_eq!(find(&v, 0xb, 2).ecx >> 8 & 0xff, 0, "list terminated");
        assert_eq!(v.iter().filter(|e| e.function == 0xb).count(), 3);
        assert_eq!(find(&v, 0x8000_0008, 0).ecx & 0xf0ff, 2);
        let l1d = find(&v, 0x4, 0);
        assert_eq!(l1d.eax >> 26, 2);
        assert_eq!(l1d.eax >> 14 & 0xfff, 0);
        let l3 = find(&v, 0x4, 3);
        assert_eq!(l3.eax >> 14 & 0xfff, 2);
    }

    #[test]
    fn single_vcpu_has_no_htt() {
        let t = vm_template(&supported(), HostCpuidCaps::default());
        let v = vcpu_entries(&t, 0, 1);
        assert_eq!(find(&v, 0x1, 0).edx & 1 << 28, 0);
        assert_eq!(find(&v, 0xb, 1).eax, 0);
    }
}
