// SPDX-License-Identifier: GPL-2.0

//! The synthetic interrupt controller and the time enlightenments as the
//! guest sees them in memory and MSRs (TLFS "Inter-Partition Communication",
//! "Timers"; Linux `include/hyperv/hvgdk_mini.h`, `hvhdk.h`): typed SINT,
//! SCONTROL and page MSR values, the 256-byte message slot, the event flags
//! page geometry, the reference TSC page and its formula, and the synthetic
//! timer configuration.
//!
//! Who owns what in shared memory: in a SIMP slot the host writes the body
//! and then the type; the guest reads the body only after it sees a non-zero
//! type, clears the type to hand the slot back, and writes EOM if the host
//! had set `msg_pending`. In the SIEFP page the host only sets bits, the
//! guest only clears them.

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use super::hypercall::{HV_MESSAGE_PAYLOAD_BYTE_COUNT, HV_PAGE_SIZE};

/// Number of synthetic interrupt sources per virtual processor.
pub const SINT_COUNT: usize = 16;
/// SVERSION's value (HV_SYNIC_VERSION_1).
pub const SYNIC_VERSION_1: u64 = 1;
/// Lowest vector a SINT may deliver (HV_SYNIC_FIRST_VALID_VECTOR).
pub const FIRST_VALID_VECTOR: u8 = 16;
/// The SINT VMBus uses (HV_SYNIC_VMBUS_SINT_INDEX).
pub const VMBUS_SINT: u8 = 2;
/// Synthetic timers per virtual processor (HV_SYNIC_STIMER_COUNT).
pub const STIMER_COUNT: usize = 4;

/// A SINTn register (union hv_synic_sint).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct SintReg(pub u64);

impl SintReg {
    /// Bits 7:0: the vector.
    pub const VECTOR_MASK: u64 = 0xff;
    /// Bit 16: masked (no interrupt; messages and flags are still written).
    pub const MASKED: u64 = 1 << 16;
    /// Bit 17: auto EOI (hvhost recommends against it and cannot emulate it).
    pub const AUTO_EOI: u64 = 1 << 17;
    /// Bit 18: polling (never interrupt).
    pub const POLLING: u64 = 1 << 18;
    /// The reset value: masked, vector 0.
    pub const RESET: Self = Self(Self::MASKED);

    /// A register with `vector` and no flags.
    pub const fn new(vector: u8) -> Self {
        Self(vector as u64)
    }
    /// The vector.
    pub const fn vector(self) -> u8 {
        (self.0 & Self::VECTOR_MASK) as u8
    }
    /// Whether the source is masked.
    pub const fn masked(self) -> bool {
        self.0 & Self::MASKED != 0
    }
    /// Whether auto EOI is requested.
    pub const fn auto_eoi(self) -> bool {
        self.0 & Self::AUTO_EOI != 0
    }
    /// Whether the source is polled.
    pub const fn polling(self) -> bool {
        self.0 & Self::POLLING != 0
    }
    /// The same register, masked or not.
    #[must_use]
    pub const fn with_masked(self, masked: bool) -> Self {
        Self(if masked {
            self.0 | Self::MASKED
        } else {
            self.0 & !Self::MASKED
        })
    }
    /// The same register with auto EOI set or clear.
    #[must_use]
    pub const fn with_auto_eoi(self, on: bool) -> Self {
        Self(if on {
            self.0 | Self::AUTO_EOI
        } else {
            self.0 & !Self::AUTO_EOI
        })
    }
    /// The same register with polling set or clear.
    #[must_use]
    pub const fn with_polling(self, on: bool) -> Self {
        Self(if on {
            self.0 | Self::POLLING
        } else {
            self.0 & !Self::POLLING
        })
    }
    /// Whether a guest write of this value is accepted: an unmasked SINT with
    /// a vector below 16 is a #GP (as KVM's `synic_set_sint`).
    pub const fn guest_write_ok(self) -> bool {
        self.masked() || self.vector() >= FIRST_VALID_VECTOR
    }
}

impl core::fmt::Debug for SintReg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SintReg({:#x} vector {}", self.0, self.vector())?;
        for (on, name) in [
            (self.masked(), "masked"),
            (self.auto_eoi(), "auto_eoi"),
            (self.polling(), "polling"),
        ] {
            if on {
                write!(f, " {}", name)?;
            }
        }
        write!(f, ")")
    }
}

