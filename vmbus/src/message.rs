// SPDX-License-Identifier: GPL-2.0

//! VMBus channel messages: the message type numbers, the common header and
//! the fixed part of every message a 4.0..6.0 guest and host exchange over
//! the SynIC message connection (`include/linux/hyperv.h`).
//!
//! Each struct here is the *body*: what follows the 8-byte [`MessageHeader`]
//! on the wire. The structs are `repr(C)` without padding, so their layout is
//! the kernel's `__packed` layout; every one carries an assertion that header
//! plus body is the size of the kernel's struct. Values from the other side
//! are data: no field is trusted until [`super::parse`] has checked it.
//!
//! All integers are little-endian on the wire; like the kernel, this code
//! assumes a little-endian CPU (x86_64, arm64).

use core::mem::size_of;

// Traits by path or as `_`: with zerocopy's `derive` feature on (feature
// unification on the host) their names would clash with the derives.
use zerocopy::IntoBytes as _;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::guid::Guid;

/// Bytes of payload a SynIC message carries (`HV_MESSAGE_PAYLOAD_BYTE_COUNT`,
/// also Linux's `MAX_SIZE_CHANNEL_MESSAGE`): the largest channel message.
pub const MAX_MESSAGE_SIZE: usize = 240;

/// The message connection for everything before 5.0, and the SynIC message
/// type VMBus messages are posted with (`VMBUS_MESSAGE_CONNECTION_ID`).
pub const MESSAGE_CONNECTION_ID: u32 = 1;
/// The message connection INITIATE_CONTACT goes to from 5.0 on
/// (`VMBUS_MESSAGE_CONNECTION_ID_4`).
pub const MESSAGE_CONNECTION_ID_4: u32 = 4;
/// Where the guest-to-host bitmap starts in the guest's interrupt page
/// (the page INITIATE_CONTACT names below 5.0): a channel without a
/// dedicated interrupt sets bit `relid` there before signalling
/// (`vmbus_send_interrupt`); the first half is host-to-guest.
pub const INTERRUPT_PAGE_SEND_OFFSET: usize = 2048;
/// The SINT the host posts VMBus messages to (`VMBUS_MESSAGE_SINT`).
pub const MESSAGE_SINT: u8 = 2;

/// A channel message type (`enum vmbus_channel_message_type`). A value not
/// listed here is still a value: the parser reports it, never trusts it.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
)]
#[repr(transparent)]
pub struct MessageType(pub u32);

impl MessageType {
    /// Never sent; a zeroed message.
    pub const INVALID: Self = Self(0);
    /// Host to guest: a channel (device) is offered.
    pub const OFFERCHANNEL: Self = Self(1);
    /// Host to guest: an offer is withdrawn.
    pub const RESCIND_CHANNELOFFER: Self = Self(2);
    /// Guest to host: send me every offer.
    pub const REQUESTOFFERS: Self = Self(3);
    /// Host to guest: the boot-time offers are all sent.
    pub const ALLOFFERS_DELIVERED: Self = Self(4);
    /// Guest to host: open a channel on a ring GPADL.
    pub const OPENCHANNEL: Self = Self(5);
    /// Host to guest: the outcome of OPENCHANNEL.
    pub const OPENCHANNEL_RESULT: Self = Self(6);
    /// Guest to host: close a channel.
    pub const CLOSECHANNEL: Self = Self(7);
    /// Guest to host: first message of a GPADL (guest page list).
    pub const GPADL_HEADER: Self = Self(8);
    /// Guest to host: a continuation of a GPADL's page list.
    pub const GPADL_BODY: Self = Self(9);
    /// Host to guest: a GPADL is established (or failed).
    pub const GPADL_CREATED: Self = Self(10);
    /// Guest to host: tear a GPADL down.
    pub const GPADL_TEARDOWN: Self = Self(11);
    /// Host to guest: a GPADL is torn down.
    pub const GPADL_TORNDOWN: Self = Self(12);
    /// Guest to host: the guest is done with a rescinded relid.
    pub const RELID_RELEASED: Self = Self(13);
    /// Guest to host: propose a protocol version and the monitor pages.
    pub const INITIATE_CONTACT: Self = Self(14);
    /// Host to guest: the answer to INITIATE_CONTACT.
    pub const VERSION_RESPONSE: Self = Self(15);
    /// Guest to host: the guest is unloading VMBus.
    pub const UNLOAD: Self = Self(16);
    /// Host to guest: the answer to UNLOAD.
    pub const UNLOAD_RESPONSE: Self = Self(17);
    /// Reserved in Linux (`CHANNELMSG_18`).
    pub const MSG_18: Self = Self(18);
    /// Reserved in Linux (`CHANNELMSG_19`).
    pub const MSG_19: Self = Self(19);
    /// Reserved in Linux (`CHANNELMSG_20`).
    pub const MSG_20: Self = Self(20);
    /// Guest to host: a Hyper-V socket connect (4.0 and later).
    pub const TL_CONNECT_REQUEST: Self = Self(21);
    /// Guest to host: move a channel's interrupts to another VP (4.1 and later).
    pub const MODIFYCHANNEL: Self = Self(22);
    /// Host to guest: the outcome of TL_CONNECT_REQUEST.
    pub const TL_CONNECT_RESULT: Self = Self(23);
    /// Host to guest: the outcome of MODIFYCHANNEL (5.3 and later).
    pub const MODIFYCHANNEL_RESPONSE: Self = Self(24);
    /// One past the last type Linux knows (`CHANNELMSG_COUNT`).
    pub const COUNT: u32 = 25;

