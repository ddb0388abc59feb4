// SPDX-License-Identifier: GPL-2.0

//! The storage protocol over VMBus (VSTOR: Linux's `storvsc`, Hyper-V's
//! storage VSP), spoken on a channel of class
//! [`super::guid::SCSI`]: 64-byte [`VstorPacket`]s, in-band for
//! control and for commands without data, GPA-direct (the data's guest
//! pages in the packet's range, [`super::packet::Packet::gpa_ranges`]) for
//! commands with data.
//!
//! The guest starts with BEGIN_INITIALIZATION, QUERY_PROTOCOL_VERSION (6.2,
//! then 6.0), QUERY_PROPERTIES and END_INITIALIZATION, each with a
//! completion requested; CREATE_SUB_CHANNELS may follow. Every request is
//! answered by a COMPLETE_IO packet with the request's transaction ID and a
//! [`status`] (0 is success). A SCSI command is an EXECUTE_SRB whose body is
//! a [`VmscsiRequest`]; its completion carries the same structure back with
//! the SRB and SCSI statuses, the bytes moved and, on CHECK CONDITION,
//! the sense data in place of the CDB.
//!
//! Layouts and values as Linux 7.3's `drivers/scsi/storvsc_drv.c` has them
//! (the sizes are asserted below).

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A VSTOR protocol version, `major << 8 | minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VstorVersion(pub u16);

impl VstorVersion {
    /// Windows 8.1 / Server 2012 R2: 6.0.
    pub const WIN8_1: Self = Self(0x0600);
    /// Windows 10 / Server 2016: 6.2 (WRITE SAME allowed by Linux).
    pub const WIN10: Self = Self(0x0602);
    /// What a host of this project accepts, newest first.
    pub const SUPPORTED: [Self; 2] = [Self::WIN10, Self::WIN8_1];

    /// The major number.
    pub const fn major(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The minor number.
    pub const fn minor(self) -> u8 {
        self.0 as u8
    }
}

/// The operations (`vstor_packet.operation`).
pub mod operation {
    /// The host's answer to any request.
    pub const COMPLETE_IO: u32 = 1;
    /// Host to guest, unsolicited: a device went away (rescan).
    pub const REMOVE_DEVICE: u32 = 2;
    /// A SCSI command.
    pub const EXECUTE_SRB: u32 = 3;
    /// Reset one LUN.
    pub const RESET_LUN: u32 = 4;
    /// Reset the adapter.
    pub const RESET_ADAPTER: u32 = 5;
    /// Reset the bus.
    pub const RESET_BUS: u32 = 6;
    /// The first step of initialisation.
    pub const BEGIN_INITIALIZATION: u32 = 7;
    /// The last step of initialisation.
    pub const END_INITIALIZATION: u32 = 8;
    /// Propose a protocol version.
    pub const QUERY_PROTOCOL_VERSION: u32 = 9;
    /// Ask for the channel properties.
    pub const QUERY_PROPERTIES: u32 = 10;
    /// Host to guest, unsolicited: the LUNs changed (rescan).
    pub const ENUMERATE_BUS: u32 = 11;
    /// Fibre Channel HBA data (the FC class only).
    pub const FCHBA_DATA: u32 = 12;
    /// Ask for sub-channels.
    pub const CREATE_SUB_CHANNELS: u32 = 13;
}

/// `vstor_packet.flags`: the sender wants a completion.
pub const REQUEST_COMPLETION_FLAG: u32 = 0x1;

/// Completion statuses (`vstor_packet.status`, NTSTATUS values): Linux
/// only tells 0 from the rest.
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// A protocol version the host does not speak.
    pub const REVISION_MISMATCH: u32 = 0xc000_0059;
    /// A malformed or out-of-order request.
    pub const INVALID_PARAMETER: u32 = 0xc000_000d;
    /// A request the host does not implement.
    pub const NOT_SUPPORTED: u32 = 0xc000_00bb;
    /// The device state does not allow the request (e.g. before
    /// initialisation is complete).
    pub const INVALID_DEVICE_STATE: u32 = 0xc000_0184;
}

/// SRB statuses (`vm_srb.srb_status`), with the flag bits
/// [`srb::AUTOSENSE_VALID`] and [`srb::QUEUE_FROZEN`] or'ed in.
pub mod srb {
    /// The command completed.
    pub const SUCCESS: u8 = 0x01;
    /// The command was aborted.
    pub const ABORTED: u8 = 0x02;
    /// The command failed; the SCSI status says how.
    pub const ERROR: u8 = 0x04;
    /// The SRB itself is malformed.
    pub const INVALID_REQUEST: u8 = 0x06;
    /// No such LUN.
    pub const INVALID_LUN: u8 = 0x20;
    /// The host failed internally.
    pub const INTERNAL_ERROR: u8 = 0x30;
    /// `sense_data` holds valid sense.
    pub const AUTOSENSE_VALID: u8 = 0x80;
    /// The queue is frozen.
    pub const QUEUE_FROZEN: u8 = 0x40;
    /// Mask of the status without its flag bits.
    pub const STATUS_MASK: u8 = 0x3f;

    /// `srb_flags`: data moves from the device to the guest.
    pub const FLAGS_DATA_IN: u32 = 0x40;
    /// `srb_flags`: data moves from the guest to the device.
    pub const FLAGS_DATA_OUT: u32 = 0x80;
}

/// `vm_srb.data_in`: which way the data moves.
pub mod direction {
    /// Guest to device.
    pub const WRITE: u8 = 0;
    /// Device to guest.
    pub const READ: u8 = 1;
    /// No data or not said.
    pub const UNKNOWN: u8 = 2;
}

/// Length of the CDB/sense union in [`VmscsiRequest`].
pub const SENSE_BUFFER_SIZE: usize = 0x14;
/// Longest CDB.
pub const MAX_CDB_LENGTH: usize = 16;

/// A SCSI request or its completion (`struct vmscsi_request`, Windows 8
/// and later).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VmscsiRequest {
    /// Size of this structure ([`VMSCSI_REQUEST_SIZE`]).
    pub length: u16,
    /// [`srb`] status (completion).
    pub srb_status: u8,
    /// SAM status (completion): GOOD 0, CHECK CONDITION 2, ...
    pub scsi_status: u8,
    /// Port (the controller).
    pub port_number: u8,
    /// Path (channel).
    pub path_id: u8,
    /// Target.
    pub target_id: u8,
    /// LUN.
    pub lun: u8,
    /// Bytes of `payload` that are the CDB (request).
    pub cdb_length: u8,
    /// Bytes of sense the guest can take (request); bytes of sense in
    /// `payload` (completion).
    pub sense_info_length: u8,
    /// [`direction`] of the data.
    pub data_in: u8,
    /// Reserved.
    pub reserved: u8,
    /// Bytes to move (request); bytes moved (completion).
    pub data_transfer_length: u32,
    /// The CDB (request) or the sense data (completion).
    pub payload: [u8; SENSE_BUFFER_SIZE],
    /// Reserved.
    pub reserve: u16,
    /// Queue tag.
    pub queue_tag: u8,
    /// Queue action.
    pub queue_action: u8,
    /// [`srb`] `FLAGS_*`.
    pub srb_flags: u32,
    /// Timeout in seconds.
    pub time_out_value: u32,
    /// Queue sort key.
    pub queue_sort_key: u32,
}

/// Size of [`VmscsiRequest`].
pub const VMSCSI_REQUEST_SIZE: usize = core::mem::size_of::<VmscsiRequest>();
const _: () = assert!(VMSCSI_REQUEST_SIZE == 0x34);

/// The channel's properties, the answer to QUERY_PROPERTIES
/// (`struct vmstorage_channel_properties`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ChannelProperties {
    /// Reserved.
    pub reserved: u32,
    /// Most sub-channels the guest may ask for.
    pub max_channel_cnt: u16,
    /// Reserved.
    pub reserved1: u16,
    /// [`PROPERTY_MULTI_CHANNEL`].
    pub flags: u32,
    /// Largest transfer of one request, in bytes.
    pub max_transfer_bytes: u32,
    /// Reserved.
    pub reserved2: u64,
}

/// [`ChannelProperties::flags`]: the host offers sub-channels.
pub const PROPERTY_MULTI_CHANNEL: u32 = 0x1;
const _: () = assert!(core::mem::size_of::<ChannelProperties>() == 24);

/// Size of a packet's body (the union after operation, flags and status).
pub const BODY_SIZE: usize = 0x34;

/// One protocol packet (`struct vstor_packet`), 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VstorPacket {
    /// An [`operation`].
    pub operation: u32,
    /// [`REQUEST_COMPLETION_FLAG`].
    pub flags: u32,
    /// A [`status`] (completions).
    pub status: u32,
    /// The operation's body: a [`VmscsiRequest`], [`ChannelProperties`],
    /// a version (`u16 major_minor, u16 revision`) or a sub-channel count
    /// (`u16`).
    pub body: [u8; BODY_SIZE],
}

/// Size of [`VstorPacket`].
pub const VSTOR_PACKET_SIZE: usize = core::mem::size_of::<VstorPacket>();
const _: () = assert!(VSTOR_PACKET_SIZE == 64);

impl VstorPacket {
    /// A completion (COMPLETE_IO) with `status` and an empty body.
    pub fn completion(status: u32) -> Self {
        Self {
            operation: operation::COMPLETE_IO,
            flags: 0,
            status,
            body: [0; BODY_SIZE],
        }
    }

    /// A request of `operation`, completion requested, empty body.
    pub fn request(operation: u32) -> Self {
        Self {
            operation,
            flags: REQUEST_COMPLETION_FLAG,
            status: 0,
            body: [0; BODY_SIZE],
        }
    }

    /// This packet with `value`'s bytes at the start of the body.
    pub fn with_body<T: zerocopy::IntoBytes + zerocopy::Immutable>(mut self, value: &T) -> Self {
        let bytes = value.as_bytes();
        let n = bytes.len().min(BODY_SIZE);
        self.body[..n].copy_from_slice(&bytes[..n]);
        self
    }

    /// The body read as a `T` (which fits: all of the body's users do).
    pub fn body_as<T: zerocopy::FromBytes>(&self) -> Option<T> {
        super::message::read_prefix(&self.body)
    }

    /// Reads a packet from a ring packet's data (which may be longer);
    /// `None` if it is too short.
    pub fn from_data(data: &[u8]) -> Option<Self> {
        super::message::read_prefix(data)
    }

    /// A QUERY_PROTOCOL_VERSION request for `version`.
    pub fn query_version(version: VstorVersion) -> Self {
        Self::request(operation::QUERY_PROTOCOL_VERSION).with_body(&[version.0, 0u16])
    }

    /// A CREATE_SUB_CHANNELS request for `count`.
    pub fn create_sub_channels(count: u16) -> Self {
        Self::request(operation::CREATE_SUB_CHANNELS).with_body(&count)
    }
}

/// What a guest asks for, parsed and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VstorRequest {
    /// BEGIN_INITIALIZATION.
    BeginInitialization,
    /// END_INITIALIZATION.
    EndInitialization,
    /// QUERY_PROTOCOL_VERSION.
    QueryProtocolVersion(VstorVersion),
    /// QUERY_PROPERTIES.
    QueryProperties,
    /// CREATE_SUB_CHANNELS, with the count asked for.
    CreateSubChannels(u16),
    /// EXECUTE_SRB: a SCSI command.
    ExecuteSrb(VmscsiRequest),
    /// RESET_LUN, RESET_ADAPTER or RESET_BUS (the operation).
    Reset(u32),
    /// An operation a guest does not send (COMPLETE_IO, the host's
    /// unsolicited ones, FCHBA_DATA on a SCSI controller, unknown numbers).
    Unsupported(u32),
}

/// Why a guest's packet is not a VSTOR request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VstorError {
    /// Shorter than a [`VstorPacket`] (the length).
    Short(usize),
    /// An SRB whose `length` is not [`VMSCSI_REQUEST_SIZE`].
    SrbLength(u16),
    /// An SRB whose `cdb_length` is 0 or over [`MAX_CDB_LENGTH`].
    CdbLength(u8),
    /// An SRB whose `data_in` is not a [`direction`].
    Direction(u8),
}

impl core::fmt::Display for VstorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short(n) => write!(
                f,
                "packet of {n} bytes, a VSTOR packet has {VSTOR_PACKET_SIZE}"
            ),
            Self::SrbLength(n) => {
                write!(f, "SRB length {n}, expected {VMSCSI_REQUEST_SIZE}")
            }
            Self::CdbLength(n) => write!(f, "CDB length {n}, expected 1..={MAX_CDB_LENGTH}"),
            Self::Direction(d) => write!(f, "data direction {d}, expected 0, 1 or 2"),
        }
    }
}

/// Parses a guest's request from a packet's data. Longer data is accepted
/// (Linux pads nothing today, but older guests sent longer init packets);
/// only the first [`VSTOR_PACKET_SIZE`] bytes count.
pub fn parse_request(data: &[u8]) -> Result<(VstorPacket, VstorRequest), VstorError> {
    let packet = VstorPacket::from_data(data).ok_or(VstorError::Short(data.len()))?;
    let u16_at = |i: usize| u16::from_le_bytes([packet.body[i], packet.body[i + 1]]);
    let request = match packet.operation {
        operation::BEGIN_INITIALIZATION => VstorRequest::BeginInitialization,
        operation::END_INITIALIZATION => VstorRequest::EndInitialization,
        operation::QUERY_PROTOCOL_VERSION => {
            VstorRequest::QueryProtocolVersion(VstorVersion(u16_at(0)))
        }
        operation::QUERY_PROPERTIES => VstorRequest::QueryProperties,
        operation::CREATE_SUB_CHANNELS => VstorRequest::CreateSubChannels(u16_at(0)),
        operation::EXECUTE_SRB => {
            let srb: VmscsiRequest = packet.body_as().ok_or(VstorError::Short(data.len()))?;
            if usize::from(srb.length) != VMSCSI_REQUEST_SIZE {
                return Err(VstorError::SrbLength(srb.length));
            }
            if srb.cdb_length == 0 || usize::from(srb.cdb_length) > MAX_CDB_LENGTH {
                return Err(VstorError::CdbLength(srb.cdb_length));
            }
            if srb.data_in > direction::UNKNOWN {
                return Err(VstorError::Direction(srb.data_in));
            }
            VstorRequest::ExecuteSrb(srb)
        }
        op @ (operation::RESET_LUN | operation::RESET_ADAPTER | operation::RESET_BUS) => {
            VstorRequest::Reset(op)
        }
        op => VstorRequest::Unsupported(op),
    };
    Ok((packet, request))
}

impl VmscsiRequest {
    /// The CDB (a parsed request's `cdb_length` is in range).
    pub fn cdb(&self) -> &[u8] {
        let n = usize::from(self.cdb_length).min(MAX_CDB_LENGTH);
        &self.payload[..n]
    }

    /// A SCSI request for `cdb` (at most [`MAX_CDB_LENGTH`] bytes are
    /// taken) moving `length` bytes in `data_in`'s direction, to
    /// target 0, `lun`.
    pub fn command(lun: u8, cdb: &[u8], data_in: u8, length: u32) -> Self {
        let n = cdb.len().min(MAX_CDB_LENGTH);
        let mut payload = [0; SENSE_BUFFER_SIZE];
        payload[..n].copy_from_slice(&cdb[..n]);
        Self {
            length: VMSCSI_REQUEST_SIZE as u16,
            lun,
            cdb_length: n as u8,
            sense_info_length: SENSE_BUFFER_SIZE as u8,
            data_in,
            data_transfer_length: length,
            payload,
            srb_flags: match data_in {
                direction::READ => srb::FLAGS_DATA_IN,
                direction::WRITE if length > 0 => srb::FLAGS_DATA_OUT,
                _ => 0,
            },
            time_out_value: 60,
            ..Self::default()
        }
    }

    /// This request's completion: `srb_status`, `scsi_status`, `moved`
    /// bytes, and `sense` (at most [`SENSE_BUFFER_SIZE`] bytes, which set
    /// [`srb::AUTOSENSE_VALID`]) in place of the CDB.
    pub fn completed(&self, srb_status: u8, scsi_status: u8, moved: u32, sense: &[u8]) -> Self {
        let n = sense.len().min(SENSE_BUFFER_SIZE);
        let mut payload = [0; SENSE_BUFFER_SIZE];
        payload[..n].copy_from_slice(&sense[..n]);
        Self {
            srb_status: if n > 0 {
                srb_status | srb::AUTOSENSE_VALID
            } else {
                srb_status
            },
            scsi_status,
            sense_info_length: n as u8,
            data_transfer_length: moved,
            payload,
            ..*self
        }
    }

    /// The sense data of a completion (as long as it says, at most the
    /// buffer).
    pub fn sense(&self) -> &[u8] {
        let n = usize::from(self.sense_info_length).min(SENSE_BUFFER_SIZE);
        &self.payload[..n]
    }
}

/// What a completed SCSI request means to a block driver: the classes of
/// block error Linux's SCSI layer maps sense data to (`scsi_check_sense`,
/// `scsi_result_to_blk_status`), so a disk driven here fails a request as
/// the same disk behind storvsc would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, every byte moved.
    Done,
    /// An error a retry or another path will not fix but the device can
    /// say no more of (`BLK_STS_IOERR`).
    IoError,
    /// The target refused the command itself: invalid opcode, field or
    /// LBA out of range (`BLK_STS_TARGET`).
    Target,
    /// A thin-provisioned device ran out of space (`BLK_STS_NOSPC`).
    NoSpace,
    /// The medium could not be read or written (`BLK_STS_MEDIUM`).
    Medium,
}

impl VmscsiRequest {
    /// The outcome of this completion of a request that was to move
    /// `expected` bytes. A request the host reports done but with fewer
    /// bytes moved is an I/O error: a disk transfers whole requests.
    /// Sense data counts only with `CHECK CONDITION` and the autosense
    /// bit, and only as many bytes as both sides allow.
    pub fn outcome(&self, expected: u32) -> Outcome {
        use super::scsi::{asc, sense_key, status, Sense};
        let srb = self.srb_status & srb::STATUS_MASK;
        if srb == srb::SUCCESS && self.scsi_status == status::GOOD {
            return if self.data_transfer_length == expected {
                Outcome::Done
            } else {
                Outcome::IoError
            };
        }
        if self.scsi_status != status::CHECK_CONDITION
            || self.srb_status & srb::AUTOSENSE_VALID == 0
        {
            return Outcome::IoError;
        }
        let n = usize::from(self.sense_info_length).min(SENSE_BUFFER_SIZE);
        let Some(sense) = Sense::parse(&self.payload[..n]) else {
            return Outcome::IoError;
        };
        let (code, _) = sense.code;
        match sense.key {
            sense_key::MEDIUM_ERROR if matches!(code, 0x11 | 0x13 | 0x14) => Outcome::Medium,
            sense_key::DATA_PROTECT if sense.code == asc::SPACE_ALLOCATION_FAILED => {
                Outcome::NoSpace
            }
            sense_key::ILLEGAL_REQUEST
                if matches!(code, 0x20 | 0x21 | 0x22 | 0x24 | 0x26 | 0x27) =>
            {
                Outcome::Target
            }
            _ => Outcome::IoError,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn completions_map_to_block_outcomes() {
        use crate::scsi::{asc, sense_key, status, Sense};
        let req = VmscsiRequest::command(0, &[0x88; 16], direction::READ, 4096);
        let done = req.completed(srb::SUCCESS, status::GOOD, 4096, &[]);
        assert_eq!(done.outcome(4096), Outcome::Done);
        // Short: the disk did not move the whole request.
        assert_eq!(done.outcome(8192), Outcome::IoError);
        let with = |key, code| {
            let sense = Sense::new(key, code).to_bytes();
            req.completed(srb::ERROR, status::CHECK_CONDITION, 0, &sense)
        };
        assert_eq!(
            with(sense_key::MEDIUM_ERROR, asc::UNRECOVERED_READ_ERROR).outcome(4096),
            Outcome::Medium
        );
        assert_eq!(
            with(sense_key::DATA_PROTECT, asc::SPACE_ALLOCATION_FAILED).outcome(4096),
            Outcome::NoSpace
        );
        assert_eq!(
            with(sense_key::DATA_PROTECT, asc::WRITE_PROTECTED).outcome(4096),
            Outcome::IoError
        );
        assert_eq!(
            with(sense_key::ILLEGAL_REQUEST, asc::LBA_OUT_OF_RANGE).outcome(4096),
            Outcome::Target
        );
        assert_eq!(
            with(sense_key::HARDWARE_ERROR, asc::INTERNAL_TARGET_FAILURE).outcome(4096),
            Outcome::IoError
        );
        // Sense without the autosense bit, or without CHECK CONDITION, is
        // not read.
        let mut no_auto = with(sense_key::MEDIUM_ERROR, asc::UNRECOVERED_READ_ERROR);
        no_auto.srb_status &= !srb::AUTOSENSE_VALID;
        assert_eq!(no_auto.outcome(4096), Outcome::IoError);
        let mut busy = no_auto;
        busy.scsi_status = status::BUSY;
        assert_eq!(busy.outcome(4096), Outcome::IoError);
        // A sense length past the buffer is clamped, garbage sense is an
        // I/O error.
        let mut long = with(sense_key::MEDIUM_ERROR, asc::UNRECOVERED_READ_ERROR);
        long.sense_info_length = 0xff;
        assert_eq!(long.outcome(4096), Outcome::Medium);
        let garbage = req.completed(srb::ERROR, status::CHECK_CONDITION, 0, &[0x12; 20]);
        assert_eq!(garbage.outcome(4096), Outcome::IoError);
    }

    use super::*;
    use proptest::prelude::*;
    use zerocopy::IntoBytes as _;

    #[test]
    fn layouts_match_linux() {
        // Offsets of struct vmscsi_request in storvsc_drv.c.
        let r = VmscsiRequest {
            data_transfer_length: 0x11223344,
            srb_flags: 0x55667788,
            queue_sort_key: 0x99aabbcc,
            ..VmscsiRequest::default()
        };
        let b = r.as_bytes();
        assert_eq!(&b[12..16], &0x11223344u32.to_le_bytes());
        assert_eq!(&b[40..44], &0x55667788u32.to_le_bytes());
        assert_eq!(&b[48..52], &0x99aabbccu32.to_le_bytes());
        let p = VstorPacket::completion(7).with_body(&ChannelProperties {
            max_channel_cnt: 3,
            flags: PROPERTY_MULTI_CHANNEL,
            max_transfer_bytes: 0x80000,
            ..ChannelProperties::default()
        });
        let b = p.as_bytes();
        assert_eq!(&b[0..4], &1u32.to_le_bytes());
        assert_eq!(&b[8..12], &7u32.to_le_bytes());
        // max_channel_cnt at body offset 4, flags 8, max_transfer_bytes 12.
        assert_eq!(&b[16..18], &3u16.to_le_bytes());
        assert_eq!(&b[20..24], &1u32.to_le_bytes());
        assert_eq!(&b[24..28], &0x80000u32.to_le_bytes());
    }

    #[test]
    fn parses_the_init_sequence() {
        let begin = VstorPacket::request(operation::BEGIN_INITIALIZATION);
        assert_eq!(
            parse_request(begin.as_bytes()).map(|(_, r)| r),
            Ok(VstorRequest::BeginInitialization)
        );
        let v = VstorPacket::query_version(VstorVersion::WIN10);
        assert_eq!(
            parse_request(v.as_bytes()).map(|(_, r)| r),
            Ok(VstorRequest::QueryProtocolVersion(VstorVersion(0x0602)))
        );
        let s = VstorPacket::create_sub_channels(3);
        assert_eq!(
            parse_request(s.as_bytes()).map(|(_, r)| r),
            Ok(VstorRequest::CreateSubChannels(3))
        );
        // Longer data is fine; shorter is not.
        let mut long = s.as_bytes().to_vec();
        long.extend_from_slice(&[0xff; 8]);
        assert!(parse_request(&long).is_ok());
        assert_eq!(parse_request(&long[..63]), Err(VstorError::Short(63)));
        let odd = VstorPacket::request(0x77);
        assert_eq!(
            parse_request(odd.as_bytes()).map(|(_, r)| r),
            Ok(VstorRequest::Unsupported(0x77))
        );
    }

    #[test]
    fn srbs_are_checked() {
        let srb =
            VmscsiRequest::command(1, &[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0], direction::READ, 4096);
        assert_eq!(srb.cdb(), &[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0]);
        assert_eq!(srb.srb_flags, srb::FLAGS_DATA_IN);
        let p = VstorPacket::request(operation::EXECUTE_SRB).with_body(&srb);
        assert_eq!(
            parse_request(p.as_bytes()).map(|(_, r)| r),
            Ok(VstorRequest::ExecuteSrb(srb))
        );
        let bad = |f: &dyn Fn(&mut VmscsiRequest)| {
            let mut s = srb;
            f(&mut s);
            parse_request(
                VstorPacket::request(operation::EXECUTE_SRB)
                    .with_body(&s)
                    .as_bytes(),
            )
            .map(|(_, r)| r)
        };
        assert_eq!(bad(&|s| s.length = 0x24), Err(VstorError::SrbLength(0x24)));
        assert_eq!(bad(&|s| s.cdb_length = 0), Err(VstorError::CdbLength(0)));
        assert_eq!(bad(&|s| s.cdb_length = 17), Err(VstorError::CdbLength(17)));
        assert_eq!(bad(&|s| s.data_in = 3), Err(VstorError::Direction(3)));
    }

    #[test]
    fn completions_carry_sense_and_autosense() {
        let srb = VmscsiRequest::command(0, &[0x2a; 10], direction::WRITE, 512);
        let sense = [
            0x70, 0, 0x07, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x27, 0, 0, 0, 0, 0,
        ];
        let done = srb.completed(srb::ERROR, 2, 0, &sense);
        assert_eq!(done.srb_status, srb::ERROR | srb::AUTOSENSE_VALID);
        assert_eq!(done.sense(), &sense);
        assert_eq!(done.lun, 0);
        let ok = srb.completed(srb::SUCCESS, 0, 512, &[]);
        assert_eq!(ok.srb_status, srb::SUCCESS);
        assert_eq!(ok.sense(), &[] as &[u8]);
        assert_eq!(ok.data_transfer_length, 512);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(data in proptest::collection::vec(any::<u8>(), 0..160)) {
            match parse_request(&data) {
                Ok((packet, VstorRequest::ExecuteSrb(srb))) => {
                    prop_assert_eq!(packet.operation, operation::EXECUTE_SRB);
                    prop_assert!(!srb.cdb().is_empty() && srb.cdb().len() <= MAX_CDB_LENGTH);
                    prop_assert!(srb.data_in <= direction::UNKNOWN);
                }
                Ok(_) => prop_assert!(data.len() >= VSTOR_PACKET_SIZE),
                Err(VstorError::Short(n)) => prop_assert!(n < VSTOR_PACKET_SIZE && n == data.len()),
                Err(_) => prop_assert!(data.len() >= VSTOR_PACKET_SIZE),
            }
        }

        #[test]
        fn srb_round_trips(lun in any::<u8>(), cdb in proptest::collection::vec(any::<u8>(), 1..=16),
                           dir in 0u8..=2, len in any::<u32>()) {
            let srb = VmscsiRequest::command(lun, &cdb, dir, len);
            let p = VstorPacket::request(operation::EXECUTE_SRB).with_body(&srb);
            let (_, r) = parse_request(p.as_bytes()).expect("valid");
            prop_assert_eq!(r, VstorRequest::ExecuteSrb(srb));
            prop_assert_eq!(srb.cdb(), &cdb[..]);
        }
    }
}
