// SPDX-License-Identifier: GPL-2.0

//! What hvhost advertises through the hypervisor CPUID leaves: the single
//! source of truth. hvhost builds its leaves from [`leaves`]; its tests
//! check that every bit advertised here has an implementation (each
//! privilege lists the MSRs and calls that implement it in
//! [`PRIVILEGE_IMPLS`]).
//!
//! Deliberately not advertised: XMM fast hypercall input/output (hvhost's
//! trampoline exit does not carry XMM registers), TSC invariance (KVM hides
//! the invariant-TSC bit, and hvhost cannot promise it from user space),
//! AutoEOI (cannot be emulated by injecting interrupts: "deprecate AutoEOI"
//! is recommended instead), APIC access MSRs, the crash MSRs, reset.

use super::cpuid::{
    CpuidRegs, EnlightenmentLeaf, Features, FeaturesLeaf, InterfaceLeaf, LimitsLeaf, Privileges,
    Recommendations, VendorLeaf, VersionLeaf, INTERFACE_HV1,
};
use super::hypercall::CallCode;
use super::msr;

/// The highest hypervisor leaf hvhost answers (leaves 6..=0xA are zero).
pub const MAX_LEAF: u32 = 0x4000_000A;

/// The vendor signature.
pub const VENDOR: [u8; 12] = *b"Microsoft Hv";

/// Linux reads this leaf without checking the maximum leaf (a set bit 3
/// would claim a confidential VMBus): it must be present and zero.
pub const VIRT_STACK_PROPERTIES: u32 = 0x4000_0082;

/// Partition privileges hvhost implements.
pub const PRIVILEGES: Privileges = Privileges::VP_RUNTIME
    .union(Privileges::TIME_REF_COUNT)
    .union(Privileges::SYNIC)
    .union(Privileges::SYNTIMER)
    .union(Privileges::HYPERCALL)
    .union(Privileges::VP_INDEX)
    .union(Privileges::REFERENCE_TSC)
    .union(Privileges::FREQUENCY_MSRS)
    .union(Privileges::POST_MESSAGES)
    .union(Privileges::SIGNAL_EVENTS);

/// Features (leaf 0x40000003 EDX) hvhost implements.
pub const FEATURES: Features = Features::FREQUENCY_MSRS.union(Features::STIMER_DIRECT_MODE);

/// Recommendations (leaf 0x40000004 EAX). DEPRECATING_AEOI is mandatory.
pub const RECOMMENDATIONS: Recommendations = Recommendations::DEPRECATING_AEOI;

/// Never notify on long spin waits (all ones).
pub const SPIN_RETRIES: u32 = 0xffff_ffff;

/// The version hvhost reports: 10.0 build 14393 (what QEMU reports too).
pub const VERSION: VersionLeaf = VersionLeaf {
    build: 14393,
    minor: 0,
    major: 10,
    service_pack: 0,
    service: 0,
};

/// Which MSRs and hypercalls implement each advertised privilege.
pub const PRIVILEGE_IMPLS: &[(Privileges, &[u32], &[CallCode])] = &[
    (Privileges::VP_RUNTIME, &[msr::VP_RUNTIME], &[]),
    (Privileges::TIME_REF_COUNT, &[msr::TIME_REF_COUNT], &[]),
    (
        Privileges::SYNIC,
        &[
            msr::SCONTROL,
            msr::SVERSION,
            msr::SIEFP,
            msr::SIMP,
            msr::EOM,
            msr::SINT0,
            msr::SINT0 + 1,
            msr::SINT0 + 2,
            msr::SINT0 + 3,
            msr::SINT0 + 4,
            msr::SINT0 + 5,
            msr::SINT0 + 6,
            msr::SINT0 + 7,
            msr::SINT0 + 8,
            msr::SINT0 + 9,
            msr::SINT0 + 10,
            msr::SINT0 + 11,
            msr::SINT0 + 12,
            msr::SINT0 + 13,
            msr::SINT0 + 14,
            msr::SINT0 + 15,
        ],
        &[],
    ),
    (
        Privileges::SYNTIMER,
        &[msr::STIMER0_CONFIG, msr::STIMER0_COUNT],
        &[],
    ),
    (
        Privileges::HYPERCALL,
        &[msr::GUEST_OS_ID, msr::HYPERCALL],
        &[CallCode::NOTIFY_LONG_SPIN_WAIT],
    ),
    (Privileges::VP_INDEX, &[msr::VP_INDEX], &[]),
    (Privileges::REFERENCE_TSC, &[msr::REFERENCE_TSC], &[]),
    (
        Privileges::FREQUENCY_MSRS,
        &[msr::TSC_FREQUENCY, msr::APIC_FREQUENCY],
        &[],
    ),
    (Privileges::POST_MESSAGES, &[], &[CallCode::POST_MESSAGE]),
    (Privileges::SIGNAL_EVENTS, &[], &[CallCode::SIGNAL_EVENT]),
];

/// Which MSRs implement each advertised feature.
pub const FEATURE_IMPLS: &[(Features, &[u32])] = &[
    (
        Features::FREQUENCY_MSRS,
        &[msr::TSC_FREQUENCY, msr::APIC_FREQUENCY],
    ),
    (
        Features::STIMER_DIRECT_MODE,
        &[msr::STIMER0_CONFIG, msr::STIMER0_COUNT],
    ),
];