    /// Every named type with its Linux name (without `CHANNELMSG_`).
    pub const NAMED: &'static [(Self, &'static str)] = &[
        (Self::INVALID, "INVALID"),
        (Self::OFFERCHANNEL, "OFFERCHANNEL"),
        (Self::RESCIND_CHANNELOFFER, "RESCIND_CHANNELOFFER"),
        (Self::REQUESTOFFERS, "REQUESTOFFERS"),
        (Self::ALLOFFERS_DELIVERED, "ALLOFFERS_DELIVERED"),
        (Self::OPENCHANNEL, "OPENCHANNEL"),
        (Self::OPENCHANNEL_RESULT, "OPENCHANNEL_RESULT"),
        (Self::CLOSECHANNEL, "CLOSECHANNEL"),
        (Self::GPADL_HEADER, "GPADL_HEADER"),
        (Self::GPADL_BODY, "GPADL_BODY"),
        (Self::GPADL_CREATED, "GPADL_CREATED"),
        (Self::GPADL_TEARDOWN, "GPADL_TEARDOWN"),
        (Self::GPADL_TORNDOWN, "GPADL_TORNDOWN"),
        (Self::RELID_RELEASED, "RELID_RELEASED"),
        (Self::INITIATE_CONTACT, "INITIATE_CONTACT"),
        (Self::VERSION_RESPONSE, "VERSION_RESPONSE"),
        (Self::UNLOAD, "UNLOAD"),
        (Self::UNLOAD_RESPONSE, "UNLOAD_RESPONSE"),
        (Self::MSG_18, "18"),
        (Self::MSG_19, "19"),
        (Self::MSG_20, "20"),
        (Self::TL_CONNECT_REQUEST, "TL_CONNECT_REQUEST"),
        (Self::MODIFYCHANNEL, "MODIFYCHANNEL"),
        (Self::TL_CONNECT_RESULT, "TL_CONNECT_RESULT"),
        (Self::MODIFYCHANNEL_RESPONSE, "MODIFYCHANNEL_RESPONSE"),
    ];

    /// The Linux name, if the value is one.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMED
            .iter()
            .find(|(t, _)| *t == self)
            .map(|(_, n)| *n)
    }

    /// The least number of bytes (header included) a message of this type
    /// must have: the size of its fixed layout. For the types Linux receives
    /// this is exactly its `channel_message_table` minimum; for the types a
    /// host receives it is the size of the struct the guest sends. `None` for
    /// types that have no layout.
    pub const fn min_len(self) -> Option<usize> {
        let body = match self {
            Self::OFFERCHANNEL => size_of::<OfferChannel>(),
            Self::RESCIND_CHANNELOFFER => size_of::<RescindChannelOffer>(),
            Self::REQUESTOFFERS
            | Self::ALLOFFERS_DELIVERED
            | Self::UNLOAD
            | Self::UNLOAD_RESPONSE => 0,
            Self::OPENCHANNEL => size_of::<OpenChannel>(),
            Self::OPENCHANNEL_RESULT => size_of::<OpenResult>(),
            Self::CLOSECHANNEL => size_of::<CloseChannel>(),
            Self::GPADL_HEADER => size_of::<GpadlHeader>(),
            Self::GPADL_BODY => size_of::<GpadlBody>(),
            Self::GPADL_CREATED => size_of::<GpadlCreated>(),
            Self::GPADL_TEARDOWN => size_of::<GpadlTeardown>(),
            Self::GPADL_TORNDOWN => size_of::<GpadlTorndown>(),
            Self::RELID_RELEASED => size_of::<RelidReleased>(),
            Self::INITIATE_CONTACT => size_of::<InitiateContact>(),
            Self::VERSION_RESPONSE => size_of::<VersionResponse>(),
            Self::TL_CONNECT_REQUEST => size_of::<TlConnectRequest>(),
            Self::MODIFYCHANNEL => size_of::<ModifyChannel>(),
            Self::TL_CONNECT_RESULT => size_of::<TlConnectResult>(),
            Self::MODIFYCHANNEL_RESPONSE => size_of::<ModifyChannelResponse>(),
            _ => return None,
        };
        Some(HEADER_SIZE + body)
    }
}

