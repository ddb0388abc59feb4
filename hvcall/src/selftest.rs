// SPDX-License-Identifier: GPL-2.0

//! Deterministic conformance cases for this crate, written `no_std` so that
//! the same cases run as host unit tests (`cargo test`) and as KUnit tests
//! inside the kernel (the `hv_guest_kunit` module includes this file), where
//! they check the contract as compiled by the kernel's own toolchain.
//!
//! Each case returns `Err` with a static description of the first mismatch.

use core::fmt::{self, Write};

use super::cpuid::{
    detect, Cpuid, CpuidRegs, DetectError, Features, Privileges, Recommendations, VersionLeaf,
    HYPERVISOR_PRESENT_ECX, INTERFACE_HV1,
};
use super::hypercall::{CallCode, CallResult, Control, HvStatus, SignalEventInput};
use super::msr;
use super::synic::{event_flag_word, message_slot_offset, SintReg};

/// Result of one case.
pub type CaseResult = Result<(), &'static str>;

/// A CPU answering from a fixed table (zeros for leaves not in it) that
/// remembers the highest hypervisor leaf it was asked for.
pub struct TableCpu {
    leaves: [(u32, CpuidRegs); 7],
    highest_read: core::cell::Cell<u32>,
}

const fn regs(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidRegs {
    CpuidRegs { eax, ebx, ecx, edx }
}

impl TableCpu {
    /// What QEMU with `hv-vpindex,hv-synic,hv-runtime,hv-time` presents.
    pub const fn qemu_hyperv() -> Self {
        Self {
            leaves: [
                (1, regs(0, 0, HYPERVISOR_PRESENT_ECX, 0)),
                // "Microsoft Hv" in EBX, ECX, EDX.
                (
                    0x4000_0000,
                    regs(0x4000_000b, 0x7263_694d, 0x666f_736f, 0x7648_2074),
                ),
                (0x4000_0001, regs(INTERFACE_HV1, 0, 0, 0)),
                (0x4000_0002, regs(0x3839, 0x000a_0000, 0, 0)),
                (0x4000_0003, regs(0x267, 0, 0, 0x8_0000)),
                (0x4000_0004, regs(1 << 9, 0xffff_ffff, 0, 0)),
                (0x4000_0005, regs(2, 0, 0, 0)),
            ],
            highest_read: core::cell::Cell::new(0),
        }
    }

    /// Replaces one leaf.
    pub fn with(mut self, leaf: u32, value: CpuidRegs) -> Self {
        for entry in self.leaves.iter_mut() {
            if entry.0 == leaf {
                entry.1 = value;
            }
        }
        self
    }
}

impl Cpuid for TableCpu {
    fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidRegs {
        if leaf > self.highest_read.get() {
            self.highest_read.set(leaf);
        }
        self.leaves
            .iter()
            .find(|(l, _)| *l == leaf)
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }
}

/// A fixed-size text buffer for checking `Display` output without allocation.
pub struct FmtBuf {
    buf: [u8; 160],
    len: usize,
}

impl FmtBuf {
    /// Formats `value`; output past the buffer is an error.
    pub fn of(value: &impl fmt::Display) -> Result<Self, &'static str> {
        let mut this = Self {
            buf: [0; 160],
            len: 0,
        };
        write!(this, "{}", value).map_err(|_| "formatted text longer than the test buffer")?;
        Ok(this)
    }

    /// The text written.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl Write for FmtBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn check(cond: bool, what: &'static str) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(what)
    }
}

fn check_text(value: &impl fmt::Display, expected: &str, what: &'static str) -> CaseResult {
    check(FmtBuf::of(value)?.as_str() == expected, what)
}

/// Bit and MSR values agree with `include/hyperv/hvgdk_mini.h`.
pub fn constants_match_headers() -> CaseResult {
    check(
        Privileges::HYPERCALL.bits() == 1 << 5 && Privileges::VP_INDEX.bits() == 1 << 6,
        "HYPERCALL/VP_INDEX bits",
    )?;
    check(
        Privileges::SYNIC.bits() == 1 << 2 && Privileges::POST_MESSAGES.bits() == 1 << 36,
        "SYNIC/POST_MESSAGES bits",
    )?;
    check(
        Features::STIMER_DIRECT_MODE.bits() == 1 << 19,
        "STIMER_DIRECT_MODE bit",
    )?;
    check(
        Recommendations::DEPRECATING_AEOI.bits() == 1 << 9,
        "DEPRECATING_AEOI bit",
    )?;
    check(INTERFACE_HV1 == 0x3123_7648, "Hv#1 signature")?;
    check(
        msr::GUEST_OS_ID == 0x4000_0000 && msr::HYPERCALL == 0x4000_0001,
        "GUEST_OS_ID/HYPERCALL",
    )?;
    check(
        msr::SIMP == 0x4000_0083 && msr::sint(2) == Some(0x4000_0092),
        "SIMP/SINT2",
    )
}