/// SCONTROL: bit 0 enables the SynIC of this virtual processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Scontrol(pub u64);

impl Scontrol {
    /// HV_SYNIC_CONTROL_ENABLE.
    pub const ENABLE: u64 = 1;
    /// Whether the SynIC is enabled.
    pub const fn enabled(self) -> bool {
        self.0 & Self::ENABLE != 0
    }
}

/// An MSR that enables a guest page: bit 0 enable, bits 63:12 the guest page
/// number. SIMP, SIEFP, REFERENCE_TSC and VP_ASSIST_PAGE have this shape;
/// HYPERCALL adds a lock bit ([`HypercallMsr`]). Bits 11:1 are preserved as
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct PageMsr(pub u64);

/// Bit 0 of every page MSR.
pub const PAGE_ENABLE: u64 = 1;
/// Bits 63:12: the page number field.
pub const PAGE_GPA_MASK: u64 = !0xfff;

impl PageMsr {
    /// Enabled at the page holding `gpa` (its low 12 bits are dropped).
    pub const fn enabled_at(gpa: u64) -> Self {
        Self(gpa & PAGE_GPA_MASK | PAGE_ENABLE)
    }
    /// Whether the page is enabled.
    pub const fn enabled(self) -> bool {
        self.0 & PAGE_ENABLE != 0
    }
    /// The page's guest physical address.
    pub const fn gpa(self) -> u64 {
        self.0 & PAGE_GPA_MASK
    }
    /// The page's guest page number.
    pub const fn pfn(self) -> u64 {
        self.0 >> 12
    }
}

/// The SIMP MSR.
pub type SimpMsr = PageMsr;
/// The SIEFP MSR.
pub type SiefpMsr = PageMsr;
/// The REFERENCE_TSC MSR.
pub type ReferenceTscMsr = PageMsr;
/// The VP_ASSIST_PAGE MSR.
pub type VpAssistMsr = PageMsr;

/// The HYPERCALL MSR: bit 0 enable, bit 1 locked (further writes ignored
/// until reset), bits 63:12 the hypercall page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct HypercallMsr(pub u64);

impl HypercallMsr {
    /// HV_X64_MSR_HYPERCALL_ENABLE.
    pub const ENABLE: u64 = 1;
    /// Locked: the MSR no longer changes.
    pub const LOCKED: u64 = 1 << 1;
    /// Enabled at the page holding `gpa`.
    pub const fn enabled_at(gpa: u64) -> Self {
        Self(gpa & PAGE_GPA_MASK | Self::ENABLE)
    }
    /// Whether the hypercall page is enabled.
    pub const fn enabled(self) -> bool {
        self.0 & Self::ENABLE != 0
    }
    /// Whether the MSR is locked.
    pub const fn locked(self) -> bool {
        self.0 & Self::LOCKED != 0
    }
    /// The page's guest physical address.
    pub const fn gpa(self) -> u64 {
        self.0 & PAGE_GPA_MASK
    }
}

/// A SynIC message type (enum hv_message_type). Types with bit 31 set are
/// the hypervisor's; guests post types below that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct MessageType(pub u32);

impl MessageType {
    /// The slot is free.
    pub const NONE: Self = Self(0);
    /// A guest physical address was not mapped.
    pub const UNMAPPED_GPA: Self = Self(0x8000_0000);
    /// A GPA intercept.
    pub const GPA_INTERCEPT: Self = Self(0x8000_0001);
    /// A synthetic timer (in message mode) expired.
    pub const TIMER_EXPIRED: Self = Self(0x8000_0010);
    /// Invalid VP register value.
    pub const INVALID_VP_REGISTER_VALUE: Self = Self(0x8000_0020);
    /// Unrecoverable exception.
    pub const UNRECOVERABLE_EXCEPTION: Self = Self(0x8000_0021);
    /// Unsupported feature.
    pub const UNSUPPORTED_FEATURE: Self = Self(0x8000_0022);
    /// Event log buffer complete.
    pub const EVENTLOG_BUFFERCOMPLETE: Self = Self(0x8000_0040);
}

/// Bit 0 of `message_flags`: another message waits for this slot; the guest
/// must write EOM after freeing it.
pub const MESSAGE_FLAG_PENDING: u8 = 1;

