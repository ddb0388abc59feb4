// SPDX-License-Identifier: GPL-2.0

//! The hypervisor CPUID leaves (TLFS "Hypervisor Discovery", Linux
//! `include/hyperv/hvgdk_mini.h`): leaf numbers, the register layout of each
//! leaf as a zerocopy view, the bits they define, and [`detect`], the one
//! decision of whether a CPU presents a usable Hyper-V interface.
//!
//! The guest reads these leaves; hvhost builds them from the same types.

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::bits::hv_bits;

/// Standard leaf 1: ECX bit 31 says a hypervisor is present.
pub const STD_FEATURES: u32 = 0x0000_0001;
/// The "hypervisor present" bit in leaf 1 ECX.
pub const HYPERVISOR_PRESENT_ECX: u32 = 1 << 31;

/// Vendor signature and the highest hypervisor leaf.
pub const VENDOR_AND_MAX_FUNCTIONS: u32 = 0x4000_0000;
/// Interface signature (`Hv#1`).
pub const INTERFACE: u32 = 0x4000_0001;
/// Hypervisor version.
pub const VERSION: u32 = 0x4000_0002;
/// Partition privileges and feature identification.
pub const FEATURES: u32 = 0x4000_0003;
/// Implementation recommendations (enlightenment information).
pub const ENLIGHTENMENT_INFO: u32 = 0x4000_0004;
/// Implementation limits.
pub const IMPLEMENT_LIMITS: u32 = 0x4000_0005;
/// Lowest acceptable maximum leaf for a Hyper-V compatible interface.
pub const MAX_LEAF_MIN: u32 = 0x4000_0005;
/// Highest acceptable maximum leaf.
pub const MAX_LEAF_MAX: u32 = 0x4000_FFFF;

/// `"Hv#1"` read as a little-endian `u32` from EAX of [`INTERFACE`].
pub const INTERFACE_HV1: u32 = u32::from_le_bytes(*b"Hv#1");

/// The four registers CPUID returns, in the order EAX, EBX, ECX, EDX. Every
/// typed leaf below has this size and is a reinterpretation of it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CpuidRegs {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// Leaf 0x40000000: the highest leaf and the 12-byte vendor signature that
/// EBX, ECX, EDX spell (`Microsoft Hv` for Hyper-V).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VendorLeaf {
    /// EAX: highest hypervisor leaf.
    pub max_leaf: u32,
    /// EBX, ECX, EDX: vendor signature bytes.
    pub vendor: [u8; 12],
}

/// Leaf 0x40000001: interface signature.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct InterfaceLeaf {
    /// EAX: [`INTERFACE_HV1`] for the Hyper-V interface.
    pub signature: u32,
    /// EBX, ECX, EDX: reserved.
    pub reserved: [u32; 3],
}

/// Leaf 0x40000002: hypervisor version.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VersionLeaf {
    /// EAX: build number.
    pub build: u32,
    /// EBX[15:0]: minor version.
    pub minor: u16,
    /// EBX[31:16]: major version.
    pub major: u16,
    /// ECX: service pack.
    pub service_pack: u32,
    /// EDX: service branch (bits 31:24) and service number (23:0).
    pub service: u32,
}

/// Leaf 0x40000003: what the partition may do and what the hypervisor offers.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FeaturesLeaf {
    /// EAX: partition privilege mask, bits 31:0.
    pub privileges_low: u32,
    /// EBX: partition privilege mask, bits 63:32.
    pub privileges_high: u32,
    /// ECX: power management information.
    pub power: u32,
    /// EDX: miscellaneous features ([`Features`]).
    pub features: u32,
}

/// Leaf 0x40000004: what the hypervisor recommends the guest do.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EnlightenmentLeaf {
    /// EAX: [`Recommendations`].
    pub recommendations: u32,
    /// EBX: spinlock retries before notifying the hypervisor (all ones: never).
    pub spin_retries: u32,
    /// ECX, EDX: reserved or extended.
    pub reserved: [u32; 2],
}

