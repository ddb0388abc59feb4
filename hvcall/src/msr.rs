// SPDX-License-Identifier: GPL-2.0

//! Synthetic MSR numbers (TLFS; Linux `include/hyperv/hvgdk_mini.h`) and the
//! layout of the registers both sides must agree on.

/// Identifies the guest OS to the hypervisor; must be set before HYPERCALL.
pub const GUEST_OS_ID: u32 = 0x4000_0000;
/// Enables the hypercall page and gives its guest page number.
pub const HYPERCALL: u32 = 0x4000_0001;
/// Index of the current virtual processor.
pub const VP_INDEX: u32 = 0x4000_0002;
/// Virtual system reset.
pub const RESET: u32 = 0x4000_0003;
/// Time the virtual processor has run, 100 ns units.
pub const VP_RUNTIME: u32 = 0x4000_0010;
/// Partition reference counter, 100 ns units.
pub const TIME_REF_COUNT: u32 = 0x4000_0020;
/// Reference TSC page: enable and guest page number.
pub const REFERENCE_TSC: u32 = 0x4000_0021;
/// TSC frequency in Hz.
pub const TSC_FREQUENCY: u32 = 0x4000_0022;
/// APIC timer frequency in Hz.
pub const APIC_FREQUENCY: u32 = 0x4000_0023;
/// Enlightened EOI.
pub const EOI: u32 = 0x4000_0070;
/// Enlightened ICR.
pub const ICR: u32 = 0x4000_0071;
/// Enlightened TPR.
pub const TPR: u32 = 0x4000_0072;
/// VP assist page: enable and guest page number.
pub const VP_ASSIST_PAGE: u32 = 0x4000_0073;
/// SynIC control (enable).
pub const SCONTROL: u32 = 0x4000_0080;
/// SynIC version (read-only, 1).
pub const SVERSION: u32 = 0x4000_0081;
/// SynIC event flags page.
pub const SIEFP: u32 = 0x4000_0082;
/// SynIC message page.
pub const SIMP: u32 = 0x4000_0083;
/// End of message: the guest is done with a message slot.
pub const EOM: u32 = 0x4000_0084;
/// Synthetic interrupt source 0; SINTn is `SINT0 + n`.
pub const SINT0: u32 = 0x4000_0090;
/// Number of synthetic interrupt sources.
pub const SINT_COUNT: u32 = 16;
/// Synthetic timer 0 configuration; timer n's CONFIG is `STIMER0_CONFIG + 2n`.
pub const STIMER0_CONFIG: u32 = 0x4000_00B0;
/// Synthetic timer 0 count; timer n's COUNT is `STIMER0_COUNT + 2n`.
pub const STIMER0_COUNT: u32 = 0x4000_00B1;
/// Guest idle.
pub const GUEST_IDLE: u32 = 0x4000_00F0;
/// First guest crash parameter MSR (P0..P4 follow), then CRASH_CTL.
pub const CRASH_P0: u32 = 0x4000_0100;
/// Guest crash control.
pub const CRASH_CTL: u32 = 0x4000_0105;
/// TSC invariant control: the last MSR KVM's Hyper-V emulation owns.
pub const TSC_INVARIANT_CONTROL: u32 = 0x4000_0118;

/// The synthetic MSRs a guest may read and never write: a write is a #GP.
pub const READ_ONLY: &[u32] = &[
    VP_INDEX,
    VP_RUNTIME,
    TIME_REF_COUNT,
    SVERSION,
    TSC_FREQUENCY,
    APIC_FREQUENCY,
];

/// The first synthetic MSR.
pub const SYNTHETIC_BASE: u32 = 0x4000_0000;
/// How many MSRs from [`SYNTHETIC_BASE`] a host must own to see every
/// synthetic MSR (covers up to 0x400001FF, past TSC_INVARIANT_CONTROL).
pub const SYNTHETIC_COUNT: u32 = 0x200;

/// The SINT register number for source `n`, if `n` is a valid source.
pub const fn sint(n: u32) -> Option<u32> {
    if n < SINT_COUNT {
        Some(SINT0 + n)
    } else {
        None
    }
}

/// Whether `msr` is in the synthetic range a host has to own.
pub const fn is_synthetic(msr: u32) -> bool {
    msr >= SYNTHETIC_BASE && msr - SYNTHETIC_BASE < SYNTHETIC_COUNT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_hvgdk_mini_h() {
        assert_eq!(
            [
                GUEST_OS_ID,
                HYPERCALL,
                VP_INDEX,
                RESET,
                VP_RUNTIME,
                TIME_REF_COUNT,
                REFERENCE_TSC
            ],
            [
                0x4000_0000,
                0x4000_0001,
                0x4000_0002,
                0x4000_0003,
                0x4000_0010,
                0x4000_0020,
                0x4000_0021
            ]
        );
        assert_eq!(
            [TSC_FREQUENCY, APIC_FREQUENCY, VP_ASSIST_PAGE],
            [0x4000_0022, 0x4000_0023, 0x4000_0073]
        );
        assert_eq!(
            [SCONTROL, SVERSION, SIEFP, SIMP, EOM],
            [
                0x4000_0080,
                0x4000_0081,
                0x4000_0082,
                0x4000_0083,
                0x4000_0084
            ]
        );
        assert_eq!(
            (sint(0), sint(15), sint(16)),
            (Some(0x4000_0090), Some(0x4000_009F), None)
        );
        assert_eq!((STIMER0_CONFIG, STIMER0_COUNT), (0x4000_00B0, 0x4000_00B1));
        assert_eq!(
            (CRASH_P0, CRASH_CTL, TSC_INVARIANT_CONTROL),
            (0x4000_0100, 0x4000_0105, 0x4000_0118)
        );
    }

    #[test]
    fn synthetic_range_covers_every_msr_above() {
        for msr in [
            GUEST_OS_ID,
            EOM,
            SINT0 + 15,
            GUEST_IDLE,
            TSC_INVARIANT_CONTROL,
        ] {
            assert!(is_synthetic(msr), "{msr:#x}");
        }
        assert!(!is_synthetic(0x3fff_ffff));
        assert!(!is_synthetic(0x4000_0200));
    }
}