/// QEMU's Hyper-V leaves are accepted and decoded, and nothing above the
/// maximum leaf is read.
pub fn detects_qemu_hyperv() -> CaseResult {
    let cpu = TableCpu::qemu_hyperv();
    let info = detect(&cpu).map_err(|_| "QEMU's leaves were refused")?;
    check(info.vendor_str() == Some("Microsoft Hv"), "vendor")?;
    check(info.max_leaf == 0x4000_000b, "max leaf")?;
    check(
        info.privileges
            .contains(Privileges::SYNIC.union(Privileges::VP_INDEX)),
        "SYNIC|VP_INDEX",
    )?;
    check(
        info.features.contains(Features::STIMER_DIRECT_MODE),
        "STIMER_DIRECT_MODE",
    )?;
    check(
        info.recommendations
            .contains(Recommendations::DEPRECATING_AEOI),
        "DEPRECATING_AEOI",
    )?;
    check(info.limits.max_vps == 2, "max_vps")?;
    check(
        cpu.highest_read.get() <= info.max_leaf,
        "read above max leaf",
    )?;
    check_text(
        &info.privileges,
        "0x267 VP_RUNTIME TIME_REF_COUNT SYNIC HYPERCALL VP_INDEX REFERENCE_TSC",
        "privileges text",
    )?;
    check_text(
        &info.version,
        "10.0 build 14393 (service pack 0, branch 0, number 0)",
        "version text",
    )
}

/// Without the hypervisor bit no hypervisor leaf is read.
pub fn refuses_without_hypervisor_bit() -> CaseResult {
    let cpu = TableCpu::qemu_hyperv().with(1, regs(0, 0, 0, 0));
    check(
        detect(&cpu) == Err(DetectError::NoHypervisor),
        "NoHypervisor",
    )?;
    check(cpu.highest_read.get() == 1, "read a hypervisor leaf")
}

