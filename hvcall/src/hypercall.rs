// SPDX-License-Identifier: GPL-2.0

//! The hypercall ABI (TLFS "Hypercall Interface"; Linux
//! `include/hyperv/hvgdk_mini.h`): status codes, call codes, the control
//! word the guest passes in RCX and the result word it gets back in RAX, and
//! the input layouts of the calls both sides use.
//!
//! The guest builds control words with [`Control::new`]; the host decodes
//! and validates them with [`Control::decode`], which is total: any 64-bit
//! value is either a valid control word or the status the guest must get.

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A hypercall status (the low 16 bits of the result word). A value that is
/// not one of the named constants is still a status, printed as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct HvStatus(pub u16);

macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        impl HvStatus {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// Every named status, in header order.
            pub const NAMED: &'static [(Self, &'static str)] = &[$((Self::$name, stringify!($name)),)*];
        }
    };
}

statuses! {
    /// The call succeeded.
    SUCCESS = 0x0,
    /// The call code is not supported.
    INVALID_HYPERCALL_CODE = 0x2,
    /// Reserved bits of the control word or the input were not zero, or the
    /// rep/variable-header fields do not fit the call.
    INVALID_HYPERCALL_INPUT = 0x3,
    /// An input or output GPA is misaligned or crosses a page.
    INVALID_ALIGNMENT = 0x4,
    /// A parameter is out of range (also: a GPA outside guest RAM).
    INVALID_PARAMETER = 0x5,
    /// The caller lacks the privilege for the call.
    ACCESS_DENIED = 0x6,
    /// The partition is not in a state that allows the call.
    INVALID_PARTITION_STATE = 0x7,
    /// The operation is denied.
    OPERATION_DENIED = 0x8,
    /// Unknown property.
    UNKNOWN_PROPERTY = 0x9,
    /// Property value out of range.
    PROPERTY_VALUE_OUT_OF_RANGE = 0xA,
    /// Not enough memory.
    INSUFFICIENT_MEMORY = 0xB,
    /// Unknown partition.
    INVALID_PARTITION_ID = 0xD,
    /// Unknown virtual processor.
    INVALID_VP_INDEX = 0xE,
    /// Not found.
    NOT_FOUND = 0x10,
    /// Unknown port.
    INVALID_PORT_ID = 0x11,
    /// Unknown connection.
    INVALID_CONNECTION_ID = 0x12,
    /// The target has no free buffer (message queue full).
    INSUFFICIENT_BUFFERS = 0x13,
    /// Not acknowledged.
    NOT_ACKNOWLEDGED = 0x14,
    /// The virtual processor is in the wrong state.
    INVALID_VP_STATE = 0x15,
    /// No resources.
    NO_RESOURCES = 0x1D,
    /// A processor feature is not supported.
    PROCESSOR_FEATURE_NOT_SUPPORTED = 0x20,
    /// Unknown logical processor.
    INVALID_LP_INDEX = 0x41,
    /// Invalid register value.
    INVALID_REGISTER_VALUE = 0x50,
    /// The operation failed.
    OPERATION_FAILED = 0x71,
    /// The root partition lacks memory.
    INSUFFICIENT_ROOT_MEMORY = 0x73,
    /// Not enough contiguous memory.
    INSUFFICIENT_CONTIGUOUS_MEMORY = 0x75,
    /// Timed out.
    TIME_OUT = 0x78,
    /// The call is still pending.
    CALL_PENDING = 0x79,
    /// The root partition lacks contiguous memory.
    INSUFFICIENT_CONTIGUOUS_ROOT_MEMORY = 0x83,
    /// The VTL is already enabled.
    VTL_ALREADY_ENABLED = 0x86,
}

impl HvStatus {
    /// The header's name without the `HV_STATUS_` prefix, if this side knows it.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMED
            .iter()
            .find(|(s, _)| *s == self)
            .map(|(_, n)| *n)
    }

    /// Whether this is [`HvStatus::SUCCESS`].
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
}

impl core::fmt::Display for HvStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{:#x} {}", self.0, name),
            None => write!(f, "{:#x}", self.0),
        }
    }
}

impl core::fmt::Debug for HvStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "HvStatus({})", self)
    }
}

/// Whether a call takes a rep count (a "rep hypercall") or not ("simple").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// One operation; rep count and rep start must be zero.
    Simple,
    /// A list of elements; rep count is the number of elements.
    Rep,
}

/// A hypercall code (control word bits 15:0).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct CallCode(pub u16);

