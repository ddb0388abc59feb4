// SPDX-License-Identifier: GPL-2.0

//! Integration components (ICs: heartbeat, shutdown, timesync, ...): the
//! message framework the utility services speak inside their channel's
//! in-band packets (`include/linux/hyperv.h`, `drivers/hv/hv_util.c`,
//! `vmbus_prep_negotiate_resp` in `drivers/hv/channel_mgmt.c`).
//!
//! Every IC message is a [`PipeHeader`], an [`IcMsgHeader`] and a
//! type-specific body. The host sends requests (`icflags` TRANSACTION |
//! REQUEST); the guest answers each one in place, in a packet with the
//! request's transaction ID, the same length, and `icflags` TRANSACTION |
//! RESPONSE. The first exchange on every IC channel is NEGOTIATE: the host
//! lists the framework and message versions it speaks, the guest answers
//! with one of each (or zero counts: no common version).
//!
//! Values from the other side are data: [`parse_message`] and
//! [`parse_negotiate`] check every length and count before use.

use core::mem::size_of;

use zerocopy::IntoBytes as _;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::message::read_prefix;

/// `struct vmbuspipe_hdr`: the pipe header in front of every IC message.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct PipeHeader {
    /// Pipe flags; Linux ignores them and echoes them back.
    pub flags: u32,
    /// Bytes of IC message after this header.
    pub msgsize: u32,
}
const _: () = assert!(size_of::<PipeHeader>() == 8);

/// `struct ic_version`: a major.minor pair.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IcVersion {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
}
const _: () = assert!(size_of::<IcVersion>() == 4);

impl IcVersion {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl core::fmt::Display for IcVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// An IC message type (`ICMSGTYPE_*`). Unknown values are data.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct IcMsgType(pub u16);

impl IcMsgType {
    /// Version negotiation, the first message on every IC channel.
    pub const NEGOTIATE: Self = Self(0);
    /// Heartbeat.
    pub const HEARTBEAT: Self = Self(1);
    /// Key-value pair exchange.
    pub const KVPEXCHANGE: Self = Self(2);
    /// Shutdown, restart or hibernate request.
    pub const SHUTDOWN: Self = Self(3);
    /// Time sample.
    pub const TIMESYNC: Self = Self(4);
    /// Volume shadow copy.
    pub const VSS: Self = Self(5);
    /// File copy.
    pub const FCOPY: Self = Self(7);
}

/// `icflags` bits (`ICMSGHDRFLAG_*`).
pub mod icflags {
    /// Part of a request/response transaction.
    pub const TRANSACTION: u8 = 1;
    /// A request (host to guest).
    pub const REQUEST: u8 = 2;
    /// A response (guest to host).
    pub const RESPONSE: u8 = 4;
}

/// `HV_S_OK`: the status of a request that succeeded.
pub const HV_S_OK: u32 = 0;
/// `HV_E_FAIL`: the status of a request that failed.
pub const HV_E_FAIL: u32 = 0x8000_4005;

/// `struct icmsg_hdr`, 20 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IcMsgHeader {
    /// The framework version in use.
    pub icverframe: IcVersion,
    /// What the body is.
    pub icmsgtype: IcMsgType,
    /// The message (service) version in use.
    pub icvermsg: IcVersion,
    /// Bytes of body (Linux sets 0x10 in a negotiate response).
    pub icmsgsize: u16,
    /// [`HV_S_OK`] or a failure, set by the responder.
    pub status: u32,
    /// Transaction number (unused by Linux).
    pub ictransaction_id: u8,
    /// [`icflags`].
    pub icflags: u8,
    /// Reserved.
    pub reserved: [u8; 2],
}
const _: () = assert!(size_of::<IcMsgHeader>() == 20);

/// Bytes in front of every IC body (`ICMSG_HDR`): 28.
pub const ICMSG_HDR: usize = size_of::<PipeHeader>() + size_of::<IcMsgHeader>();
const _: () = assert!(ICMSG_HDR == 28);