impl core::fmt::Display for MessageType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{}({})", n, self.0),
            None => write!(f, "unknown({})", self.0),
        }
    }
}

impl core::fmt::Debug for MessageType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MessageType({})", self)
    }
}

/// The header every channel message starts with
/// (`struct vmbus_channel_message_header`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MessageHeader {
    /// What follows.
    pub msgtype: MessageType,
    /// Zero.
    pub padding: u32,
}

/// Size of [`MessageHeader`].
pub const HEADER_SIZE: usize = size_of::<MessageHeader>();
const _: () = assert!(HEADER_SIZE == 8);

/// A fixed-layout channel message body with its type number; the parser and
/// [`encode`] use it. Variable parts (GPADL ranges and PFNs) follow the body.
pub trait ChannelMessage:
    zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable + zerocopy::KnownLayout + Sized
{
    /// The type in the header.
    const TYPE: MessageType;
    /// Header plus body: the kernel's `sizeof` of the message struct.
    const LEN: usize = HEADER_SIZE + size_of::<Self>();
}

/// Why a message could not be built into a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer (or the message limit) has room for `room` bytes, the
    /// message needs `need`.
    NoRoom {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        room: usize,
    },
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRoom { need, room } => {
                write!(f, "message needs {} bytes, room for {}", need, room)
            }
        }
    }
}

/// Writes header and body of `msg` to the start of `buf`, followed by
/// `tail` (the variable part, if any); returns the message length.
pub fn encode_with_tail<M: ChannelMessage>(
    msg: &M,
    tail: &[u8],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let len = M::LEN + tail.len();
    let room = buf.len().min(MAX_MESSAGE_SIZE);
    if len > room {
        return Err(EncodeError::NoRoom { need: len, room });
    }
    let header = MessageHeader {
        msgtype: M::TYPE,
        padding: 0,
    };
    buf[..HEADER_SIZE].copy_from_slice(header.as_bytes());
    buf[HEADER_SIZE..M::LEN].copy_from_slice(msg.as_bytes());
    buf[M::LEN..len].copy_from_slice(tail);
    Ok(len)
}

/// Writes `msg` (header and body) to the start of `buf`; returns its length.
pub fn encode<M: ChannelMessage>(msg: &M, buf: &mut [u8]) -> Result<usize, EncodeError> {
    encode_with_tail(msg, &[], buf)
}