impl CallCode {
    /// HvCallFlushVirtualAddressSpace.
    pub const FLUSH_VIRTUAL_ADDRESS_SPACE: Self = Self(0x0002);
    /// HvCallFlushVirtualAddressList (rep).
    pub const FLUSH_VIRTUAL_ADDRESS_LIST: Self = Self(0x0003);
    /// HvCallNotifyLongSpinWait: a guest spun too long; no input, no output.
    /// The cheapest call there is, used as the null hypercall.
    pub const NOTIFY_LONG_SPIN_WAIT: Self = Self(0x0008);
    /// HvCallSendSyntheticClusterIpi.
    pub const SEND_IPI: Self = Self(0x000b);
    /// HvCallPostMessage: send a message to a message connection.
    pub const POST_MESSAGE: Self = Self(0x005c);
    /// HvCallSignalEvent: set an event flag through an event connection.
    pub const SIGNAL_EVENT: Self = Self(0x005d);

    /// The codes this contract knows, with their kind and name.
    pub const KNOWN: &'static [(Self, CallKind, &'static str)] = &[
        (
            Self::FLUSH_VIRTUAL_ADDRESS_SPACE,
            CallKind::Simple,
            "FLUSH_VIRTUAL_ADDRESS_SPACE",
        ),
        (
            Self::FLUSH_VIRTUAL_ADDRESS_LIST,
            CallKind::Rep,
            "FLUSH_VIRTUAL_ADDRESS_LIST",
        ),
        (
            Self::NOTIFY_LONG_SPIN_WAIT,
            CallKind::Simple,
            "NOTIFY_LONG_SPIN_WAIT",
        ),
        (Self::SEND_IPI, CallKind::Simple, "SEND_IPI"),
        (Self::POST_MESSAGE, CallKind::Simple, "POST_MESSAGE"),
        (Self::SIGNAL_EVENT, CallKind::Simple, "SIGNAL_EVENT"),
    ];

    /// The kind of a known call.
    pub fn kind(self) -> Option<CallKind> {
        Self::KNOWN
            .iter()
            .find(|(c, _, _)| *c == self)
            .map(|(_, k, _)| *k)
    }

    /// The header's name without the `HVCALL_` prefix, if known.
    pub fn name(self) -> Option<&'static str> {
        Self::KNOWN
            .iter()
            .find(|(c, _, _)| *c == self)
            .map(|(_, _, n)| *n)
    }
}

impl core::fmt::Display for CallCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{:#x} {}", self.0, name),
            None => write!(f, "{:#x}", self.0),
        }
    }
}

impl core::fmt::Debug for CallCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CallCode({})", self)
    }
}

/// Control word layout (HV_HYPERCALL_INPUT in `hvgdk_mini.h`).
pub mod control_bits {
    /// Bits 15:0: call code.
    pub const CODE_MASK: u64 = 0xffff;
    /// Bit 16: register ("fast") calling convention.
    pub const FAST: u64 = 1 << 16;
    /// Bits 26:17: variable header size in 8-byte units.
    pub const VARHEAD_SHIFT: u32 = 17;
    /// Mask of the variable header size field (10 bits).
    pub const VARHEAD_MASK: u64 = 0x3ff << VARHEAD_SHIFT;
    /// Bits 31:27: reserved (bit 31 is "nested", which hvhost does not offer).
    pub const RSVD0_MASK: u64 = 0x1f << 27;
    /// Bits 43:32: rep count.
    pub const REP_COUNT_SHIFT: u32 = 32;
    /// Mask of the rep count field (12 bits).
    pub const REP_COUNT_MASK: u64 = 0xfff << REP_COUNT_SHIFT;
    /// Bits 47:44: reserved.
    pub const RSVD1_MASK: u64 = 0xf << 44;
    /// Bits 59:48: rep start index.
    pub const REP_START_SHIFT: u32 = 48;
    /// Mask of the rep start field (12 bits).
    pub const REP_START_MASK: u64 = 0xfff << REP_START_SHIFT;
    /// Bits 63:60: reserved.
    pub const RSVD2_MASK: u64 = 0xf << 60;
    /// Every reserved bit.
    pub const RSVD_MASK: u64 = RSVD0_MASK | RSVD1_MASK | RSVD2_MASK;
}

/// Largest rep count or rep start the control word can carry.
pub const MAX_REP: u16 = 0xfff;
/// Largest variable header size (8-byte units).
pub const MAX_VAR_HEADER: u16 = 0x3ff;

