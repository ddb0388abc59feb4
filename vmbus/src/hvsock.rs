// SPDX-License-Identifier: GPL-2.0

//! Hyper-V sockets (Linux's `hv_sock`, `net/vmw_vsock/hyperv_transport.c`):
//! the contract both halves of a connection keep.
//!
//! - **Ports are GUIDs.** An AF_VSOCK port `N` is the service GUID
//!   `N-facb-11e6-bd58-64006a7986d3` ([`service_id`], [`port_of`]); the
//!   guest's own end is named the same way.
//! - **Connect:** the guest sends TL_CONNECT_REQUEST
//!   ([`super::message::TlConnectRequest`]) with its endpoint and the host
//!   service. The host answers with an offer for that one connection
//!   ([`OFFER_FLAGS`], `if_type` = the service, `if_instance` = the
//!   endpoint, the user-defined area from [`user_defined`]); nothing comes
//!   back for a refusal, and the guest's connect times out.
//! - **Accept:** for a host program connecting in, the host offers the same
//!   way with is-for-guest-accept set, `if_type` = the guest's listening
//!   service and `if_instance` = the host's endpoint.
//! - **Stream:** in-band packets, each a [`DataHeader`] and its bytes
//!   ([`parse_data`]): at most [`GUEST_SEND_MAX`] bytes from the guest and
//!   [`HOST_SEND_MAX`] from the host. An empty one is a FIN: that side sends
//!   no more.
//! - **Close:** after both FINs (or at once, if the host gives up) the host
//!   rescinds the channel; Linux's close waits for that rescind.

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::guid::Guid;
use super::message::{OfferFlags, MAX_USER_DEFINED_BYTES};

/// The name a guest gives the device of a socket connection's channel
/// (beside the class names of [`super::guid`]).
pub const DEVICE_NAME: &core::ffi::CStr = c"hvsock";

/// The service GUID of port 0; port `N` replaces the first field with `N`.
pub const SERVICE_TEMPLATE: Guid = Guid::from_fields(
    0x0000_0000,
    0xfacb,
    0x11e6,
    [0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3],
);

/// The service GUID of AF_VSOCK port `port`.
pub const fn service_id(port: u32) -> Guid {
    let mut id = SERVICE_TEMPLATE;
    let p = port.to_le_bytes();
    id.0[0] = p[0];
    id.0[1] = p[1];
    id.0[2] = p[2];
    id.0[3] = p[3];
    id
}

/// The AF_VSOCK port a service GUID names; `None` unless the GUID follows
/// [`SERVICE_TEMPLATE`] (Linux's `is_valid_srv_id`).
pub fn port_of(id: &Guid) -> Option<u32> {
    (id.0[4..] == SERVICE_TEMPLATE.0[4..]).then(|| id.data1())
}

/// The `chn_flags` of a Hyper-V socket offer: a transport-layer provider,
/// in named-pipe mode, enumerated as a device interface.
pub const OFFER_FLAGS: OfferFlags = OfferFlags(
    OfferFlags::TLNPI_PROVIDER_OFFER.0
        | OfferFlags::NAMED_PIPE_MODE.0
        | OfferFlags::ENUMERATE_DEVICE_INTERFACE.0,
);

/// TL_CONNECT_RESULT's status for a connection the host refused
/// (`STATUS_CONNECTION_REFUSED`).
pub const CONNECT_REFUSED: u32 = 0xc000_0236;

/// Pipe mode of a byte stream (`VMBUS_PIPE_TYPE_BYTE`).
pub const PIPE_TYPE_BYTE: u32 = 0;
/// Pipe mode of a message pipe (`VMBUS_PIPE_TYPE_MESSAGE`), not used here.
pub const PIPE_TYPE_MESSAGE: u32 = 4;

/// The start of a socket offer's user-defined area: the pipe mode, then
/// the socket parameters Hyper-V puts there (`user_def[0]` of Linux's
/// pipe view is [`is_for_guest_accept`](Self::is_for_guest_accept)).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct UserDefined {
    /// [`PIPE_TYPE_BYTE`].
    pub pipe_mode: u32,
    /// 1: a host program connects to a guest listener; 0: the guest asked.
    pub is_for_guest_accept: u8,
    /// 1: the connection is for a container in the guest (not used here).
    pub is_for_guest_container: u8,
    /// The parameters' version, unaligned (1 from Windows RS5 on; 0 here).
    pub version: [u8; 4],
    /// The silo (container) the connection belongs to; zero for the VM.
    pub silo_id: Guid,
    /// Padding to 28 bytes.
    pub pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<UserDefined>() == 28);