/// The 16-byte header of a SynIC message (struct hv_message_header).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HvMessageHeader {
    /// [`MessageType`]; zero means the slot is free.
    pub message_type: u32,
    /// Valid payload bytes.
    pub payload_size: u8,
    /// [`MESSAGE_FLAG_PENDING`] and reserved bits.
    pub message_flags: u8,
    /// Reserved.
    pub reserved: [u8; 2],
    /// Sender or port ID.
    pub sender: u64,
}

/// One message slot of the SIMP page (struct hv_message), 256 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct HvMessage {
    /// Header.
    pub header: HvMessageHeader,
    /// Body; `header.payload_size` bytes are valid.
    pub payload: [u8; HV_MESSAGE_PAYLOAD_BYTE_COUNT],
}

/// Size of one message slot (HV_MESSAGE_SIZE).
pub const HV_MESSAGE_SIZE: usize = 256;
/// Offset of `message_type` within a slot.
pub const MESSAGE_TYPE_OFFSET: usize = 0;
/// Offset of `message_flags` within a slot.
pub const MESSAGE_FLAGS_OFFSET: usize = 5;

const _: () = {
    assert!(core::mem::size_of::<HvMessageHeader>() == 16);
    assert!(core::mem::size_of::<HvMessage>() == HV_MESSAGE_SIZE);
    assert!(core::mem::offset_of!(HvMessageHeader, message_flags) == MESSAGE_FLAGS_OFFSET);
    assert!(core::mem::offset_of!(HvMessageHeader, sender) == 8);
    assert!(core::mem::offset_of!(HvMessage, payload) == 16);
    assert!(HV_MESSAGE_SIZE * SINT_COUNT == HV_PAGE_SIZE as usize);
};

impl HvMessage {
    /// A message of `message_type` carrying `payload` (at most 240 bytes;
    /// `None` if longer), no flags, sender 0.
    pub fn new(message_type: MessageType, payload: &[u8]) -> Option<Self> {
        let mut msg = Self {
            header: HvMessageHeader {
                message_type: message_type.0,
                payload_size: u8::try_from(payload.len()).ok()?,
                ..HvMessageHeader::default()
            },
            payload: [0; HV_MESSAGE_PAYLOAD_BYTE_COUNT],
        };
        msg.payload
            .get_mut(..payload.len())?
            .copy_from_slice(payload);
        Some(msg)
    }

    /// The valid part of the payload (clamped to 240 bytes).
    pub fn body(&self) -> &[u8] {
        let len = usize::from(self.header.payload_size).min(HV_MESSAGE_PAYLOAD_BYTE_COUNT);
        &self.payload[..len]
    }
}

/// Byte offset of SINT `sint`'s slot in the SIMP page.
pub const fn message_slot_offset(sint: usize) -> Option<usize> {
    if sint < SINT_COUNT {
        Some(sint * HV_MESSAGE_SIZE)
    } else {
        None
    }
}

/// Event flag bytes per SINT in the SIEFP page (HV_EVENT_FLAGS_BYTE_COUNT).
pub const EVENT_FLAGS_BYTES: usize = 256;
/// Event flags per SINT (HV_EVENT_FLAGS_COUNT = 2048).
pub const EVENT_FLAGS_COUNT: usize = EVENT_FLAGS_BYTES * 8;

const _: () = assert!(EVENT_FLAGS_BYTES * SINT_COUNT <= HV_PAGE_SIZE as usize);

/// Where flag `flag` of SINT `sint` lives in the SIEFP page: the byte offset
/// of the 32-bit little-endian word holding it and the bit in that word.
/// Words are what both sides set and clear atomically.
pub const fn event_flag_word(sint: usize, flag: usize) -> Option<(usize, u32)> {
    if sint < SINT_COUNT && flag < EVENT_FLAGS_COUNT {
        Some((
            sint * EVENT_FLAGS_BYTES + (flag / 32) * 4,
            (flag % 32) as u32,
        ))
    } else {
        None
    }
}

/// The reference TSC page header (struct ms_hyperv_tsc_page); the rest of
/// the 4 KiB page is reserved.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ReferenceTscPage {
    /// Zero: the page is invalid, use TIME_REF_COUNT. Otherwise changes
    /// whenever scale or offset change; the guest retries on a change.
    pub sequence: u32,
    /// Reserved.
    pub reserved: u32,
    /// 64.64 fixed-point multiplier: 100 ns units per TSC tick, times 2^64.
    pub scale: u64,
    /// Added after scaling, in 100 ns units.
    pub offset: i64,
}

