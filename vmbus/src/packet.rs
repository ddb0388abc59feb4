// SPDX-License-Identifier: GPL-2.0

//! Packets in a VMBus ring (`include/linux/hyperv.h`): the 16-byte
//! descriptor every packet starts with, the packet types and flags, the
//! GPA-direct header, and the length arithmetic (8-byte units, 8-byte
//! padding). Parsing here works on a packet already copied out of the ring,
//! never on shared memory.

use core::mem::size_of;

use zerocopy::IntoBytes as _;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::message::{read_prefix, GpaRange};

/// A packet type (`enum vmbus_packet_type`). Unknown values are data.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct PacketType(pub u16);

impl PacketType {
    /// `VM_PKT_INVALID`.
    pub const INVALID: Self = Self(0x0);
    /// `VM_PKT_SYNCH`.
    pub const SYNCH: Self = Self(0x1);
    /// `VM_PKT_ADD_XFER_PAGESET`.
    pub const ADD_XFER_PAGESET: Self = Self(0x2);
    /// `VM_PKT_RM_XFER_PAGESET`.
    pub const RM_XFER_PAGESET: Self = Self(0x3);
    /// `VM_PKT_ESTABLISH_GPADL`.
    pub const ESTABLISH_GPADL: Self = Self(0x4);
    /// `VM_PKT_TEARDOWN_GPADL`.
    pub const TEARDOWN_GPADL: Self = Self(0x5);
    /// Data carried in the packet itself (`VM_PKT_DATA_INBAND`).
    pub const DATA_INBAND: Self = Self(0x6);
    /// Data in transfer pages (`VM_PKT_DATA_USING_XFER_PAGES`).
    pub const DATA_USING_XFER_PAGES: Self = Self(0x7);
    /// `VM_PKT_DATA_USING_GPADL`.
    pub const DATA_USING_GPADL: Self = Self(0x8);
    /// Data in guest pages listed in the packet (`VM_PKT_DATA_USING_GPA_DIRECT`).
    pub const DATA_USING_GPA_DIRECT: Self = Self(0x9);
    /// `VM_PKT_CANCEL_REQUEST`.
    pub const CANCEL_REQUEST: Self = Self(0xa);
    /// A completion of an earlier packet (`VM_PKT_COMP`).
    pub const COMP: Self = Self(0xb);
    /// `VM_PKT_DATA_USING_ADDITIONAL_PKT`.
    pub const DATA_USING_ADDITIONAL_PKT: Self = Self(0xc);
    /// `VM_PKT_ADDITIONAL_DATA`.
    pub const ADDITIONAL_DATA: Self = Self(0xd);
}

impl core::fmt::Debug for PacketType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match *self {
            Self::DATA_INBAND => "DATA_INBAND",
            Self::DATA_USING_XFER_PAGES => "DATA_USING_XFER_PAGES",
            Self::DATA_USING_GPA_DIRECT => "DATA_USING_GPA_DIRECT",
            Self::COMP => "COMP",
            _ => return write!(f, "PacketType({:#x})", self.0),
        };
        write!(f, "PacketType({})", name)
    }
}

/// Packet flags.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct PacketFlags(pub u16);

impl PacketFlags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// The sender wants a [`PacketType::COMP`] with the same transaction ID
    /// (`VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED`).
    pub const COMPLETION_REQUESTED: Self = Self(1);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The descriptor at the start of every packet
/// (`struct vmpacket_descriptor`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct PacketDescriptor {
    /// What the packet is.
    pub ty: PacketType,
    /// Where the data starts, in 8-byte units from the packet start.
    pub offset8: u16,
    /// The packet's length without trailer, in 8-byte units.
    pub len8: u16,
    /// Flags.
    pub flags: PacketFlags,
    /// Matches a completion to its request.
    pub trans_id: u64,
}

/// Size of [`PacketDescriptor`].
pub const DESCRIPTOR_SIZE: usize = size_of::<PacketDescriptor>();
const _: () = assert!(DESCRIPTOR_SIZE == 16);