/// The user-defined area of an offer for one socket connection.
pub fn user_defined(for_guest_accept: bool) -> [u8; MAX_USER_DEFINED_BYTES] {
    let params = UserDefined {
        pipe_mode: PIPE_TYPE_BYTE,
        is_for_guest_accept: u8::from(for_guest_accept),
        ..UserDefined::default()
    };
    let mut area = [0u8; MAX_USER_DEFINED_BYTES];
    area[..core::mem::size_of::<UserDefined>()]
        .copy_from_slice(zerocopy::IntoBytes::as_bytes(&params));
    area
}

/// Whether an offer's user-defined area says a host program is connecting
/// to a guest listener (Linux reads only this byte).
pub fn is_for_guest_accept(area: &[u8; MAX_USER_DEFINED_BYTES]) -> bool {
    area[4] != 0
}

/// The header of every stream packet (`struct vmpipe_proto_header`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DataHeader {
    /// [`PIPE_MSG_DATA`].
    pub pkt_type: u32,
    /// Bytes of data after the header; 0 is a FIN.
    pub data_size: u32,
}

/// Size of [`DataHeader`] on the wire.
pub const DATA_HEADER_SIZE: usize = core::mem::size_of::<DataHeader>();
const _: () = assert!(DATA_HEADER_SIZE == 8);

/// `pkt_type` of a data packet (`PIPE_MSG_DATA`); the pipe protocol's
/// other types (partial, GPA-direct setup and teardown) are not used by
/// sockets and are refused.
pub const PIPE_MSG_DATA: u32 = 1;

/// Most data bytes in one packet from the guest (`HVS_SEND_BUF_SIZE`: a
/// page less the header).
pub const GUEST_SEND_MAX: usize = 4096 - DATA_HEADER_SIZE;
/// Most data bytes Linux accepts in one packet from the host
/// (`HVS_MTU_SIZE`); a longer one fails its read with EIO.
pub const HOST_SEND_MAX: usize = 16 * 1024;

/// The ring bytes a packet with `data` bytes takes: the 16-byte
/// descriptor, the header, the data padded to 8, and the 8-byte index
/// trailer (Linux's `HVS_PKT_LEN`).
pub const fn ring_len(data: usize) -> usize {
    16 + DATA_HEADER_SIZE + ((data + 7) & !7) + 8
}

/// The `pending_send_sz` Linux sets on a socket's ring: room for its
/// largest packet, which the host is to signal once it frees.
pub const GUEST_PENDING_SEND: usize = ring_len(GUEST_SEND_MAX);
const _: () = assert!(GUEST_PENDING_SEND == 4120);

/// Smallest socket buffer a connection's ring is sized from (Linux's
/// `RINGBUFFER_HVS_SND_SIZE` and `_RCV_SIZE`, six pages).
pub const RING_BUF_MIN: usize = 6 * 4096;
/// Largest (`RINGBUFFER_HVS_MAX_SIZE`, 64 pages).
pub const RING_BUF_MAX: usize = 64 * 4096;
/// The ring's header page (`struct hv_ring_buffer`).
const RING_HEADER: usize = 4096;

/// The data bytes of a ring sized from a socket buffer of `buf` bytes
/// (`SO_SNDBUF` for the ring to the host, `SO_RCVBUF` for the other), as
/// Linux's `hv_sock` sizes a host's connection from its listener (VMBus
/// 5.0 and later): the buffer is held to [`RING_BUF_MIN`]..=
/// [`RING_BUF_MAX`], and `VMBUS_RING_SIZE` makes the ring of it whole
/// pages, header included, taking the header out of a buffer of 32 KiB or
/// more (8 headers) and adding it to a smaller one. hv_guest sizes every
/// connection so; `hv_sock` gives a guest's connect [`RING_BUF_MIN`].
pub const fn ring_data_bytes(buf: usize) -> usize {
    let b = if buf < RING_BUF_MIN {
        RING_BUF_MIN
    } else if buf > RING_BUF_MAX {
        RING_BUF_MAX
    } else {
        buf
    };
    let whole = b.div_ceil(4096) * 4096;
    if b >= 8 * RING_HEADER {
        whole - RING_HEADER
    } else {
        whole
    }
}

/// Stream bytes a sender may put in its ring when `free` bytes are free
/// (Linux's `hvs_channel_writable_bytes`): the ring is never filled to the
/// last byte, and room for a FIN stays, so a shutdown never waits. A
/// multiple of 8; 0 when not even one byte fits that way.
pub const fn writable_bytes(free: u32) -> usize {
    let free = free as usize;
    let keep = ring_len(1) + ring_len(0);
    if free <= keep {
        0
    } else {
        (free - keep) & !7
    }
}