/// The fixed part of `struct icmsg_negotiate`, 8 bytes; the framework
/// versions and then the message versions ([`IcVersion`] each) follow.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IcNegotiate {
    /// Framework versions listed.
    pub icframe_vercnt: u16,
    /// Message versions listed after them.
    pub icmsg_vercnt: u16,
    /// Reserved.
    pub reserved: u32,
}
const _: () = assert!(size_of::<IcNegotiate>() == 8);

/// The most versions of each kind Linux accepts in a negotiate request
/// (`IC_VERSION_NEGOTIATION_MAX_VER_COUNT`).
pub const MAX_VERSION_COUNT: usize = 100;

/// `struct heartbeat_msg_data`, 40 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HeartbeatMsg {
    /// The host's sequence number; the guest answers with it plus one.
    pub seq_num: u64,
    /// Reserved.
    pub reserved: [u32; 8],
}
const _: () = assert!(size_of::<HeartbeatMsg>() == 40);

/// Bytes of the message text in a shutdown request.
pub const SHUTDOWN_MESSAGE_LEN: usize = 2048;

/// `struct shutdown_msg_data`, 2060 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ShutdownMsg {
    /// Why (free-form for the guest's log).
    pub reason_code: u32,
    /// Seconds the host will wait.
    pub timeout_seconds: u32,
    /// [`shutdown_flags`].
    pub flags: u32,
    /// A message to display (UTF-16 in Hyper-V; Linux ignores it).
    pub display_message: [u8; SHUTDOWN_MESSAGE_LEN],
}
const _: () = assert!(size_of::<ShutdownMsg>() == 2060);

/// `flags` of a shutdown request, as Linux reads them.
pub mod shutdown_flags {
    /// Shut down (power off).
    pub const SHUTDOWN: u32 = 0;
    /// Do it by force (Linux always does).
    pub const FORCE: u32 = 1;
    /// Restart.
    pub const RESTART: u32 = 2;
    /// Hibernate.
    pub const HIBERNATE: u32 = 4;
}

/// `flags` of a time sample (`ICTIMESYNCFLAG_*`).
pub mod timesync_flags {
    /// A probe.
    pub const PROBE: u8 = 0;
    /// Set the clock to this (after boot or restore): Linux obeys.
    pub const SYNC: u8 = 1;
    /// A sample the guest may use to discipline its clock.
    pub const SAMPLE: u8 = 2;
}

/// 100 ns intervals from 1601-01-01 (the Windows epoch of `parenttime`)
/// to 1970-01-01 (`WLTIMEDELTA`).
pub const WLTIMEDELTA: u64 = 116_444_736_000_000_000;

/// `struct ictimesync_data` (message versions below 4.0), 25 bytes packed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C, packed)]
pub struct TimesyncMsg {
    /// Host time, 100 ns since 1601.
    pub parenttime: u64,
    /// Unused by Linux.
    pub childtime: u64,
    /// Unused by Linux.
    pub roundtriptime: u64,
    /// [`timesync_flags`].
    pub flags: u8,
}
const _: () = assert!(size_of::<TimesyncMsg>() == 25);

/// `struct ictimesync_ref_data` (message version 4.0), 22 bytes packed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C, packed)]
pub struct TimesyncRefMsg {
    /// Host time, 100 ns since 1601.
    pub parenttime: u64,
    /// The partition reference time (TIME_REF_COUNT) when `parenttime` was
    /// taken, so the guest can add the delay since.
    pub vmreferencetime: u64,
    /// [`timesync_flags`].
    pub flags: u8,
    /// Leap second flags.
    pub leapflags: u8,
    /// NTP stratum.
    pub stratum: u8,
    /// Reserved.
    pub reserved: [u8; 3],
}
const _: () = assert!(size_of::<TimesyncRefMsg>() == 22);