/// Size of the trailer after every packet: the producer's write index at
/// the time of writing, shifted left by 32 (`VMBUS_PKT_TRAILER`).
pub const TRAILER_SIZE: usize = 8;

/// The largest packet a descriptor can describe (len8 is a u16).
pub const MAX_PACKET_SIZE: usize = u16::MAX as usize * 8;

impl PacketDescriptor {
    /// Data offset in bytes.
    pub const fn data_offset(&self) -> usize {
        self.offset8 as usize * 8
    }

    /// Packet length (descriptor included, trailer not) in bytes.
    pub const fn len(&self) -> usize {
        self.len8 as usize * 8
    }

    /// Whether the packet has no bytes at all (only a corrupt one).
    pub const fn is_empty(&self) -> bool {
        self.len8 == 0
    }
}

/// Rounds up to the 8-byte packet alignment.
pub const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Why a packet cannot be built or understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// The packet would exceed [`MAX_PACKET_SIZE`].
    TooLong {
        /// Bytes.
        len: usize,
    },
    /// The bytes between descriptor and data are not a multiple of 8.
    UnalignedHeader {
        /// Bytes.
        len: usize,
    },
    /// A copied packet whose descriptor does not fit its bytes.
    BadDescriptor {
        /// `offset8` in bytes.
        offset: usize,
        /// `len8` in bytes.
        len: usize,
        /// Bytes present.
        got: usize,
    },
    /// A GPA-direct header whose ranges do not fit before the data.
    BadGpaRanges {
        /// `range_count` it claims.
        range_count: u32,
    },
    /// The caller's buffer is too small.
    NoRoom {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        room: usize,
    },
}

impl core::fmt::Display for PacketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TooLong { len } => {
                write!(f, "packet of {} bytes exceeds {}", len, MAX_PACKET_SIZE)
            }
            Self::UnalignedHeader { len } => {
                write!(f, "packet header of {} bytes is not 8-byte aligned", len)
            }
            Self::BadDescriptor { offset, len, got } => {
                write!(
                    f,
                    "packet descriptor offset {} len {} does not fit {} bytes",
                    offset, len, got
                )
            }
            Self::BadGpaRanges { range_count } => {
                write!(
                    f,
                    "GPA-direct packet with {} ranges that do not fit",
                    range_count
                )
            }
            Self::NoRoom { need, room } => {
                write!(f, "packet needs {} bytes, room for {}", need, room)
            }
        }
    }
}

/// The descriptor for a packet with `header_len` bytes between descriptor
/// and data (a multiple of 8) and `data_len` bytes of data; the packet is
/// `desc.len()` bytes, the data padded with zeros to 8.
#[inline]
pub fn descriptor(
    ty: PacketType,
    flags: PacketFlags,
    trans_id: u64,
    header_len: usize,
    data_len: usize,
) -> Result<PacketDescriptor, PacketError> {
    if header_len % 8 != 0 {
        return Err(PacketError::UnalignedHeader { len: header_len });
    }
    let offset = DESCRIPTOR_SIZE.saturating_add(header_len);
    let len = align8(offset.saturating_add(data_len).min(usize::MAX - 7));
    if len > MAX_PACKET_SIZE {
        return Err(PacketError::TooLong { len });
    }
    Ok(PacketDescriptor {
        ty,
        offset8: (offset / 8) as u16,
        len8: (len / 8) as u16,
        flags,
        trans_id,
    })
}

/// The header of a GPA-direct packet after the descriptor
/// (`struct vmdata_gpa_direct` without its ranges).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GpaDirectHeader {
    /// Zero.
    pub reserved: u32,
    /// Ranges that follow, each a [`GpaRange`] and its PFNs.
    pub range_count: u32,
}
const _: () = assert!(size_of::<GpaDirectHeader>() == 8);