/// Leaf 0x40000005: implementation limits.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct LimitsLeaf {
    /// EAX: maximum virtual processors supported.
    pub max_vps: u32,
    /// EBX: maximum logical processors supported.
    pub max_lps: u32,
    /// ECX: maximum physical interrupt vectors for remapping.
    pub max_int_vectors: u32,
    /// EDX: reserved.
    pub reserved: u32,
}

macro_rules! leaf_views {
    ($($ty:ident),*) => {$(
        const _: () = assert!(core::mem::size_of::<$ty>() == core::mem::size_of::<CpuidRegs>());
        impl From<CpuidRegs> for $ty {
            fn from(regs: CpuidRegs) -> Self {
                // Same size, both plain integers: the reinterpretation cannot fail.
                zerocopy::transmute!(regs)
            }
        }
        impl From<$ty> for CpuidRegs {
            fn from(leaf: $ty) -> Self {
                zerocopy::transmute!(leaf)
            }
        }
    )*};
}
leaf_views!(
    VendorLeaf,
    InterfaceLeaf,
    VersionLeaf,
    FeaturesLeaf,
    EnlightenmentLeaf,
    LimitsLeaf
);

const _: () = {
    assert!(core::mem::offset_of!(VendorLeaf, vendor) == 4);
    assert!(core::mem::offset_of!(VersionLeaf, minor) == 4);
    assert!(core::mem::offset_of!(VersionLeaf, major) == 6);
    assert!(core::mem::offset_of!(FeaturesLeaf, features) == 12);
    assert!(core::mem::offset_of!(EnlightenmentLeaf, spin_retries) == 4);
    assert!(core::mem::offset_of!(LimitsLeaf, max_int_vectors) == 8);
};

hv_bits! {
    /// HV_PARTITION_PRIVILEGE_MASK: leaf 0x40000003 EAX (bits 31:0) and EBX
    /// (bits 63:32), as one 64-bit mask.
    pub struct Privileges(u64) {
        /// Access to HV_X64_MSR_VP_RUNTIME.
        VP_RUNTIME = 0,
        /// Access to the partition reference counter (TIME_REF_COUNT).
        TIME_REF_COUNT = 1,
        /// Access to the SynIC MSRs.
        SYNIC = 2,
        /// Access to the synthetic timer MSRs.
        SYNTIMER = 3,
        /// Access to the APIC MSRs (EOI, ICR, TPR) and the VP assist page.
        APIC_ACCESS = 4,
        /// Access to the hypercall MSRs (GUEST_OS_ID, HYPERCALL).
        HYPERCALL = 5,
        /// Access to HV_X64_MSR_VP_INDEX.
        VP_INDEX = 6,
        /// Access to the virtual system reset MSR.
        RESET = 7,
        /// Access to the statistics pages MSRs.
        STAT_PAGES = 8,
        /// Access to the reference TSC page MSR.
        REFERENCE_TSC = 9,
        /// Access to the guest idle MSR.
        GUEST_IDLE = 10,
        /// Access to the TSC and APIC frequency MSRs.
        FREQUENCY_MSRS = 11,
        /// Access to the reenlightenment MSRs.
        REENLIGHTENMENT = 13,
        /// Access to the TSC invariant control MSR.
        TSC_INVARIANT = 15,
        /// HvCreatePartition and friends.
        CREATE_PARTITIONS = 32,
        /// HvGetPartitionId.
        ACCESS_PARTITION_ID = 33,
        /// Memory pool hypercalls.
        ACCESS_MEMORY_POOL = 34,
        /// Message buffer adjustment.
        ADJUST_MESSAGE_BUFFERS = 35,
        /// HvPostMessage.
        POST_MESSAGES = 36,
        /// HvSignalEvent.
        SIGNAL_EVENTS = 37,
        /// Port creation.
        CREATE_PORT = 38,
        /// Port connection.
        CONNECT_PORT = 39,
        /// Statistics access.
        ACCESS_STATS = 40,
        /// Debugging hypercalls.
        DEBUGGING = 43,
        /// CPU management hypercalls.
        CPU_MANAGEMENT = 44,
        /// Extended hypercalls.
        ENABLE_EXTENDED_HYPERCALLS = 52,
        /// Isolation.
        ISOLATION = 54,
    }
}