/// Writes a message that is a header alone (REQUESTOFFERS,
/// ALLOFFERS_DELIVERED, UNLOAD, UNLOAD_RESPONSE); returns its length.
pub fn encode_empty(msgtype: MessageType, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let room = buf.len().min(MAX_MESSAGE_SIZE);
    if room < HEADER_SIZE {
        return Err(EncodeError::NoRoom {
            need: HEADER_SIZE,
            room,
        });
    }
    buf[..HEADER_SIZE].copy_from_slice(
        MessageHeader {
            msgtype,
            padding: 0,
        }
        .as_bytes(),
    );
    Ok(HEADER_SIZE)
}

macro_rules! channel_message {
    ($ty:ident, $msgtype:ident, $kernel_size:literal) => {
        impl ChannelMessage for $ty {
            const TYPE: MessageType = MessageType::$msgtype;
        }
        const _: () = assert!(HEADER_SIZE + size_of::<$ty>() == $kernel_size);
    };
}

/// Bytes of user-defined data in an offer or an open request
/// (`MAX_USER_DEFINED_BYTES`).
pub const MAX_USER_DEFINED_BYTES: usize = 120;

/// `chn_flags` of an offer (`VMBUS_CHANNEL_*` server flags).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct OfferFlags(pub u16);

impl OfferFlags {
    /// `VMBUS_CHANNEL_ENUMERATE_DEVICE_INTERFACE`.
    pub const ENUMERATE_DEVICE_INTERFACE: Self = Self(0x0001);
    /// The ring must be in encrypted memory (paravisor offers).
    pub const CONFIDENTIAL_RING_BUFFER: Self = Self(0x0002);
    /// GPA-direct ranges and extra GPADLs must be encrypted (paravisor offers).
    pub const CONFIDENTIAL_EXTERNAL_MEMORY: Self = Self(0x0004);
    /// A pipe offer: the user-defined area starts with a pipe mode.
    pub const NAMED_PIPE_MODE: Self = Self(0x0010);
    /// `VMBUS_CHANNEL_LOOPBACK_OFFER`.
    pub const LOOPBACK_OFFER: Self = Self(0x0100);
    /// `VMBUS_CHANNEL_PARENT_OFFER`.
    pub const PARENT_OFFER: Self = Self(0x0200);
    /// `VMBUS_CHANNEL_REQUEST_MONITORED_NOTIFICATION`.
    pub const REQUEST_MONITORED_NOTIFICATION: Self = Self(0x0400);
    /// A Hyper-V socket offer (`VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER`).
    pub const TLNPI_PROVIDER_OFFER: Self = Self(0x2000);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The offer proper (`struct vmbus_channel_offer`), 176 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Offer {
    /// Device class (`if_type`), e.g. [`super::guid::HEARTBEAT`].
    pub if_type: Guid,
    /// This device instance (`if_instance`).
    pub if_instance: Guid,
    /// `reserved1` and `reserved2` (two u64), unused.
    pub reserved: [u8; 16],
    /// Server flags.
    pub chn_flags: OfferFlags,
    /// MMIO space the device wants, in MiB.
    pub mmio_megabytes: u16,
    /// The user-defined union: raw bytes, or for pipes a u32 pipe mode and
    /// 116 bytes.
    pub user_def: [u8; MAX_USER_DEFINED_BYTES],
    /// Zero for a primary channel, else the sub-channel's index.
    pub sub_channel_index: u16,
    /// Reserved.
    pub reserved3: u16,
}

const _: () = assert!(size_of::<Offer>() == 176);

impl Offer {
    /// For pipe offers ([`OfferFlags::NAMED_PIPE_MODE`]): the pipe mode at
    /// the start of the user-defined area (`VMBUS_PIPE_TYPE_*`).
    pub const fn pipe_mode(&self) -> u32 {
        let u = &self.user_def;
        u32::from_le_bytes([u[0], u[1], u[2], u[3]])
    }
}

/// OFFERCHANNEL (`struct vmbus_channel_offer_channel`), 196 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OfferChannel {
    /// The offer.
    pub offer: Offer,
    /// The relid the guest names this channel by from now on.
    pub child_relid: u32,
    /// Monitor page bit for this channel, if [`Self::monitor_allocated`].
    pub monitorid: u8,
    /// Bit 0: `monitor_allocated`; bits 1..7 reserved.
    pub monitor_flags: u8,
    /// Bit 0: `is_dedicated_interrupt`; bits 1..15 reserved.
    pub interrupt_flags: u16,
    /// The connection the guest signals this channel's events on.
    pub connection_id: u32,
}
channel_message!(OfferChannel, OFFERCHANNEL, 196);