/// A packet copied out of the ring, its descriptor checked against its
/// length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The descriptor (as copied, checked).
    pub desc: PacketDescriptor,
    /// The whole packet, descriptor included, `desc.len()` bytes.
    pub bytes: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Checks a copied packet: the descriptor must fit the bytes.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, PacketError> {
        let desc: PacketDescriptor = read_prefix(bytes).ok_or(PacketError::BadDescriptor {
            offset: 0,
            len: 0,
            got: bytes.len(),
        })?;
        let (offset, len) = (desc.data_offset(), desc.len());
        if len < DESCRIPTOR_SIZE || len > bytes.len() || offset < DESCRIPTOR_SIZE || offset > len {
            return Err(PacketError::BadDescriptor {
                offset,
                len,
                got: bytes.len(),
            });
        }
        Ok(Self {
            desc,
            bytes: &bytes[..len],
        })
    }

    /// The data after the header (padding included: the sender's protocol
    /// says how much of it counts).
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        &self.bytes[self.desc.data_offset()..]
    }

    /// The bytes between descriptor and data (for GPA-direct: its header
    /// and ranges; for transfer pages: the page set header).
    pub fn header(&self) -> &'a [u8] {
        &self.bytes[DESCRIPTOR_SIZE..self.desc.data_offset()]
    }

    /// The ranges of a GPA-direct packet, checked to fit its header area.
    pub fn gpa_ranges(&self) -> Result<GpaRanges<'a>, PacketError> {
        let h = self.header();
        let gh: GpaDirectHeader =
            read_prefix(h).ok_or(PacketError::BadGpaRanges { range_count: 0 })?;
        let mut rest = &h[size_of::<GpaDirectHeader>()..];
        let bad = PacketError::BadGpaRanges {
            range_count: gh.range_count,
        };
        let area = rest;
        for _ in 0..gh.range_count {
            let r: GpaRange = read_prefix(rest).ok_or(bad)?;
            let pages = r.page_count().ok_or(bad)?;
            let used = (pages as usize)
                .checked_mul(8)
                .and_then(|n| n.checked_add(8))
                .ok_or(bad)?;
            rest = rest.get(used..).ok_or(bad)?;
        }
        Ok(GpaRanges {
            remaining: gh.range_count,
            bytes: area,
        })
    }
}

/// The ranges of a checked GPA-direct packet.
#[derive(Clone, Debug)]
pub struct GpaRanges<'a> {
    remaining: u32,
    bytes: &'a [u8],
}

impl<'a> Iterator for GpaRanges<'a> {
    /// The range head and its PFNs as raw little-endian bytes.
    type Item = (GpaRange, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let r: GpaRange = read_prefix(self.bytes)?;
        let n = r.page_count()? as usize * 8;
        let pfns = self.bytes.get(8..8 + n)?;
        self.bytes = &self.bytes[8 + n..];
        self.remaining -= 1;
        Some((r, pfns))
    }
}