/// A hypercall control word (RCX), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// The call.
    pub code: CallCode,
    /// Register calling convention: RDX/R8 hold input, not GPAs.
    pub fast: bool,
    /// Variable header size, in 8-byte units.
    pub var_header: u16,
    /// Rep count (0 for simple calls).
    pub rep_count: u16,
    /// Rep start index: where a restarted rep call resumes.
    pub rep_start: u16,
}

impl Control {
    /// A slow, simple call to `code`.
    pub const fn new(code: CallCode) -> Self {
        Self {
            code,
            fast: false,
            var_header: 0,
            rep_count: 0,
            rep_start: 0,
        }
    }

    /// The same call with the register calling convention.
    #[must_use]
    pub const fn with_fast(mut self) -> Self {
        self.fast = true;
        self
    }

    /// The same call with a variable header of `qwords` 8-byte units
    /// (truncated to the field's 10 bits).
    #[must_use]
    pub const fn with_var_header(mut self, qwords: u16) -> Self {
        self.var_header = qwords & MAX_VAR_HEADER;
        self
    }

    /// The same call as a rep call of `count` elements starting at `start`
    /// (each truncated to the field's 12 bits).
    #[must_use]
    pub const fn with_reps(mut self, count: u16, start: u16) -> Self {
        self.rep_count = count & MAX_REP;
        self.rep_start = start & MAX_REP;
        self
    }

    /// The raw control word for RCX.
    pub const fn to_bits(self) -> u64 {
        use control_bits::*;
        self.code.0 as u64
            | if self.fast { FAST } else { 0 }
            | ((self.var_header & MAX_VAR_HEADER) as u64) << VARHEAD_SHIFT
            | ((self.rep_count & MAX_REP) as u64) << REP_COUNT_SHIFT
            | ((self.rep_start & MAX_REP) as u64) << REP_START_SHIFT
    }

    /// Splits a raw word into fields without validating anything.
    pub const fn from_bits_unchecked(raw: u64) -> Self {
        use control_bits::*;
        Self {
            code: CallCode((raw & CODE_MASK) as u16),
            fast: raw & FAST != 0,
            var_header: ((raw & VARHEAD_MASK) >> VARHEAD_SHIFT) as u16,
            rep_count: ((raw & REP_COUNT_MASK) >> REP_COUNT_SHIFT) as u16,
            rep_start: ((raw & REP_START_MASK) >> REP_START_SHIFT) as u16,
        }
    }

    /// Decodes and validates a control word as the host must:
    /// 1. reserved bits set → INVALID_HYPERCALL_INPUT (checked first, as KVM does);
    /// 2. a code this contract does not know → INVALID_HYPERCALL_CODE;
    /// 3. a simple call with a rep count or rep start, a rep call whose rep
    ///    start is not below its rep count → INVALID_HYPERCALL_INPUT.
    ///
    /// Whether the host implements a known code, and what the variable
    /// header may be for it, is the host's decision after this.
    pub fn decode(raw: u64) -> Result<Self, HvStatus> {
        if raw & control_bits::RSVD_MASK != 0 {
            return Err(HvStatus::INVALID_HYPERCALL_INPUT);
        }
        let control = Self::from_bits_unchecked(raw);
        match control.code.kind() {
            None => Err(HvStatus::INVALID_HYPERCALL_CODE),
            Some(CallKind::Simple) if control.rep_count != 0 || control.rep_start != 0 => {
                Err(HvStatus::INVALID_HYPERCALL_INPUT)
            }
            Some(CallKind::Rep) if control.rep_start >= control.rep_count => {
                Err(HvStatus::INVALID_HYPERCALL_INPUT)
            }
            Some(_) => Ok(control),
        }
    }
}

/// The result word a hypercall returns in RAX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallResult {
    /// Bits 15:0.
    pub status: HvStatus,
    /// Bits 43:32: reps completed (a rep call may stop early).
    pub reps_completed: u16,
}

impl CallResult {
    /// A result with no reps completed.
    pub const fn status(status: HvStatus) -> Self {
        Self {
            status,
            reps_completed: 0,
        }
    }

    /// The raw RAX value.
    pub const fn to_bits(self) -> u64 {
        self.status.0 as u64
            | ((self.reps_completed & MAX_REP) as u64) << control_bits::REP_COUNT_SHIFT
    }