impl DataHeader {
    /// The header of a packet carrying `len` bytes (0: a FIN).
    pub const fn data(len: u32) -> Self {
        Self {
            pkt_type: PIPE_MSG_DATA,
            data_size: len,
        }
    }
}

/// A stream packet, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// Bytes of the stream (never empty).
    Bytes(&'a [u8]),
    /// The sender sends no more.
    Fin,
}

/// Why a stream packet was refused. Each breaks the stream: the receiver
/// resets that connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeError {
    /// The packet is shorter than its header.
    TooShort {
        /// Bytes there were.
        len: usize,
    },
    /// Not a data packet.
    BadType {
        /// The type it had.
        pkt_type: u32,
    },
    /// More data than the sender may put in one packet.
    Oversize {
        /// Bytes it claimed.
        data_size: u32,
        /// The sender's limit.
        max: usize,
    },
    /// The header claims more bytes than the packet has.
    PastPacket {
        /// Bytes it claimed.
        data_size: u32,
        /// Bytes after the header.
        have: usize,
    },
}

impl core::fmt::Display for PipeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TooShort { len } => write!(f, "a {len}-byte packet has no pipe header"),
            Self::BadType { pkt_type } => write!(f, "pipe packet type {pkt_type} is not data"),
            Self::Oversize { data_size, max } => {
                write!(f, "{data_size} bytes in one packet, more than {max}")
            }
            Self::PastPacket { data_size, have } => {
                write!(f, "{data_size} bytes claimed, {have} in the packet")
            }
        }
    }
}