hv_bits! {
    /// HV_X64_HYPERVISOR_FEATURES: leaf 0x40000003 EDX.
    pub struct Features(u32) {
        /// MWAIT is available.
        MWAIT = 0,
        /// Guest debugging support.
        GUEST_DEBUGGING = 1,
        /// Performance monitor support.
        PERF_MONITOR = 2,
        /// Physical CPU dynamic partitioning events.
        CPU_DYNAMIC_PARTITIONING = 3,
        /// Hypercall input through XMM registers.
        XMM_INPUT = 4,
        /// Virtual guest idle state.
        GUEST_IDLE_STATE = 5,
        /// Frequency MSRs (TSC_FREQUENCY, APIC_FREQUENCY) can be queried.
        FREQUENCY_MSRS = 8,
        /// Guest crash MSRs.
        GUEST_CRASH_MSR = 10,
        /// Debug MSRs.
        DEBUG_MSRS = 11,
        /// Extended GVA ranges for flush hypercalls.
        EXT_GVA_RANGES_FLUSH = 14,
        /// Hypercall output through XMM registers.
        XMM_OUTPUT = 15,
        /// Synthetic timers in direct mode.
        STIMER_DIRECT_MODE = 19,
    }
}

hv_bits! {
    /// HV_X64_ENLIGHTENMENT_INFORMATION: leaf 0x40000004 EAX.
    pub struct Recommendations(u32) {
        /// Use hypercalls for address space switches.
        AS_SWITCH = 0,
        /// Use hypercalls for local TLB flushes.
        LOCAL_TLB_FLUSH = 1,
        /// Use hypercalls for remote TLB flushes.
        REMOTE_TLB_FLUSH = 2,
        /// Use MSRs for APIC EOI, ICR and TPR.
        APIC_ACCESS = 3,
        /// Use the reset MSR for system reset.
        SYSTEM_RESET = 4,
        /// Use relaxed timing.
        RELAXED_TIMING = 5,
        /// Do not use AutoEOI (the guest EOIs SynIC interrupts itself).
        DEPRECATING_AEOI = 9,
        /// Use cluster IPIs.
        CLUSTER_IPI = 10,
        /// Use extended processor masks.
        EX_PROCESSOR_MASKS = 11,
        /// Running on a nested hypervisor.
        NESTED = 12,
        /// Use the enlightened VMCS.
        ENLIGHTENED_VMCS = 14,
        /// Use MMIO-based hypercalls.
        USE_MMIO_HYPERCALLS = 21,
    }
}

/// What a CPU offers through the Hyper-V interface, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvInfo {
    /// Highest hypervisor leaf.
    pub max_leaf: u32,
    /// Vendor signature, e.g. `Microsoft Hv`.
    pub vendor: [u8; 12],
    /// Hypervisor version.
    pub version: VersionLeaf,
    /// Partition privileges.
    pub privileges: Privileges,
    /// Miscellaneous features.
    pub features: Features,
    /// Recommendations.
    pub recommendations: Recommendations,
    /// Spinlock retries before a notification (all ones: never notify).
    pub spin_retries: u32,
    /// Implementation limits.
    pub limits: LimitsLeaf,
}

impl HvInfo {
    /// The vendor signature as text, with NUL padding trimmed; non-ASCII
    /// bytes make it `None` (the caller shows hex instead).
    pub fn vendor_str(&self) -> Option<&str> {
        vendor_str(&self.vendor)
    }
}

/// A vendor signature as text when it is printable ASCII (NUL padding trimmed).
pub fn vendor_str(vendor: &[u8; 12]) -> Option<&str> {
    let end = vendor.iter().position(|&b| b == 0).unwrap_or(vendor.len());
    let text = &vendor[..end];
    if text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        core::str::from_utf8(text).ok()
    } else {
        None
    }
}

/// Privileges without which the guest cannot use the interface at all: the
/// hypercall page (GUEST_OS_ID and HYPERCALL MSRs) and the VP index.
pub const REQUIRED_PRIVILEGES: Privileges = Privileges::HYPERCALL.union(Privileges::VP_INDEX);