/// Framework versions (`UTIL_FW_VERSION` 3.0, `UTIL_WS2K8_FW_VERSION` 1.0).
pub const FRAMEWORK_VERSIONS: [IcVersion; 2] = [IcVersion::new(3, 0), IcVersion::new(1, 0)];
/// Heartbeat message versions Linux knows (`hb_versions`).
pub const HEARTBEAT_VERSIONS: [IcVersion; 2] = [IcVersion::new(3, 0), IcVersion::new(1, 0)];
/// Shutdown message versions Linux knows (`sd_versions`).
pub const SHUTDOWN_VERSIONS: [IcVersion; 4] = [
    IcVersion::new(3, 2),
    IcVersion::new(3, 1),
    IcVersion::new(3, 0),
    IcVersion::new(1, 0),
];
/// Timesync message versions Linux knows (`ts_versions`); from 4.0 on the
/// sample is a [`TimesyncRefMsg`].
pub const TIMESYNC_VERSIONS: [IcVersion; 3] = [
    IcVersion::new(4, 0),
    IcVersion::new(3, 0),
    IcVersion::new(1, 0),
];

/// Why bytes are not a usable IC message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcError {
    /// Shorter than the headers, or than the body its type needs.
    TooShort {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// A negotiate message listing more versions than allowed or than fit.
    BadVersionCounts {
        /// Framework versions claimed.
        frame: u16,
        /// Message versions claimed.
        msg: u16,
    },
    /// The output buffer is too small.
    NoRoom {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        room: usize,
    },
}

impl core::fmt::Display for IcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TooShort { need, got } => write!(f, "IC message of {} bytes, need {}", got, need),
            Self::BadVersionCounts { frame, msg } => {
                write!(
                    f,
                    "IC negotiate lists {} framework and {} message versions",
                    frame, msg
                )
            }
            Self::NoRoom { need, room } => {
                write!(f, "IC message needs {} bytes, room for {}", need, room)
            }
        }
    }
}

/// An IC message checked for its headers: the headers copied out, the body
/// borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcMessage<'a> {
    /// The pipe header.
    pub pipe: PipeHeader,
    /// The IC header.
    pub header: IcMsgHeader,
    /// Everything after the headers.
    pub body: &'a [u8],
}

impl IcMessage<'_> {
    /// Reads the body as a `T` if it is long enough.
    pub fn body_as<T: zerocopy::FromBytes>(&self) -> Result<T, IcError> {
        read_prefix(self.body).ok_or(IcError::TooShort {
            need: ICMSG_HDR + size_of::<T>(),
            got: ICMSG_HDR + self.body.len(),
        })
    }

    /// Whether the guest marked this as a response.
    pub fn is_response(&self) -> bool {
        self.header.icflags & icflags::RESPONSE != 0
    }
}

/// Parses the packet data of an IC channel (what follows the packet
/// descriptor).
pub fn parse_message(data: &[u8]) -> Result<IcMessage<'_>, IcError> {
    let too_short = IcError::TooShort {
        need: ICMSG_HDR,
        got: data.len(),
    };
    let pipe: PipeHeader = read_prefix(data).ok_or(too_short)?;
    let header: IcMsgHeader = read_prefix(&data[size_of::<PipeHeader>()..]).ok_or(too_short)?;
    Ok(IcMessage {
        pipe,
        header,
        body: &data[ICMSG_HDR..],
    })
}

/// The outcome of a negotiation as the guest answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiated {
    /// Both sides speak these versions.
    Versions {
        /// Framework version.
        framework: IcVersion,
        /// Message (service) version.
        message: IcVersion,
    },
    /// No common version (the guest answered with zero counts).
    NoCommonVersion,
}

/// Reads a negotiate answer's body: one framework and one message version,
/// or zero counts. Counts beyond what fits are an error.
pub fn parse_negotiate(body: &[u8]) -> Result<Negotiated, IcError> {
    let n: IcNegotiate = read_prefix(body).ok_or(IcError::TooShort {
        need: ICMSG_HDR + size_of::<IcNegotiate>(),
        got: ICMSG_HDR + body.len(),
    })?;
    let (frame, msg) = (n.icframe_vercnt, n.icmsg_vercnt);
    if frame == 0 || msg == 0 {
        return Ok(Negotiated::NoCommonVersion);
    }
    let count = usize::from(frame) + usize::from(msg);
    if usize::from(frame) > MAX_VERSION_COUNT || usize::from(msg) > MAX_VERSION_COUNT {
        return Err(IcError::BadVersionCounts { frame, msg });
    }
    let versions = &body[size_of::<IcNegotiate>()..];
    if versions.len() < count * size_of::<IcVersion>() {
        return Err(IcError::BadVersionCounts { frame, msg });
    }
    // Linux puts the chosen framework version first and the chosen message
    // version second, whatever the counts say.
    let framework: IcVersion =
        read_prefix(versions).ok_or(IcError::BadVersionCounts { frame, msg })?;
    let message: IcVersion = read_prefix(&versions[size_of::<IcVersion>()..])
        .ok_or(IcError::BadVersionCounts { frame, msg })?;
    Ok(Negotiated::Versions { framework, message })
}