/// Checks a stream packet's in-band payload (what follows the packet
/// descriptor; it may carry padding after the data) from a sender whose
/// limit is `max` ([`GUEST_SEND_MAX`] or [`HOST_SEND_MAX`]).
pub fn parse_data(payload: &[u8], max: usize) -> Result<Data<'_>, PipeError> {
    let header: DataHeader =
        super::message::read_prefix(payload).ok_or(PipeError::TooShort { len: payload.len() })?;
    if header.pkt_type != PIPE_MSG_DATA {
        return Err(PipeError::BadType {
            pkt_type: header.pkt_type,
        });
    }
    let size = header.data_size as usize;
    if size > max {
        return Err(PipeError::Oversize {
            data_size: header.data_size,
            max,
        });
    }
    let rest = &payload[DATA_HEADER_SIZE..];
    match rest.get(..size) {
        None => Err(PipeError::PastPacket {
            data_size: header.data_size,
            have: rest.len(),
        }),
        Some([]) => Ok(Data::Fin),
        Some(bytes) => Ok(Data::Bytes(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use zerocopy::IntoBytes as _;

    #[test]
    fn service_ids_are_linux_s() {
        // hv_sock's template, and port 1234 (0x4d2) as Linux names it.
        assert_eq!(
            std::format!("{}", SERVICE_TEMPLATE),
            "00000000-facb-11e6-bd58-64006a7986d3"
        );
        assert_eq!(
            std::format!("{}", service_id(1234)),
            "000004d2-facb-11e6-bd58-64006a7986d3"
        );
        assert_eq!(port_of(&service_id(1234)), Some(1234));
        assert_eq!(port_of(&super::super::guid::HEARTBEAT), None);
    }

    #[test]
    fn offer_flags_and_user_defined_area() {
        assert_eq!(OFFER_FLAGS.0, 0x2011);
        let connect = user_defined(false);
        let accept = user_defined(true);
        assert!(!is_for_guest_accept(&connect));
        assert!(is_for_guest_accept(&accept));
        // The pipe mode leads, as Offer::pipe_mode reads it; the rest is zero.
        assert_eq!(&accept[..4], &PIPE_TYPE_BYTE.to_le_bytes());
        assert!(accept[5..].iter().all(|b| *b == 0));
        assert_eq!(core::mem::offset_of!(UserDefined, silo_id), 10);
    }

    #[test]
    fn writable_leaves_room_for_a_fin() {
        assert_eq!(writable_bytes(0), 0);
        assert_eq!(writable_bytes(72), 0);
        assert_eq!(writable_bytes(73), 0);
        assert_eq!(writable_bytes(80), 8);
        assert_eq!(writable_bytes(4096), 4024);
    }

    proptest! {
        #[test]
        fn writable_bytes_always_fit_with_a_fin(free in 0u32..1 << 20) {
            let n = writable_bytes(free);
            prop_assert_eq!(n % 8, 0);
            if n > 0 {
                // A packet of n bytes, then a FIN, and the ring not full.
                prop_assert!(ring_len(n) + ring_len(0) < free as usize);
            }
        }
    }

    #[test]
    fn ring_sizes_are_linux_s() {
        // The kernel's default socket buffers (wmem_default on x86-64):
        // 52 pages with the header.
        assert_eq!(ring_data_bytes(212_992), 208_896);
        assert_eq!(ring_data_bytes(0), 24_576);
        assert_eq!(ring_data_bytes(16_384), 24_576);
        assert_eq!(ring_data_bytes(24_577), 28_672);
        assert_eq!(ring_data_bytes(32_767), 32_768);
        assert_eq!(ring_data_bytes(32_768), 28_672);
        assert_eq!(ring_data_bytes(262_144), 258_048);
        assert_eq!(ring_data_bytes(usize::MAX), 258_048);
    }

    proptest! {
        #[test]
        fn ring_data_bytes_are_whole_pages_in_bounds(buf in any::<usize>()) {
            let n = ring_data_bytes(buf);
            prop_assert_eq!(n % 4096, 0);
            prop_assert!((RING_BUF_MIN..=RING_BUF_MAX - RING_HEADER).contains(&n));
            // With its header page, the ring is the buffer in whole pages,
            // or one page more for a buffer under 32 KiB.
            let b = buf.clamp(RING_BUF_MIN, RING_BUF_MAX);
            let total = n + RING_HEADER;
            prop_assert!(total >= b && total - b < 4096 + RING_HEADER);
        }
    }

    #[test]
    fn packet_sizes_are_linux_s() {
        assert_eq!(GUEST_SEND_MAX, 4088);
        assert_eq!(ring_len(0), 32);
        assert_eq!(ring_len(1), 40);
        assert_eq!(GUEST_PENDING_SEND, 4120);
    }

    fn packet(header: DataHeader, data: &[u8], pad: usize) -> std::vec::Vec<u8> {
        let mut p = header.as_bytes().to_vec();
        p.extend_from_slice(data);
        p.resize(p.len() + pad, 0xee);
        p
    }

    #[test]
    fn each_refusal() {
        assert_eq!(
            parse_data(&[1, 0, 0], 16),
            Err(PipeError::TooShort { len: 3 })
        );
        let bad = DataHeader {
            pkt_type: 3,
            data_size: 0,
        };
        assert_eq!(
            parse_data(&packet(bad, &[], 0), 16),
            Err(PipeError::BadType { pkt_type: 3 })
        );
        assert_eq!(
            parse_data(&packet(DataHeader::data(17), &[0; 17], 0), 16),
            Err(PipeError::Oversize {
                data_size: 17,
                max: 16
            })
        );
        assert_eq!(
            parse_data(&packet(DataHeader::data(9), &[0; 8], 0), 16),
            Err(PipeError::PastPacket {
                data_size: 9,
                have: 8
            })
        );
        assert_eq!(
            parse_data(&packet(DataHeader::data(0), &[], 8), 16),
            Ok(Data::Fin)
        );
    }

    proptest! {
        #[test]
        fn every_port_round_trips(port: u32) {
            prop_assert_eq!(port_of(&service_id(port)), Some(port));
        }

        #[test]
        fn a_guid_off_the_template_names_no_port(bytes: [u8; 16]) {
            let id = Guid(bytes);
            prop_assert_eq!(port_of(&id).is_some(), bytes[4..] == SERVICE_TEMPLATE.0[4..]);
        }

        #[test]
        fn data_round_trips_with_any_padding(
            data in proptest::collection::vec(any::<u8>(), 1..=GUEST_SEND_MAX),
            pad in 0usize..8,
        ) {
            let p = packet(DataHeader::data(data.len() as u32), &data, pad);
            prop_assert_eq!(parse_data(&p, GUEST_SEND_MAX), Ok(Data::Bytes(&data[..])));
        }

        /// Whatever the bytes, the parser answers without panicking, and a
        /// packet it accepts lies within the input and within the limit.
        #[test]
        fn arbitrary_bytes_are_checked(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            max in 0usize..32,
        ) {
            match parse_data(&bytes, max) {
                Ok(Data::Bytes(b)) => {
                    prop_assert!(!b.is_empty() && b.len() <= max);
                    prop_assert_eq!(b, &bytes[DATA_HEADER_SIZE..DATA_HEADER_SIZE + b.len()]);
                }
                Ok(Data::Fin) => prop_assert_eq!(&bytes[4..8], &[0u8; 4]),
                Err(PipeError::TooShort { len }) => prop_assert!(len < DATA_HEADER_SIZE),
                Err(PipeError::BadType { pkt_type }) => prop_assert_ne!(pkt_type, PIPE_MSG_DATA),
                Err(PipeError::Oversize { data_size, max: m }) => prop_assert!(data_size as usize > m),
                Err(PipeError::PastPacket { data_size, have }) => prop_assert!(data_size as usize > have),
            }
        }
    }
}