/// KVM's own signature (max leaf 0x40000001) is refused before reading any
/// leaf above it, with a message naming vendor and leaf.
pub fn refuses_kvm_signature() -> CaseResult {
    let cpu = TableCpu::qemu_hyperv().with(
        0x4000_0000,
        regs(0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
    );
    let err = match detect(&cpu) {
        Err(e) => e,
        Ok(_) => return Err("KVM signature accepted"),
    };
    check(
        cpu.highest_read.get() == 0x4000_0000,
        "read past the KVM maximum",
    )?;
    check_text(
        &err,
        "hypervisor 'KVMKVMKVM' reports max leaf 0x40000001, outside 0x40000005..=0x4000ffff: not Hyper-V compatible",
        "KVM refusal text",
    )
}

/// An interface other than `Hv#1` is refused.
pub fn refuses_other_interface() -> CaseResult {
    let cpu = TableCpu::qemu_hyperv().with(0x4000_0001, regs(0x5858_5858, 0, 0, 0));
    check(
        matches!(
            detect(&cpu),
            Err(DetectError::NotHv1 {
                signature: 0x5858_5858,
                ..
            })
        ),
        "NotHv1",
    )
}

/// Missing required privileges are refused and named.
pub fn refuses_missing_privileges() -> CaseResult {
    let cpu = TableCpu::qemu_hyperv().with(
        0x4000_0003,
        regs(Privileges::HYPERCALL.bits() as u32, 0, 0, 0),
    );
    let err = match detect(&cpu) {
        Err(e) => e,
        Ok(_) => return Err("accepted without VP_INDEX"),
    };
    check(
        err == DetectError::MissingPrivileges {
            missing: Privileges::VP_INDEX,
        },
        "missing set",
    )?;
    check_text(
        &err,
        "Hyper-V interface lacks required privileges: 0x40 VP_INDEX",
        "missing text",
    )
}

/// Bit sets print known names and unknown bits; the version leaf decodes.
pub fn decodes_bits_and_version() -> CaseResult {
    check_text(
        &Features::from_bits_retain(0x8_0010),
        "0x80010 XMM_INPUT STIMER_DIRECT_MODE",
        "features",
    )?;
    check_text(
        &Recommendations::from_bits_retain(0x8000_0200),
        "0x80000200 DEPRECATING_AEOI +0x80000000",
        "unknown bit",
    )?;
    let ver = VersionLeaf::from(regs(14393, 0x000a_0003, 7, 0x0500_0010));
    check(
        ver.major == 10 && ver.minor == 3 && ver.build == 14393,
        "version fields",
    )?;
    check(
        CpuidRegs::from(ver) == regs(14393, 0x000a_0003, 7, 0x0500_0010),
        "version round trip",
    )
}

/// The control word as the guest builds it and the host decodes it:
/// fields in their TLFS bit positions, reserved bits refused first,
/// unknown codes refused, rep fields checked.
pub fn control_word_round_trip() -> CaseResult {
    let c = Control::new(CallCode::POST_MESSAGE);
    check(c.to_bits() == 0x5c, "slow simple call is just the code")?;
    check(
        c.with_fast().to_bits() == 0x5c | 1 << 16,
        "fast bit is bit 16",
    )?;
    let rep = Control::new(CallCode::FLUSH_VIRTUAL_ADDRESS_LIST).with_reps(5, 2);
    check(
        rep.to_bits() == 0x3 | 5 << 32 | 2 << 48,
        "rep count at 32, rep start at 48",
    )?;
    check(
        Control::decode(rep.to_bits()) == Ok(rep),
        "rep call decodes",
    )?;
    check(
        Control::new(CallCode::POST_MESSAGE)
            .with_var_header(3)
            .to_bits()
            == 0x5c | 3 << 17,
        "variable header size at bit 17",
    )?;
    check(
        Control::decode(0x5c | 1 << 63) == Err(HvStatus::INVALID_HYPERCALL_INPUT),
        "reserved bit refused",
    )?;
    check(
        Control::decode(0x0fff) == Err(HvStatus::INVALID_HYPERCALL_CODE),
        "unknown code refused",
    )?;
    check(
        Control::decode(0x5c | 1 << 32) == Err(HvStatus::INVALID_HYPERCALL_INPUT),
        "rep count on a simple call refused",
    )
}

/// The result word (status low 16 bits, reps completed at 32) and the fast
/// HvSignalEvent input packing.
pub fn result_word_and_fast_input() -> CaseResult {
    let r = CallResult::from_bits(0x13 | 7 << 32 | 0xdead << 48);
    check(
        r.status == HvStatus::INSUFFICIENT_BUFFERS && r.reps_completed == 7,
        "status and reps completed",
    )?;
    check(
        CallResult::status(HvStatus::SUCCESS).to_bits() == 0,
        "success is 0",
    )?;
    let fast = SignalEventInput {
        connection_id: 0x12_3456,
        flag_number: 9,
        rsvd: 0,
    };
    check(
        fast.to_fast() == 0x12_3456 | 9 << 32,
        "RDX = connection | flag << 32",
    )?;
    check(
        SignalEventInput::from_fast(fast.to_fast()) == fast,
        "fast input round trip",
    )
}

/// SINT register fields and the SIMP/SIEFP geometry.
pub fn sint_and_page_geometry() -> CaseResult {
    let sint = SintReg::new(0x34);
    check(
        sint.0 == 0x34 && sint.vector() == 0x34 && !sint.masked(),
        "vector in bits 7:0, unmasked",
    )?;
    check(sint.with_masked(true).0 == 0x34 | 1 << 16, "mask is bit 16")?;
    check(
        message_slot_offset(2) == Some(512) && message_slot_offset(16).is_none(),
        "256-byte slots, 16 SINTs",
    )?;
    check(
        event_flag_word(2, 33) == Some((2 * 256 + 4, 1)),
        "flag 33 of SINT 2: second word, bit 1",
    )?;
    check(event_flag_word(2, 2048).is_none(), "2048 flags per SINT")
}

/// A named case.
pub type Case = (&'static str, fn() -> CaseResult);

/// Every case with its name.
pub const CASES: &[Case] = &[
    ("constants_match_headers", constants_match_headers),
    ("detects_qemu_hyperv", detects_qemu_hyperv),
    (
        "refuses_without_hypervisor_bit",
        refuses_without_hypervisor_bit,
    ),
    ("refuses_kvm_signature", refuses_kvm_signature),
    ("refuses_other_interface", refuses_other_interface),
    ("refuses_missing_privileges", refuses_missing_privileges),
    ("decodes_bits_and_version", decodes_bits_and_version),
    ("control_word_round_trip", control_word_round_trip),
    ("result_word_and_fast_input", result_word_and_fast_input),
    ("sint_and_page_geometry", sint_and_page_geometry),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_selftest_case_passes() {
        let failures: Vec<_> = super::CASES
            .iter()
            .filter_map(|(name, case)| case().err().map(|why| format!("{name}: {why}")))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