const _: () = {
    assert!(core::mem::size_of::<ReferenceTscPage>() == 24);
    assert!(core::mem::offset_of!(ReferenceTscPage, scale) == 8);
    assert!(core::mem::offset_of!(ReferenceTscPage, offset) == 16);
};

/// The sequence value that marks a reference TSC page invalid.
pub const TSC_PAGE_INVALID_SEQUENCE: u32 = 0;

/// The TLFS formula: reference time (100 ns) = ((tsc * scale) >> 64) + offset.
pub const fn reference_time(tsc: u64, scale: u64, offset: i64) -> u64 {
    ((((tsc as u128) * (scale as u128)) >> 64) as u64).wrapping_add(offset as u64)
}

/// The scale for a TSC of `tsc_khz`: 10^4 100-ns units per millisecond
/// divided by ticks per millisecond, in 64.64 fixed point. `None` for a TSC
/// slower than 10 MHz (the scale would not fit) or zero.
pub const fn tsc_scale(tsc_khz: u64) -> Option<u64> {
    if tsc_khz <= 10_000 {
        return None;
    }
    Some(((10_000u128 << 64) / tsc_khz as u128) as u64)
}

/// A synthetic timer's CONFIG register (union hv_stimer_config).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct StimerConfig(pub u64);

impl StimerConfig {
    /// Bit 0: running.
    pub const ENABLE: u64 = 1;
    /// Bit 1: periodic (COUNT is the period) rather than one-shot (COUNT is
    /// an absolute reference time).
    pub const PERIODIC: u64 = 1 << 1;
    /// Bit 2: lazy.
    pub const LAZY: u64 = 1 << 2;
    /// Bit 3: writing a non-zero COUNT sets ENABLE.
    pub const AUTO_ENABLE: u64 = 1 << 3;
    /// Bits 11:4: the vector in direct mode.
    pub const APIC_VECTOR_SHIFT: u32 = 4;
    /// Bit 12: direct mode (interrupt the vCPU with `apic_vector`, no message).
    pub const DIRECT_MODE: u64 = 1 << 12;
    /// Bits 19:16: the SINT for message mode.
    pub const SINTX_SHIFT: u32 = 16;

    /// Whether the timer runs.
    pub const fn enable(self) -> bool {
        self.0 & Self::ENABLE != 0
    }
    /// Whether it is periodic.
    pub const fn periodic(self) -> bool {
        self.0 & Self::PERIODIC != 0
    }
    /// Whether it is lazy.
    pub const fn lazy(self) -> bool {
        self.0 & Self::LAZY != 0
    }
    /// Whether a COUNT write enables it.
    pub const fn auto_enable(self) -> bool {
        self.0 & Self::AUTO_ENABLE != 0
    }
    /// The direct-mode vector.
    pub const fn apic_vector(self) -> u8 {
        (self.0 >> Self::APIC_VECTOR_SHIFT) as u8
    }
    /// Whether the timer is in direct mode.
    pub const fn direct_mode(self) -> bool {
        self.0 & Self::DIRECT_MODE != 0
    }
    /// The message-mode SINT.
    pub const fn sintx(self) -> u8 {
        ((self.0 >> Self::SINTX_SHIFT) & 0xf) as u8
    }
    /// The same config with ENABLE set or clear.
    #[must_use]
    pub const fn with_enable(self, on: bool) -> Self {
        Self(if on {
            self.0 | Self::ENABLE
        } else {
            self.0 & !Self::ENABLE
        })
    }
    /// Whether a guest may write this config: a direct-mode timer
    /// interrupts on its vector, which must be one an interrupt may use
    /// (16 or above, as for a SINT). KVM's in-kernel timers take any
    /// vector; hvhost refuses the write with a #GP rather than send the
    /// vCPU an interrupt on an exception vector.
    pub const fn guest_write_ok(self) -> bool {
        !self.direct_mode() || self.apic_vector() >= FIRST_VALID_VECTOR
    }
    /// A direct-mode config for `vector`.
    pub const fn direct(vector: u8, periodic: bool) -> Self {
        Self(
            Self::DIRECT_MODE
                | (vector as u64) << Self::APIC_VECTOR_SHIFT
                | if periodic { Self::PERIODIC } else { 0 },
        )
    }
}