    /// Decodes a raw RAX value (bits outside the two fields are ignored).
    pub const fn from_bits(raw: u64) -> Self {
        Self {
            status: HvStatus(raw as u16),
            reps_completed: ((raw & control_bits::REP_COUNT_MASK) >> control_bits::REP_COUNT_SHIFT)
                as u16,
        }
    }
}

/// Hypercall input and output pages are in 4 KiB guest pages.
pub const HV_PAGE_SIZE: u64 = 4096;

/// Checks a slow call's parameter GPA as the TLFS requires: 8-byte aligned
/// and `len` bytes not crossing a page (HV_STATUS_INVALID_ALIGNMENT).
/// Whether the GPA is in guest RAM is the host's check (INVALID_PARAMETER).
pub const fn check_param_gpa(gpa: u64, len: u64) -> Result<(), HvStatus> {
    let offset = gpa % HV_PAGE_SIZE;
    if gpa % 8 != 0 || len > HV_PAGE_SIZE || offset + len > HV_PAGE_SIZE {
        Err(HvStatus::INVALID_ALIGNMENT)
    } else {
        Ok(())
    }
}

/// Bytes of payload one SynIC message carries (HV_MESSAGE_PAYLOAD_BYTE_COUNT).
pub const HV_MESSAGE_PAYLOAD_BYTE_COUNT: usize = 240;
/// The same in 8-byte units.
pub const HV_MESSAGE_PAYLOAD_QWORD_COUNT: usize = 30;

/// Connection IDs are 24 bits (union hv_connection_id); bits 31:24 are
/// reserved.
pub const CONNECTION_ID_MASK: u32 = 0x00ff_ffff;

/// Input of HvPostMessage (`struct hv_input_post_message`,
/// `drivers/hv/hyperv_vmbus.h`): one page-contained, 8-byte-aligned block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PostMessageInput {
    /// Target connection (24 bits).
    pub connection_id: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Message type, chosen by the sender; must be non-zero and below
    /// 0x80000000 (those types belong to the hypervisor).
    pub message_type: u32,
    /// Bytes of `payload` that are valid, at most 240.
    pub payload_size: u32,
    /// The message body.
    pub payload: [u8; HV_MESSAGE_PAYLOAD_BYTE_COUNT],
}

const _: () = {
    assert!(core::mem::size_of::<PostMessageInput>() == 256);
    assert!(core::mem::offset_of!(PostMessageInput, message_type) == 8);
    assert!(core::mem::offset_of!(PostMessageInput, payload) == 16);
};

impl PostMessageInput {
    /// A message for `connection_id` of `message_type` carrying `payload`
    /// (at most 240 bytes; `None` if longer).
    pub fn new(connection_id: u32, message_type: u32, payload: &[u8]) -> Option<Self> {
        let mut input = Self {
            connection_id,
            reserved: 0,
            message_type,
            payload_size: u32::try_from(payload.len()).ok()?,
            payload: [0; HV_MESSAGE_PAYLOAD_BYTE_COUNT],
        };
        input
            .payload
            .get_mut(..payload.len())?
            .copy_from_slice(payload);
        Some(input)
    }

    /// The host's validation of a posted message, per the TLFS:
    /// reserved bits → INVALID_HYPERCALL_INPUT; payload over 240 bytes or a
    /// message type that is zero or has bit 31 set → INVALID_PARAMETER.
    /// (QEMU answers INVALID_HYPERCALL_INPUT for an oversized payload; the
    /// TLFS lists INVALID_PARAMETER, which we follow.)
    pub const fn validate(&self) -> Result<(), HvStatus> {
        if self.reserved != 0 || self.connection_id & !CONNECTION_ID_MASK != 0 {
            return Err(HvStatus::INVALID_HYPERCALL_INPUT);
        }
        if self.payload_size as usize > HV_MESSAGE_PAYLOAD_BYTE_COUNT
            || self.message_type == 0
            || self.message_type & 0x8000_0000 != 0
        {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        Ok(())
    }

    /// The valid part of the payload (clamped to 240 bytes).
    pub fn body(&self) -> &[u8] {
        let len = (self.payload_size as usize).min(HV_MESSAGE_PAYLOAD_BYTE_COUNT);
        &self.payload[..len]
    }
}

/// Input of HvSignalEvent (TLFS HV_INPUT_SIGNAL_EVENT): 8 bytes in memory,
/// or RDX of a fast call (see [`SignalEventInput::to_fast`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SignalEventInput {
    /// Target event connection (24 bits).
    pub connection_id: u32,
    /// Which flag of the target port to set (relative to the port's base).
    pub flag_number: u16,
    /// Reserved, zero.
    pub rsvd: u16,
}