impl OfferChannel {
    /// Whether the channel uses the monitor pages (`monitor_allocated`).
    pub const fn monitor_allocated(&self) -> bool {
        self.monitor_flags & 1 != 0
    }

    /// Whether the guest must signal without setting the channel's bit in
    /// the interrupt page (`is_dedicated_interrupt`).
    pub const fn is_dedicated_interrupt(&self) -> bool {
        self.interrupt_flags & 1 != 0
    }
}

/// RESCIND_CHANNELOFFER (`struct vmbus_channel_rescind_offer`), 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RescindChannelOffer {
    /// The channel withdrawn.
    pub child_relid: u32,
}
channel_message!(RescindChannelOffer, RESCIND_CHANNELOFFER, 12);

/// OPENCHANNEL (`struct vmbus_channel_open_channel`), 148 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OpenChannel {
    /// The channel to open.
    pub child_relid: u32,
    /// Echoed in OPENCHANNEL_RESULT to match the answer.
    pub openid: u32,
    /// The GPADL holding both rings (guest-to-host first).
    pub ringbuffer_gpadlhandle: u32,
    /// The VP host-to-guest interrupts go to.
    pub target_vp: u32,
    /// Where the host-to-guest ring starts in the GPADL, in pages.
    pub downstream_ringbuffer_pageoffset: u32,
    /// Passed to the device.
    pub userdata: [u8; MAX_USER_DEFINED_BYTES],
}
channel_message!(OpenChannel, OPENCHANNEL, 148);

/// OPENCHANNEL_RESULT (`struct vmbus_channel_open_result`), 20 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OpenResult {
    /// The channel.
    pub child_relid: u32,
    /// The request's `openid`.
    pub openid: u32,
    /// Zero on success, else an NTSTATUS-style failure.
    pub status: u32,
}
channel_message!(OpenResult, OPENCHANNEL_RESULT, 20);

/// CLOSECHANNEL (`struct vmbus_channel_close_channel`), 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CloseChannel {
    /// The channel to close.
    pub child_relid: u32,
}
channel_message!(CloseChannel, CLOSECHANNEL, 12);

/// The fixed part of GPADL_HEADER (`struct vmbus_channel_gpadl_header`),
/// 20 bytes; the range data ([`GpaRange`] headers each followed by its
/// PFNs, `range_buflen` bytes in all) follows, continued in GPADL_BODY
/// messages when it does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GpadlHeader {
    /// The channel the GPADL belongs to.
    pub child_relid: u32,
    /// The GPADL handle the guest chose.
    pub gpadl: u32,
    /// Bytes of range data in all messages together.
    pub range_buflen: u16,
    /// Number of ranges.
    pub rangecount: u16,
}
channel_message!(GpadlHeader, GPADL_HEADER, 20);

/// The head of one range in a GPADL or a GPA-direct packet
/// (`struct gpa_range` without its flexible `pfn_array`): the range spans
/// the pages from `byte_offset` in the first page for `byte_count` bytes,
/// and that many page numbers (u64) follow.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GpaRange {
    /// Length of the range in bytes.
    pub byte_count: u32,
    /// Offset of the range in its first page.
    pub byte_offset: u32,
}
const _: () = assert!(size_of::<GpaRange>() == 8);

/// Hyper-V's page size for PFNs in GPADLs and GPA ranges
/// (`HV_HYP_PAGE_SIZE`).
pub const HV_PAGE_SIZE: u64 = 4096;

impl GpaRange {
    /// Number of pages the range spans, `None` if the offset is not inside
    /// a page.
    pub const fn page_count(&self) -> Option<u64> {
        if self.byte_offset as u64 >= HV_PAGE_SIZE {
            return None;
        }
        Some((self.byte_offset as u64 + self.byte_count as u64).div_ceil(HV_PAGE_SIZE))
    }
}