/// Writes a whole packet (descriptor, `header`, `data`, zero padding) into
/// `buf`, returning its length; the trailer is the ring's business.
pub fn encode_packet(
    ty: PacketType,
    flags: PacketFlags,
    trans_id: u64,
    header: &[u8],
    data: &[u8],
    buf: &mut [u8],
) -> Result<usize, PacketError> {
    let d = descriptor(ty, flags, trans_id, header.len(), data.len())?;
    let len = d.len();
    if len > buf.len() {
        return Err(PacketError::NoRoom {
            need: len,
            room: buf.len(),
        });
    }
    let off = d.data_offset();
    buf[..DESCRIPTOR_SIZE].copy_from_slice(d.as_bytes());
    buf[DESCRIPTOR_SIZE..off].copy_from_slice(header);
    buf[off..off + data.len()].copy_from_slice(data);
    buf[off + data.len()..len].fill(0);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout_matches_vmpacket_descriptor() {
        assert_eq!(offset_of!(PacketDescriptor, offset8), 2);
        assert_eq!(offset_of!(PacketDescriptor, len8), 4);
        assert_eq!(offset_of!(PacketDescriptor, flags), 6);
        assert_eq!(offset_of!(PacketDescriptor, trans_id), 8);
        assert_eq!(PacketType::DATA_INBAND.0, 6);
        assert_eq!(PacketType::DATA_USING_GPA_DIRECT.0, 9);
        assert_eq!(PacketType::COMP.0, 11);
        assert_eq!(format!("{:?}", PacketType::COMP), "PacketType(COMP)");
        assert_eq!(format!("{:?}", PacketType(0x33)), "PacketType(0x33)");
    }

    #[test]
    fn inband_roundtrip_with_padding() {
        let mut buf = [0xffu8; 64];
        let n = encode_packet(
            PacketType::DATA_INBAND,
            PacketFlags::COMPLETION_REQUESTED,
            42,
            &[],
            b"hello",
            &mut buf,
        )
        .expect("fits");
        assert_eq!(n, 24);
        let p = Packet::from_bytes(&buf[..n]).expect("valid");
        assert_eq!(p.desc.trans_id, 42);
        assert_eq!((p.desc.offset8, p.desc.len8), (2, 3));
        assert!(p.desc.flags.contains(PacketFlags::COMPLETION_REQUESTED));
        assert_eq!(p.data(), b"hello\0\0\0");
        assert!(p.header().is_empty());
        assert_eq!(
            encode_packet(PacketType::COMP, PacketFlags::NONE, 1, &[1], &[], &mut buf),
            Err(PacketError::UnalignedHeader { len: 1 })
        );
        assert_eq!(
            descriptor(PacketType::COMP, PacketFlags::NONE, 1, 0, MAX_PACKET_SIZE),
            Err(PacketError::TooLong {
                len: MAX_PACKET_SIZE + 16
            })
        );
    }

    #[test]
    fn gpa_direct_ranges() {
        let mut hdr = Vec::new();
        hdr.extend_from_slice(
            GpaDirectHeader {
                reserved: 0,
                range_count: 2,
            }
            .as_bytes(),
        );
        hdr.extend_from_slice(
            GpaRange {
                byte_count: 5000,
                byte_offset: 100,
            }
            .as_bytes(),
        );
        hdr.extend_from_slice([10u64, 11].as_bytes());
        hdr.extend_from_slice(
            GpaRange {
                byte_count: 8,
                byte_offset: 0,
            }
            .as_bytes(),
        );
        hdr.extend_from_slice([12u64].as_bytes());
        let mut buf = [0u8; 128];
        let n = encode_packet(
            PacketType::DATA_USING_GPA_DIRECT,
            PacketFlags::NONE,
            1,
            &hdr,
            b"req",
            &mut buf,
        )
        .expect("fits");
        let p = Packet::from_bytes(&buf[..n]).expect("valid");
        let ranges: Vec<_> = p.gpa_ranges().expect("fit").collect();
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].0.byte_count, 5000);
        assert_eq!(ranges[0].1, [10u64, 11].as_bytes());
        // A count that overruns the header area is refused.
        buf[16 + 4] = 3;
        let p = Packet::from_bytes(&buf[..n]).expect("valid");
        assert_eq!(
            p.gpa_ranges().err(),
            Some(PacketError::BadGpaRanges { range_count: 3 })
        );
    }

    #[test]
    fn bad_descriptors() {
        let mut buf = [0u8; 32];
        assert!(Packet::from_bytes(&buf[..8]).is_err());
        let d = PacketDescriptor {
            ty: PacketType::DATA_INBAND,
            offset8: 2,
            len8: 5,
            flags: PacketFlags::NONE,
            trans_id: 0,
        };
        buf[..16].copy_from_slice(d.as_bytes());
        assert_eq!(
            Packet::from_bytes(&buf).err(),
            Some(PacketError::BadDescriptor {
                offset: 16,
                len: 40,
                got: 32
            })
        );
        let d = PacketDescriptor {
            offset8: 1,
            len8: 2,
            ..d
        };
        buf[..16].copy_from_slice(d.as_bytes());
        assert!(Packet::from_bytes(&buf).is_err());
        let d = PacketDescriptor {
            offset8: 4,
            len8: 3,
            ..d
        };
        buf[..16].copy_from_slice(d.as_bytes());
        assert!(Packet::from_bytes(&buf).is_err());
    }
}