const _: () = assert!(core::mem::size_of::<SignalEventInput>() == 8);

impl SignalEventInput {
    /// The fast-call RDX value: `connection_id | flag_number << 32`.
    pub const fn to_fast(self) -> u64 {
        self.connection_id as u64 | (self.flag_number as u64) << 32 | (self.rsvd as u64) << 48
    }

    /// Splits a fast-call RDX value.
    pub const fn from_fast(rdx: u64) -> Self {
        Self {
            connection_id: rdx as u32,
            flag_number: (rdx >> 32) as u16,
            rsvd: (rdx >> 48) as u16,
        }
    }

    /// The host's validation: reserved bits (the top 8 of the connection ID
    /// and `rsvd`) → INVALID_HYPERCALL_INPUT.
    pub const fn validate(&self) -> Result<(), HvStatus> {
        if self.rsvd != 0 || self.connection_id & !CONNECTION_ID_MASK != 0 {
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn statuses_match_hvgdk_mini_h() {
        assert_eq!(HvStatus::INVALID_HYPERCALL_CODE.0, 0x2);
        assert_eq!(HvStatus::INVALID_HYPERCALL_INPUT.0, 0x3);
        assert_eq!(HvStatus::INVALID_ALIGNMENT.0, 0x4);
        assert_eq!(HvStatus::INVALID_PARAMETER.0, 0x5);
        assert_eq!(HvStatus::INVALID_CONNECTION_ID.0, 0x12);
        assert_eq!(HvStatus::INSUFFICIENT_BUFFERS.0, 0x13);
        assert_eq!(HvStatus::VTL_ALREADY_ENABLED.0, 0x86);
        assert_eq!(HvStatus::NAMED.len(), 30);
        assert_eq!(HvStatus(0x12).to_string(), "0x12 INVALID_CONNECTION_ID");
        assert_eq!(HvStatus(0x1234).to_string(), "0x1234");
    }

    #[test]
    fn codes_match_hvgdk_mini_h() {
        assert_eq!(CallCode::NOTIFY_LONG_SPIN_WAIT.0, 0x8);
        assert_eq!(CallCode::POST_MESSAGE.0, 0x5c);
        assert_eq!(CallCode::SIGNAL_EVENT.0, 0x5d);
        assert_eq!(CallCode::POST_MESSAGE.to_string(), "0x5c POST_MESSAGE");
    }

    #[test]
    fn control_word_layout() {
        // HV_HYPERCALL_FAST_BIT, VARHEAD 26:17, REP_COMP 43:32, REP_START 59:48.
        let c = Control::new(CallCode(0x3))
            .with_fast()
            .with_var_header(2)
            .with_reps(5, 1);
        assert_eq!(c.to_bits(), 0x3 | 1 << 16 | 2 << 17 | 5 << 32 | 1 << 48);
        assert_eq!(Control::decode(c.to_bits()), Ok(c));
        assert_eq!(control_bits::RSVD_MASK, 0xf000_f000_f800_0000);
    }

    #[test]
    fn decode_errors() {
        let spin = Control::new(CallCode::NOTIFY_LONG_SPIN_WAIT)
            .with_fast()
            .to_bits();
        assert_eq!(
            Control::decode(spin | 1 << 31),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
        assert_eq!(
            Control::decode(spin | 1 << 44),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
        assert_eq!(
            Control::decode(spin | 1 << 63),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
        assert_eq!(
            Control::decode(0x7fff),
            Err(HvStatus::INVALID_HYPERCALL_CODE)
        );
        assert_eq!(
            Control::decode(spin | 1 << 32),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
        let list = Control::new(CallCode::FLUSH_VIRTUAL_ADDRESS_LIST);
        assert_eq!(
            Control::decode(list.with_reps(2, 2).to_bits()),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
        assert!(Control::decode(list.with_reps(2, 1).to_bits()).is_ok());
    }

    #[test]
    fn result_word() {
        let r = CallResult {
            status: HvStatus::INSUFFICIENT_BUFFERS,
            reps_completed: 7,
        };
        assert_eq!(r.to_bits(), 0x13 | 7 << 32);
        assert_eq!(CallResult::from_bits(r.to_bits()), r);
    }

    #[test]
    fn param_gpa_alignment() {
        assert_eq!(check_param_gpa(0x1000, 256), Ok(()));
        assert_eq!(check_param_gpa(0x1f00, 256), Ok(()));
        assert_eq!(
            check_param_gpa(0x1f08, 256),
            Err(HvStatus::INVALID_ALIGNMENT)
        );
        assert_eq!(check_param_gpa(0x1004, 8), Err(HvStatus::INVALID_ALIGNMENT));
        assert_eq!(check_param_gpa(!7, 8), Ok(()));
    }

    #[test]
    fn post_message_validation() {
        let ok = PostMessageInput::new(1, 1, b"hello").expect("fits");
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.body(), b"hello");
        assert!(PostMessageInput::new(1, 1, &[0; 241]).is_none());
        assert_eq!(
            PostMessageInput {
                payload_size: 241,
                ..ok
            }
            .validate(),
            Err(HvStatus::INVALID_PARAMETER)
        );
        assert_eq!(
            PostMessageInput {
                message_type: 0x8000_0010,
                ..ok
            }
            .validate(),
            Err(HvStatus::INVALID_PARAMETER)
        );
        assert_eq!(
            PostMessageInput {
                message_type: 0,
                ..ok
            }
            .validate(),
            Err(HvStatus::INVALID_PARAMETER)
        );
        assert_eq!(
            PostMessageInput { reserved: 1, ..ok }.validate(),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
        assert_eq!(
            PostMessageInput {
                connection_id: 1 << 24,
                ..ok
            }
            .validate(),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
    }

    #[test]
    fn signal_event_fast_packing() {
        let s = SignalEventInput {
            connection_id: 0x2a,
            flag_number: 3,
            rsvd: 0,
        };
        assert_eq!(s.to_fast(), 0x3_0000_002a);
        assert_eq!(SignalEventInput::from_fast(s.to_fast()), s);
        assert_eq!(
            SignalEventInput::from_fast(1 << 48).validate(),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
        assert_eq!(
            SignalEventInput::from_fast(1 << 24).validate(),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
    }

    proptest! {
        /// Decode is total and exact: it accepts a word iff no reserved bit
        /// is set, the code is known and the rep fields fit its kind; an
        /// accepted word re-encodes to itself.
        #[test]
        fn decode_is_total_and_round_trips(raw in any::<u64>(), code_pick in 0usize..8) {
            let raw = if code_pick < CallCode::KNOWN.len() {
                raw & !control_bits::CODE_MASK | u64::from(CallCode::KNOWN[code_pick].0 .0)
            } else {
                raw
            };
            let fields = Control::from_bits_unchecked(raw);
            match Control::decode(raw) {
                Ok(c) => {
                    prop_assert_eq!(c.to_bits(), raw);
                    prop_assert_eq!(raw & control_bits::RSVD_MASK, 0);
                    match c.code.kind() {
                        Some(CallKind::Simple) => prop_assert!(c.rep_count == 0 && c.rep_start == 0),
                        Some(CallKind::Rep) => prop_assert!(c.rep_start < c.rep_count),
                        None => prop_assert!(false, "unknown code accepted"),
                    }
                }
                Err(HvStatus::INVALID_HYPERCALL_CODE) => {
                    prop_assert_eq!(raw & control_bits::RSVD_MASK, 0);
                    prop_assert!(fields.code.kind().is_none());
                }
                Err(HvStatus::INVALID_HYPERCALL_INPUT) => {}
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }

        /// Every field the guest builds survives the round trip.
        #[test]
        fn build_round_trips(code in any::<u16>(), fast in any::<bool>(), vh in 0u16..=MAX_VAR_HEADER,
                             count in 0u16..=MAX_REP, start in 0u16..=MAX_REP) {
            let mut c = Control::new(CallCode(code)).with_var_header(vh).with_reps(count, start);
            if fast { c = c.with_fast(); }
            prop_assert_eq!(Control::from_bits_unchecked(c.to_bits()), c);
            prop_assert_eq!(c.to_bits() & control_bits::RSVD_MASK, 0);
        }

        /// Result words round trip for every status and rep count.
        #[test]
        fn result_round_trips(status in any::<u16>(), reps in 0u16..=MAX_REP) {
            let r = CallResult { status: HvStatus(status), reps_completed: reps };
            prop_assert_eq!(CallResult::from_bits(r.to_bits()), r);
        }

        /// Fast SignalEvent packing round trips any RDX.
        #[test]
        fn signal_event_round_trips(rdx in any::<u64>()) {
            prop_assert_eq!(SignalEventInput::from_fast(rdx).to_fast(), rdx);
        }
    }
}