/// The fixed part of GPADL_BODY (`struct vmbus_channel_gpadl_body`),
/// 16 bytes; PFNs (u64) follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GpadlBody {
    /// Sequence number; Linux leaves it zero (see [`super::gpadl`]).
    pub msgnumber: u32,
    /// The GPADL continued.
    pub gpadl: u32,
}
channel_message!(GpadlBody, GPADL_BODY, 16);

/// GPADL_CREATED (`struct vmbus_channel_gpadl_created`), 20 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GpadlCreated {
    /// The channel.
    pub child_relid: u32,
    /// The GPADL.
    pub gpadl: u32,
    /// Zero on success.
    pub creation_status: u32,
}
channel_message!(GpadlCreated, GPADL_CREATED, 20);

/// GPADL_TEARDOWN (`struct vmbus_channel_gpadl_teardown`), 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GpadlTeardown {
    /// The channel.
    pub child_relid: u32,
    /// The GPADL to tear down.
    pub gpadl: u32,
}
channel_message!(GpadlTeardown, GPADL_TEARDOWN, 16);

/// GPADL_TORNDOWN (`struct vmbus_channel_gpadl_torndown`), 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GpadlTorndown {
    /// The GPADL torn down.
    pub gpadl: u32,
}
channel_message!(GpadlTorndown, GPADL_TORNDOWN, 12);

/// RELID_RELEASED (`struct vmbus_channel_relid_released`), 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RelidReleased {
    /// The relid the guest is done with.
    pub child_relid: u32,
}
channel_message!(RelidReleased, RELID_RELEASED, 12);

/// INITIATE_CONTACT (`struct vmbus_channel_initiate_contact`), 40 bytes.
/// The 8 bytes after `target_vcpu` are a union: before 5.0 the GPA of the
/// guest's interrupt page, from 5.0 the SINT and VTL for messages and the
/// 6.0 feature flags ([`super::version::Version::contact_names_sint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InitiateContact {
    /// The version proposed ([`super::version::Version`]).
    pub vmbus_version_requested: u32,
    /// The VP the host should post messages to.
    pub target_vcpu: u32,
    /// The SINT the host should post messages to.
    pub msg_sint: u8,
    /// The VTL of that SINT.
    pub msg_vtl: u8,
    /// Reserved.
    pub reserved: [u8; 2],
    /// Feature flags (6.0 and later), e.g.
    /// [`Self::FEATURE_CONFIDENTIAL_CHANNELS`].
    pub feature_flags: u32,
    /// GPA of the first (host-to-guest) monitor page.
    pub monitor_page1: u64,
    /// GPA of the second (guest-to-host) monitor page.
    pub monitor_page2: u64,
}
channel_message!(InitiateContact, INITIATE_CONTACT, 40);

impl InitiateContact {
    /// `VMBUS_FEATURE_FLAG_CONFIDENTIAL_CHANNELS` (paravisor only).
    pub const FEATURE_CONFIDENTIAL_CHANNELS: u32 = 0x10;

    /// The union read as the pre-5.0 `interrupt_page` GPA.
    pub const fn interrupt_page(&self) -> u64 {
        let r = self.reserved;
        u64::from_le_bytes([self.msg_sint, self.msg_vtl, r[0], r[1], 0, 0, 0, 0])
            | ((self.feature_flags as u64) << 32)
    }

    /// Writes the union as the pre-5.0 `interrupt_page` GPA.
    pub const fn set_interrupt_page(&mut self, gpa: u64) {
        let b = gpa.to_le_bytes();
        self.msg_sint = b[0];
        self.msg_vtl = b[1];
        self.reserved = [b[2], b[3]];
        self.feature_flags = (gpa >> 32) as u32;
    }
}

/// `connection_state` of VERSION_RESPONSE.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct ConnectionState(pub u8);

impl ConnectionState {
    /// Connected.
    pub const SUCCESSFUL: Self = Self(0);
    /// The host lacks resources.
    pub const FAILED_LOW_RESOURCES: Self = Self(1);
    /// Any other failure.
    pub const FAILED_UNKNOWN_FAILURE: Self = Self(2);
}