/// Why a CPU does not present a usable Hyper-V interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectError {
    /// CPUID.1:ECX[31] is clear: no hypervisor at all.
    NoHypervisor,
    /// Leaf 0x40000000 reports a maximum outside 0x40000005..=0x4000FFFF.
    MaxLeafOutOfRange {
        /// The vendor signature reported.
        vendor: [u8; 12],
        /// The maximum leaf reported.
        max_leaf: u32,
    },
    /// Leaf 0x40000001 is not `Hv#1`.
    NotHv1 {
        /// The vendor signature reported.
        vendor: [u8; 12],
        /// The interface signature reported.
        signature: u32,
    },
    /// The interface is there, but privileges the guest needs are not.
    MissingPrivileges {
        /// Required privileges that are absent.
        missing: Privileges,
    },
}

/// A vendor signature for people: its text, or hex bytes when the other side
/// sent something that is not text. The alternate form (`{:#}`) quotes text.
pub struct VendorText<'a>(pub &'a [u8; 12]);

impl core::fmt::Display for VendorText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match vendor_str(self.0) {
            Some(s) if f.alternate() => write!(f, "'{}'", s),
            Some(s) => f.write_str(s),
            None => self.0.iter().try_for_each(|b| write!(f, "{:02x}", b)),
        }
    }
}

impl core::fmt::Display for DetectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoHypervisor => write!(f, "no hypervisor present (CPUID.1:ECX[31] clear)"),
            Self::MaxLeafOutOfRange { vendor, max_leaf } => write!(
                f,
                "hypervisor {:#} reports max leaf {:#x}, outside {:#x}..={:#x}: not Hyper-V compatible",
                VendorText(vendor),
                max_leaf,
                MAX_LEAF_MIN,
                MAX_LEAF_MAX
            ),
            Self::NotHv1 { vendor, signature } => write!(
                f,
                "hypervisor {:#} interface signature is {:#010x}, not 'Hv#1'",
                VendorText(vendor),
                signature
            ),
            Self::MissingPrivileges { missing } => {
                write!(f, "Hyper-V interface lacks required privileges: {}", missing)
            }
        }
    }
}

/// A way to execute CPUID: the real instruction in the guest, a table in
/// tests and in hvhost.
pub trait Cpuid {
    /// Returns the registers of `leaf`/`subleaf`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidRegs;
}

/// Decides whether the CPU presents a usable Hyper-V interface and decodes
/// it. Reads leaf 1, then leaf 0x40000000, and only when its maximum is in
/// range the leaves up to 0x40000005, never a leaf above the maximum.
pub fn detect(cpu: &impl Cpuid) -> Result<HvInfo, DetectError> {
    if cpu.cpuid(STD_FEATURES, 0).ecx & HYPERVISOR_PRESENT_ECX == 0 {
        return Err(DetectError::NoHypervisor);
    }
    let vendor = VendorLeaf::from(cpu.cpuid(VENDOR_AND_MAX_FUNCTIONS, 0));
    if !(MAX_LEAF_MIN..=MAX_LEAF_MAX).contains(&vendor.max_leaf) {
        return Err(DetectError::MaxLeafOutOfRange {
            vendor: vendor.vendor,
            max_leaf: vendor.max_leaf,
        });
    }
    let interface = InterfaceLeaf::from(cpu.cpuid(INTERFACE, 0));
    if interface.signature != INTERFACE_HV1 {
        return Err(DetectError::NotHv1 {
            vendor: vendor.vendor,
            signature: interface.signature,
        });
    }
    let features = FeaturesLeaf::from(cpu.cpuid(FEATURES, 0));
    let privileges = Privileges::from_bits_retain(
        u64::from(features.privileges_high) << 32 | u64::from(features.privileges_low),
    );
    let missing = REQUIRED_PRIVILEGES.difference(privileges);
    if !missing.is_empty() {
        return Err(DetectError::MissingPrivileges { missing });
    }
    let enlightenment = EnlightenmentLeaf::from(cpu.cpuid(ENLIGHTENMENT_INFO, 0));
    Ok(HvInfo {
        max_leaf: vendor.max_leaf,
        vendor: vendor.vendor,
        version: VersionLeaf::from(cpu.cpuid(VERSION, 0)),
        privileges,
        features: Features::from_bits_retain(features.features),
        recommendations: Recommendations::from_bits_retain(enlightenment.recommendations),
        spin_retries: enlightenment.spin_retries,
        limits: LimitsLeaf::from(cpu.cpuid(IMPLEMENT_LIMITS, 0)),
    })
}