impl core::fmt::Debug for StimerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "StimerConfig({:#x} enable {} periodic {} direct {} vector {} sintx {})",
            self.0,
            self.enable(),
            self.periodic(),
            self.direct_mode(),
            self.apic_vector(),
            self.sintx()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sint_fields_match_headers() {
        assert_eq!(SintReg::MASKED, 1 << 16);
        assert_eq!(SintReg::AUTO_EOI, 1 << 17);
        let s = SintReg::new(0x31).with_polling(true);
        assert_eq!(
            (s.vector(), s.masked(), s.polling(), s.auto_eoi()),
            (0x31, false, true, false)
        );
        assert!(!SintReg::new(15).guest_write_ok());
        assert!(SintReg::new(15).with_masked(true).guest_write_ok());
        assert!(SintReg::new(16).guest_write_ok());
        assert!(!StimerConfig::direct(15, false).guest_write_ok());
        assert!(StimerConfig::direct(16, true).guest_write_ok());
        assert!(StimerConfig(15 << StimerConfig::APIC_VECTOR_SHIFT).guest_write_ok());
        assert!(SintReg::RESET.masked());
    }

    #[test]
    fn page_msrs() {
        let p = PageMsr::enabled_at(0x1234_5678);
        assert_eq!(
            (p.enabled(), p.gpa(), p.pfn()),
            (true, 0x1234_5000, 0x12345)
        );
        let h = HypercallMsr(0x7000 | 3);
        assert!(h.enabled() && h.locked() && h.gpa() == 0x7000);
    }

    #[test]
    fn message_layout() {
        let m = HvMessage::new(MessageType(1), b"abc").expect("fits");
        assert_eq!(m.body(), b"abc");
        assert!(HvMessage::new(MessageType(1), &[0; 241]).is_none());
        assert_eq!(MessageType::TIMER_EXPIRED.0, 0x8000_0010);
        assert_eq!(message_slot_offset(2), Some(512));
        assert_eq!(message_slot_offset(16), None);
    }

    #[test]
    fn event_flag_geometry() {
        assert_eq!(EVENT_FLAGS_COUNT, 2048);
        assert_eq!(event_flag_word(0, 0), Some((0, 0)));
        assert_eq!(event_flag_word(1, 33), Some((256 + 4, 1)));
        assert_eq!(event_flag_word(15, 2047), Some((15 * 256 + 252, 31)));
        assert_eq!(event_flag_word(16, 0), None);
        assert_eq!(event_flag_word(0, 2048), None);
    }

    #[test]
    fn reference_tsc_formula() {
        // A 1 GHz TSC: 10^9 ticks are one second, 10^7 units of 100 ns.
        let scale = tsc_scale(1_000_000).expect("1 GHz");
        let t = reference_time(1_000_000_000, scale, 0);
        assert!((9_999_999..=10_000_000).contains(&t), "{t}");
        assert_eq!(reference_time(0, scale, 42), 42);
        assert!((9..=10).contains(&reference_time(1_000_000_000, scale, -9_999_990)));
        assert_eq!(tsc_scale(10_000), None);
        assert_eq!(tsc_scale(0), None);
    }

    #[test]
    fn stimer_config_bits() {
        let c = StimerConfig::direct(0xec, true).with_enable(true);
        assert_eq!(c.0, 1 | 2 | 0xec << 4 | 1 << 12);
        assert!(c.enable() && c.periodic() && c.direct_mode() && c.apic_vector() == 0xec);
        assert_eq!(StimerConfig(5 << 16).sintx(), 5);
        assert!(StimerConfig(StimerConfig::AUTO_ENABLE).auto_enable());
        assert!(StimerConfig(StimerConfig::LAZY).lazy());
    }

    proptest! {
        /// The scaled reference time stays within one unit of exact
        /// arithmetic for any TSC rate from 10 MHz up and a day of ticks.
        #[test]
        fn reference_time_is_exact_to_one_unit(khz in 10_001u64..10_000_000, secs in 0u64..86_400) {
            let scale = tsc_scale(khz).expect("fast enough");
            let tsc = khz * 1000 * secs;
            let exact = u128::from(tsc) * 10_000 / u128::from(khz);
            let got = u128::from(reference_time(tsc, scale, 0));
            prop_assert!(got <= exact && exact - got <= 1 + u128::from(secs) / 1_000_000);
        }

        /// Every SINT value decodes without panicking, and the #GP rule is exact.
        #[test]
        fn sint_write_rule(raw in any::<u64>()) {
            let s = SintReg(raw);
            prop_assert_eq!(s.guest_write_ok(), raw & (1 << 16) != 0 || raw & 0xff >= 16);
        }
    }
}