/// VERSION_RESPONSE (`struct vmbus_channel_version_response`), 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VersionResponse {
    /// Non-zero if the requested version is accepted.
    pub version_supported: u8,
    /// Whether the connection came up.
    pub connection_state: ConnectionState,
    /// Zero.
    pub padding: u16,
    /// From 5.0: the message connection the guest uses from now on.
    pub msg_conn_id: u32,
}
channel_message!(VersionResponse, VERSION_RESPONSE, 16);

/// TL_CONNECT_REQUEST (`struct vmbus_channel_tl_connect_request`), 40 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TlConnectRequest {
    /// The guest's endpoint.
    pub guest_endpoint_id: Guid,
    /// The host service connected to.
    pub host_service_id: Guid,
}
channel_message!(TlConnectRequest, TL_CONNECT_REQUEST, 40);

/// TL_CONNECT_RESULT, 44 bytes. Linux does not declare it (it never reads
/// it); the layout is Hyper-V's as OpenVMM's `vmbus_core` has it: the two
/// GUIDs of the request and a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TlConnectResult {
    /// The guest's endpoint.
    pub guest_endpoint_id: Guid,
    /// The host service.
    pub host_service_id: Guid,
    /// Zero on success, else an NTSTATUS-style failure.
    pub status: u32,
}
channel_message!(TlConnectResult, TL_CONNECT_RESULT, 44);

/// MODIFYCHANNEL (`struct vmbus_channel_modifychannel`), 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ModifyChannel {
    /// The channel.
    pub child_relid: u32,
    /// Its new target VP.
    pub target_vp: u32,
}
channel_message!(ModifyChannel, MODIFYCHANNEL, 16);

/// MODIFYCHANNEL_RESPONSE (`struct vmbus_channel_modifychannel_response`),
/// 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ModifyChannelResponse {
    /// The channel.
    pub child_relid: u32,
    /// Zero on success.
    pub status: u32,
}
channel_message!(ModifyChannelResponse, MODIFYCHANNEL_RESPONSE, 16);