/// Every MSR hvhost implements, in no particular order: the union of the
/// implementation tables, plus VP_ASSIST_PAGE (Linux writes it on every
/// CPU whatever is advertised; hvhost keeps its GPA and does no more).
pub fn implemented_msrs() -> impl Iterator<Item = u32> {
    PRIVILEGE_IMPLS
        .iter()
        .flat_map(|(_, msrs, _)| msrs.iter().copied())
        .chain(core::iter::once(msr::VP_ASSIST_PAGE))
}

/// The hypervisor CPUID leaves for a partition of `vcpus` virtual
/// processors: 0x40000000..=0x4000000A and 0x40000082, each `(leaf, regs)`.
pub fn leaves(vcpus: u32) -> [(u32, CpuidRegs); 12] {
    let zero = CpuidRegs::default();
    let mut out = [(0, zero); 12];
    out[0] = (
        0x4000_0000,
        VendorLeaf {
            max_leaf: MAX_LEAF,
            vendor: VENDOR,
        }
        .into(),
    );
    out[1] = (
        0x4000_0001,
        InterfaceLeaf {
            signature: INTERFACE_HV1,
            reserved: [0; 3],
        }
        .into(),
    );
    out[2] = (0x4000_0002, VERSION.into());
    out[3] = (
        0x4000_0003,
        FeaturesLeaf {
            privileges_low: PRIVILEGES.bits() as u32,
            privileges_high: (PRIVILEGES.bits() >> 32) as u32,
            power: 0,
            features: FEATURES.bits(),
        }
        .into(),
    );
    out[4] = (
        0x4000_0004,
        EnlightenmentLeaf {
            recommendations: RECOMMENDATIONS.bits(),
            spin_retries: SPIN_RETRIES,
            reserved: [0; 2],
        }
        .into(),
    );
    out[5] = (
        0x4000_0005,
        LimitsLeaf {
            max_vps: vcpus,
            max_lps: vcpus,
            max_int_vectors: 0,
            reserved: 0,
        }
        .into(),
    );
    for (leaf, entry) in (0x4000_0006..).zip(out.iter_mut().take(11).skip(6)) {
        *entry = (leaf, zero);
    }
    out[11] = (VIRT_STACK_PROPERTIES, zero);
    out
}

#[cfg(test)]
mod tests {
    use super::super::cpuid::{detect, Cpuid, REQUIRED_PRIVILEGES};
    use super::*;

    struct Table(Vec<(u32, CpuidRegs)>);

    impl Cpuid for Table {
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidRegs {
            if leaf == 1 {
                return CpuidRegs {
                    ecx: 1 << 31,
                    ..CpuidRegs::default()
                };
            }
            self.0
                .iter()
                .find(|(l, _)| *l == leaf)
                .map(|(_, r)| *r)
                .unwrap_or_default()
        }
    }

    #[test]
    fn leaves_are_detected_as_hyper_v() {
        let info = detect(&Table(leaves(2).to_vec())).expect("detected");
        assert_eq!(info.vendor_str(), Some("Microsoft Hv"));
        assert!(info.privileges.contains(REQUIRED_PRIVILEGES));
        assert_eq!(info.privileges, PRIVILEGES);
        assert_eq!(info.limits.max_vps, 2);
        assert!(info
            .recommendations
            .contains(Recommendations::DEPRECATING_AEOI));
    }

    #[test]
    fn every_advertised_bit_is_in_an_implementation_table() {
        for (bit, name) in Privileges::NAMED {
            if PRIVILEGES.contains(*bit) {
                let entry = PRIVILEGE_IMPLS.iter().find(|(p, _, _)| p == bit);
                let (_, msrs, calls) =
                    entry.unwrap_or_else(|| panic!("privilege {name} has no implementation entry"));
                assert!(
                    !msrs.is_empty() || !calls.is_empty(),
                    "{name} lists nothing"
                );
            }
        }
        for (bit, name) in Features::NAMED {
            if FEATURES.contains(*bit) {
                assert!(
                    FEATURE_IMPLS.iter().any(|(f, m)| f == bit && !m.is_empty()),
                    "feature {name}"
                );
            }
        }
        // The implementation tables list only what is advertised.
        assert!(PRIVILEGE_IMPLS
            .iter()
            .all(|(p, _, _)| PRIVILEGES.contains(*p)));
        assert!(FEATURE_IMPLS.iter().all(|(f, _)| FEATURES.contains(*f)));
    }

    #[test]
    fn never_advertised() {
        assert!(!FEATURES.contains(Features::XMM_INPUT));
        assert!(!FEATURES.contains(Features::XMM_OUTPUT));
        assert!(!PRIVILEGES.contains(Privileges::TSC_INVARIANT));
        assert!(!PRIVILEGES.contains(Privileges::APIC_ACCESS));
        let l = leaves(1);
        assert_eq!(l[11], (0x4000_0082, CpuidRegs::default()));
        assert_eq!(l[10].0, MAX_LEAF);
        assert_eq!(l[4].1.eax & (1 << 9), 1 << 9);
    }
}