/// Writes pipe header, IC header and `body` to the start of `buf`; the
/// pipe header's `msgsize` and `icmsgsize` are filled in. Returns the length.
pub fn encode_message(
    header: &IcMsgHeader,
    body: &[&[u8]],
    buf: &mut [u8],
) -> Result<usize, IcError> {
    let body_len = body.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
    let need = ICMSG_HDR.saturating_add(body_len);
    if need > buf.len() || body_len > usize::from(u16::MAX) {
        return Err(IcError::NoRoom {
            need,
            room: buf.len(),
        });
    }
    let pipe = PipeHeader {
        flags: 0,
        msgsize: (need - size_of::<PipeHeader>()) as u32,
    };
    let mut h = *header;
    h.icmsgsize = body_len as u16;
    buf[..size_of::<PipeHeader>()].copy_from_slice(pipe.as_bytes());
    buf[size_of::<PipeHeader>()..ICMSG_HDR].copy_from_slice(h.as_bytes());
    let mut pos = ICMSG_HDR;
    for b in body {
        buf[pos..pos + b.len()].copy_from_slice(b);
        pos += b.len();
    }
    Ok(need)
}

/// Writes a NEGOTIATE request listing `frameworks` and `messages` (the
/// sender's preference first) into `buf`; returns the length.
pub fn encode_negotiate(
    frameworks: &[IcVersion],
    messages: &[IcVersion],
    buf: &mut [u8],
) -> Result<usize, IcError> {
    let (frame, msg) = (frameworks.len(), messages.len());
    if frame == 0 || msg == 0 || frame > MAX_VERSION_COUNT || msg > MAX_VERSION_COUNT {
        return Err(IcError::BadVersionCounts {
            frame: frame as u16,
            msg: msg as u16,
        });
    }
    let n = IcNegotiate {
        icframe_vercnt: frame as u16,
        icmsg_vercnt: msg as u16,
        reserved: 0,
    };
    let header = IcMsgHeader {
        icverframe: frameworks[0],
        icmsgtype: IcMsgType::NEGOTIATE,
        icvermsg: messages[0],
        icflags: icflags::TRANSACTION | icflags::REQUEST,
        ..Default::default()
    };
    encode_message(
        &header,
        &[n.as_bytes(), frameworks.as_bytes(), messages.as_bytes()],
        buf,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layouts_match_hyperv_h() {
        assert_eq!(offset_of!(IcMsgHeader, icmsgtype), 4);
        assert_eq!(offset_of!(IcMsgHeader, icvermsg), 6);
        assert_eq!(offset_of!(IcMsgHeader, icmsgsize), 10);
        assert_eq!(offset_of!(IcMsgHeader, status), 12);
        assert_eq!(offset_of!(IcMsgHeader, ictransaction_id), 16);
        assert_eq!(offset_of!(IcMsgHeader, icflags), 17);
        assert_eq!(offset_of!(TimesyncRefMsg, flags), 16);
        assert_eq!(offset_of!(TimesyncMsg, flags), 24);
        assert_eq!(offset_of!(ShutdownMsg, flags), 8);
        // ICMSG_NEGOTIATE_PKT_SIZE(2, 2) of the request Linux answers.
        assert_eq!(
            ICMSG_HDR + size_of::<IcNegotiate>() + 4 * size_of::<IcVersion>(),
            52
        );
    }

    /// Linux's `vmbus_prep_negotiate_resp`, reduced: pick the first of the
    /// guest's versions the host lists, answer in place.
    fn linux_answer(buf: &mut [u8], fw: &[IcVersion], srv: &[IcVersion]) {
        let n: IcNegotiate = read_prefix(&buf[ICMSG_HDR..]).expect("negotiate");
        let list: &[u8] = &buf[ICMSG_HDR + 8..];
        let ver = |i: usize| -> IcVersion { read_prefix(&list[i * 4..]).expect("version") };
        let f = fw
            .iter()
            .find(|v| (0..n.icframe_vercnt as usize).any(|i| ver(i) == **v))
            .copied();
        let m = srv
            .iter()
            .find(|v| {
                (n.icframe_vercnt as usize..(n.icframe_vercnt + n.icmsg_vercnt) as usize)
                    .any(|i| ver(i) == **v)
            })
            .copied();
        let (fc, mc, f, m) = match (f, m) {
            (Some(f), Some(m)) => (1u16, 1u16, f, m),
            _ => (0, 0, IcVersion::default(), IcVersion::default()),
        };
        buf[ICMSG_HDR..ICMSG_HDR + 2].copy_from_slice(&fc.to_le_bytes());
        buf[ICMSG_HDR + 2..ICMSG_HDR + 4].copy_from_slice(&mc.to_le_bytes());
        buf[ICMSG_HDR + 8..ICMSG_HDR + 12].copy_from_slice(f.as_bytes());
        buf[ICMSG_HDR + 12..ICMSG_HDR + 16].copy_from_slice(m.as_bytes());
        buf[8 + 17] = icflags::TRANSACTION | icflags::RESPONSE;
    }

    #[test]
    fn negotiate_round_trip_with_linux_rules() {
        let mut buf = [0u8; 256];
        let len =
            encode_negotiate(&FRAMEWORK_VERSIONS, &SHUTDOWN_VERSIONS, &mut buf).expect("fits");
        assert_eq!(len, ICMSG_HDR + 8 + 6 * 4);
        let m = parse_message(&buf[..len]).expect("parses");
        assert_eq!(m.header.icmsgtype, IcMsgType::NEGOTIATE);
        assert_eq!(m.pipe.msgsize as usize, len - 8);
        assert!(!m.is_response());
        linux_answer(
            &mut buf,
            &FRAMEWORK_VERSIONS,
            &[IcVersion::new(3, 2), IcVersion::new(3, 1)],
        );
        let m = parse_message(&buf[..len]).expect("parses");
        assert!(m.is_response());
        assert_eq!(
            parse_negotiate(m.body),
            Ok(Negotiated::Versions {
                framework: IcVersion::new(3, 0),
                message: IcVersion::new(3, 2)
            })
        );
        linux_answer(&mut buf, &FRAMEWORK_VERSIONS, &[IcVersion::new(9, 9)]);
        assert_eq!(
            parse_negotiate(&buf[ICMSG_HDR..len]),
            Ok(Negotiated::NoCommonVersion)
        );
    }

    #[test]
    fn hostile_inputs_are_errors() {
        assert_eq!(
            parse_message(&[0; 27]),
            Err(IcError::TooShort { need: 28, got: 27 })
        );
        let mut body = [0u8; 16];
        body[0] = 101;
        body[2] = 1;
        assert_eq!(
            parse_negotiate(&body),
            Err(IcError::BadVersionCounts { frame: 101, msg: 1 })
        );
        body[0] = 2;
        body[2] = 2;
        assert_eq!(
            parse_negotiate(&body),
            Err(IcError::BadVersionCounts { frame: 2, msg: 2 })
        );
        assert!(parse_negotiate(&body[..7]).is_err());
        assert!(encode_negotiate(&[], &HEARTBEAT_VERSIONS, &mut [0; 64]).is_err());
        assert!(encode_negotiate(&FRAMEWORK_VERSIONS, &HEARTBEAT_VERSIONS, &mut [0; 40]).is_err());
        let m = parse_message(&[0u8; 30]).expect("headers");
        assert!(m.body_as::<HeartbeatMsg>().is_err());
    }
}