/// Reads a `T` from the start of `bytes` (any alignment) if it is long
/// enough.
pub(super) fn read_prefix<T: zerocopy::FromBytes>(bytes: &[u8]) -> Option<T> {
    T::read_from_prefix(bytes).ok().map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn offsets_match_kernel_packed_layouts() {
        // Wire offsets are header (8) plus the body offset.
        let h = HEADER_SIZE;
        assert_eq!(h + offset_of!(OfferChannel, offer), 8);
        assert_eq!(h + offset_of!(Offer, chn_flags), 8 + 48);
        assert_eq!(h + offset_of!(Offer, user_def), 8 + 52);
        assert_eq!(h + offset_of!(Offer, sub_channel_index), 8 + 172);
        assert_eq!(h + offset_of!(OfferChannel, child_relid), 184);
        assert_eq!(h + offset_of!(OfferChannel, monitorid), 188);
        assert_eq!(h + offset_of!(OfferChannel, monitor_flags), 189);
        assert_eq!(h + offset_of!(OfferChannel, interrupt_flags), 190);
        assert_eq!(h + offset_of!(OfferChannel, connection_id), 192);
        assert_eq!(h + offset_of!(OpenChannel, target_vp), 20);
        assert_eq!(
            h + offset_of!(OpenChannel, downstream_ringbuffer_pageoffset),
            24
        );
        assert_eq!(h + offset_of!(OpenChannel, userdata), 28);
        assert_eq!(h + offset_of!(GpadlHeader, range_buflen), 16);
        assert_eq!(h + offset_of!(GpadlHeader, rangecount), 18);
        assert_eq!(h + offset_of!(InitiateContact, msg_sint), 16);
        assert_eq!(h + offset_of!(InitiateContact, feature_flags), 20);
        assert_eq!(h + offset_of!(InitiateContact, monitor_page1), 24);
        assert_eq!(h + offset_of!(InitiateContact, monitor_page2), 32);
        assert_eq!(h + offset_of!(VersionResponse, connection_state), 9);
        assert_eq!(h + offset_of!(VersionResponse, msg_conn_id), 12);
        assert_eq!(h + offset_of!(TlConnectResult, status), 40);
    }

    #[test]
    fn sizes_match_channel_message_table() {
        // The minimums Linux's channel_message_table enforces for what it
        // receives (sizeof of each struct, header included; 0 = header only).
        let table = [
            (MessageType::OFFERCHANNEL, 196),
            (MessageType::RESCIND_CHANNELOFFER, 12),
            (MessageType::ALLOFFERS_DELIVERED, 8),
            (MessageType::OPENCHANNEL_RESULT, 20),
            (MessageType::GPADL_CREATED, 20),
            (MessageType::GPADL_TORNDOWN, 12),
            (MessageType::VERSION_RESPONSE, 16),
            (MessageType::UNLOAD_RESPONSE, 8),
            (MessageType::MODIFYCHANNEL_RESPONSE, 16),
        ];
        for (t, n) in table {
            assert_eq!(t.min_len(), Some(n), "{t}");
        }
        assert_eq!(MessageType::OPENCHANNEL.min_len(), Some(148));
        assert_eq!(MessageType::INITIATE_CONTACT.min_len(), Some(40));
        assert_eq!(MessageType::TL_CONNECT_REQUEST.min_len(), Some(40));
        assert_eq!(MessageType::INVALID.min_len(), None);
        assert_eq!(MessageType::MSG_19.min_len(), None);
        assert_eq!(MessageType(25).min_len(), None);
        assert_eq!(MessageType::NAMED.len() as u32, MessageType::COUNT);
        for (i, (t, _)) in MessageType::NAMED.iter().enumerate() {
            assert_eq!(t.0, i as u32);
        }
    }

    #[test]
    fn display_and_helpers() {
        assert_eq!(MessageType::GPADL_BODY.to_string(), "GPADL_BODY(9)");
        assert_eq!(MessageType(99).to_string(), "unknown(99)");
        let r = GpaRange {
            byte_count: 4096,
            byte_offset: 0,
        };
        assert_eq!(r.page_count(), Some(1));
        assert_eq!(
            GpaRange {
                byte_count: 4096,
                byte_offset: 1
            }
            .page_count(),
            Some(2)
        );
        assert_eq!(
            GpaRange {
                byte_count: 0,
                byte_offset: 0
            }
            .page_count(),
            Some(0)
        );
        assert_eq!(
            GpaRange {
                byte_count: 1,
                byte_offset: 4096
            }
            .page_count(),
            None
        );
        assert_eq!(
            GpaRange {
                byte_count: u32::MAX,
                byte_offset: 4095
            }
            .page_count(),
            Some((1 << 20) + 1)
        );
        let ic = InitiateContact {
            vmbus_version_requested: 0x50000,
            target_vcpu: 0,
            msg_sint: 2,
            msg_vtl: 0,
            reserved: [0; 2],
            feature_flags: 0x10,
            monitor_page1: 0,
            monitor_page2: 0,
        };
        assert_eq!(ic.interrupt_page(), 0x10_0000_0002);
    }

    proptest::proptest! {
        #[test]
        fn interrupt_page_round_trips(gpa: u64) {
            let mut ic = <InitiateContact as zerocopy::FromZeros>::new_zeroed();
            ic.set_interrupt_page(gpa);
            proptest::prop_assert_eq!(ic.interrupt_page(), gpa);
            // The same eight bytes on the wire as the u64 at offset 16.
            let bytes = ic.as_bytes();
            proptest::prop_assert_eq!(&bytes[8..16], &gpa.to_le_bytes()[..]);
        }
    }

    #[test]
    fn encode_refuses_short_buffers() {
        let mut buf = [0u8; 15];
        let m = ModifyChannel {
            child_relid: 1,
            target_vp: 2,
        };
        assert_eq!(
            encode(&m, &mut buf),
            Err(EncodeError::NoRoom { need: 16, room: 15 })
        );
        let mut buf = [0u8; 16];
        assert_eq!(encode(&m, &mut buf), Ok(16));
        assert_eq!(buf, [22, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
        let mut big = [0u8; 300];
        let tail = [0u8; 233];
        assert_eq!(
            encode_with_tail(&m, &tail, &mut big),
            Err(EncodeError::NoRoom {
                need: 249,
                room: 240
            })
        );
    }
}