impl core::fmt::Display for VersionLeaf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}.{} build {} (service pack {}, branch {}, number {})",
            self.major,
            self.minor,
            self.build,
            self.service_pack,
            self.service >> 24,
            self.service & 0x00ff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// A CPU that answers from a table and records which leaves were read.
    #[derive(Default)]
    struct FakeCpu {
        leaves: BTreeMap<u32, CpuidRegs>,
        read: RefCell<Vec<u32>>,
    }

    impl Cpuid for FakeCpu {
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidRegs {
            self.read.borrow_mut().push(leaf);
            self.leaves.get(&leaf).copied().unwrap_or_default()
        }
    }

    fn regs(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidRegs {
        CpuidRegs { eax, ebx, ecx, edx }
    }

    #[test]
    fn non_text_vendor_prints_as_hex() {
        assert_eq!(vendor_str(&[0xff; 12]), None);
        assert_eq!(vendor_str(b"ab\0\0\0\0\0\0\0\0\0\0"), Some("ab"));
        assert_eq!(
            VendorText(&[0xab; 12]).to_string(),
            "abababababababababababab"
        );
        assert_eq!(
            format!("{:#}", VendorText(b"Microsoft Hv")),
            "'Microsoft Hv'"
        );
        assert_eq!(VendorText(b"Microsoft Hv").to_string(), "Microsoft Hv");
    }

    fn any_regs() -> impl Strategy<Value = CpuidRegs> {
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(a, b, c, d)| regs(a, b, c, d))
    }

    proptest! {
        /// For arbitrary CPUID contents detect never panics, never reads a
        /// leaf above the reported maximum, and accepts exactly when the
        /// four conditions hold.
        #[test]
        fn detect_is_total_and_exact(leaf1 in any_regs(), l0 in any_regs(), l1 in any_regs(),
                                     l3 in any_regs(), rest in proptest::collection::vec(any_regs(), 3),
                                     max_in_range in any::<bool>(), hv1 in any::<bool>()) {
            let mut cpu = FakeCpu::default();
            let mut l0 = l0;
            let mut l1 = l1;
            if max_in_range { l0.eax = MAX_LEAF_MIN + l0.eax % (MAX_LEAF_MAX - MAX_LEAF_MIN + 1); }
            if hv1 { l1.eax = INTERFACE_HV1; }
            cpu.leaves.insert(1, leaf1);
            cpu.leaves.insert(0x4000_0000, l0);
            cpu.leaves.insert(0x4000_0001, l1);
            cpu.leaves.insert(0x4000_0002, rest[0]);
            cpu.leaves.insert(0x4000_0003, l3);
            cpu.leaves.insert(0x4000_0004, rest[1]);
            cpu.leaves.insert(0x4000_0005, rest[2]);
            let result = detect(&cpu);
            let present = leaf1.ecx & HYPERVISOR_PRESENT_ECX != 0;
            let in_range = (MAX_LEAF_MIN..=MAX_LEAF_MAX).contains(&l0.eax);
            let privs = u64::from(l3.ebx) << 32 | u64::from(l3.eax);
            let expect_ok = present && in_range && l1.eax == INTERFACE_HV1
                && privs & REQUIRED_PRIVILEGES.bits() == REQUIRED_PRIVILEGES.bits();
            prop_assert_eq!(result.is_ok(), expect_ok);
            for &leaf in cpu.read.borrow().iter() {
                prop_assert!(leaf == 1 || (present && (leaf == 0x4000_0000 || (in_range && leaf <= l0.eax))));
            }
            if let Ok(info) = result {
                prop_assert_eq!(info.privileges.bits(), privs);
                prop_assert_eq!(info.features.bits(), l3.edx);
            }
        }
    }
}
