// SPDX-License-Identifier: GPL-2.0

//! The integration-component (IC) drivers: heartbeat, shutdown, timesync.
//!
//! [`DRIVERS`] is the table the bus matches offers against by class GUID.
//! Every IC speaks the same framework (`vmbus::ic`): the host sends a
//! request in an in-band packet, the guest answers in place (same length,
//! same transaction ID, `icflags` TRANSACTION | RESPONSE). The first
//! request is NEGOTIATE: the guest picks the first framework and message
//! version of its own lists that the host also lists, as Linux's
//! `vmbus_prep_negotiate_resp` does, or answers with zero counts.
//! Service messages before a successful negotiation, or shorter than the
//! negotiated version's body, are answered with `HV_E_FAIL` and logged.

pub(crate) mod heartbeat;
pub(crate) mod shutdown;
pub(crate) mod timesync;

use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_mutex, Arc, Mutex};

use crate::bus::channel::{Channel, ChannelHandler};
use crate::vmbus::guid::{self, Guid};
use crate::vmbus::ic::{
    icflags, parse_message, IcMsgType, IcNegotiate, IcVersion, FRAMEWORK_VERSIONS, HV_E_FAIL,
    HV_S_OK, ICMSG_HDR, MAX_VERSION_COUNT,
};
use crate::vmbus::packet::{PacketFlags, PacketType};

/// Ring pages of an IC channel, each way, header included (Linux's
/// `HV_UTIL_RING_SEND_SIZE`: a header and three pages of data).
const IC_RING_PAGES: usize = 4;

/// A driver: the class it binds to and how.
pub(crate) struct DriverEntry {
    pub(crate) name: &'static str,
    pub(crate) class: Guid,
    pub(crate) probe: fn(&Arc<Channel>) -> Result,
}

/// Every driver of this module.
pub(crate) static DRIVERS: [DriverEntry; 3] = [
    DriverEntry {
        name: "heartbeat",
        class: guid::HEARTBEAT,
        probe: probe::<heartbeat::Heartbeat>,
    },
    DriverEntry {
        name: "shutdown",
        class: guid::SHUTDOWN,
        probe: probe::<shutdown::Shutdown>,
    },
    DriverEntry {
        name: "timesync",
        class: guid::TIMESYNC,
        probe: probe::<timesync::Timesync>,
    },
];

/// What a service does after its response went out.
pub(crate) enum After {
    Nothing,
    PowerOff,
    Reboot,
}

/// One IC service.
pub(crate) trait IcService: Send + Sync + Sized + 'static {
    /// Log name.
    const NAME: &'static str;
    /// The message type it serves.
    const MSG_TYPE: IcMsgType;
    /// Message versions it speaks, preferred first.
    const VERSIONS: &'static [IcVersion];
    fn new() -> Self;
    /// Handles a request body (after the IC headers; writable, answered
    /// in place) of the negotiated `version`; returns the status for the
    /// response and what to do once it is sent.
    fn handle(&self, version: IcVersion, body: &mut [u8]) -> (u32, After);
}

/// The channel handler of an IC service.
#[pin_data]
struct IcChannel<S: IcService> {
    service: S,
    /// The negotiated message version.
    #[pin]
    version: Mutex<Option<IcVersion>>,
    errors: Atomic<u64>,
}

fn probe<S: IcService>(ch: &Arc<Channel>) -> Result {
    let handler = Arc::pin_init(
        pin_init!(IcChannel::<S> {
            service: S::new(),
            version <- new_mutex!(None, "hv_guest_ic_version"),
            errors: Atomic::new(0),
        }),
        GFP_KERNEL,
    )?;
    ch.open(IC_RING_PAGES, IC_RING_PAGES, handler)
}

fn read_version(b: &[u8], i: usize) -> Option<IcVersion> {
    let at = core::mem::size_of::<IcNegotiate>() + i * 4;
    let v = b.get(at..at + 4)?;
    Some(IcVersion::new(
        u16::from_le_bytes([v[0], v[1]]),
        u16::from_le_bytes([v[2], v[3]]),
    ))
}

/// Answers a NEGOTIATE body in place; returns the message version agreed.
fn negotiate(body: &mut [u8], ours: &[IcVersion]) -> Result<Option<IcVersion>> {
    let n = core::mem::size_of::<IcNegotiate>();
    // The answer needs the fixed part and two versions.
    if body.len() < n + 8 {
        return Err(EINVAL);
    }
    let frame = usize::from(u16::from_le_bytes([body[0], body[1]]));
    let msg = usize::from(u16::from_le_bytes([body[2], body[3]]));
    if frame > MAX_VERSION_COUNT || msg > MAX_VERSION_COUNT || body.len() < n + 4 * (frame + msg) {
        return Err(EINVAL);
    }
    let pick = |list: &[IcVersion], from: usize, count: usize| {
        list.iter()
            .copied()
            .find(|v| (from..from + count).any(|i| read_version(body, i) == Some(*v)))
    };
    let chosen = match (pick(&FRAMEWORK_VERSIONS, 0, frame), pick(ours, frame, msg)) {
        (Some(f), Some(m)) => Some((f, m)),
        _ => None,
    };
    let (count, f, m) = match chosen {
        Some((f, m)) => (1u16, f, m),
        None => (0, IcVersion::new(0, 0), IcVersion::new(0, 0)),
    };
    body[0..2].copy_from_slice(&count.to_le_bytes());
    body[2..4].copy_from_slice(&count.to_le_bytes());
    body[n..n + 2].copy_from_slice(&f.major.to_le_bytes());
    body[n + 2..n + 4].copy_from_slice(&f.minor.to_le_bytes());
    body[n + 4..n + 6].copy_from_slice(&m.major.to_le_bytes());
    body[n + 6..n + 8].copy_from_slice(&m.minor.to_le_bytes());
    Ok(chosen.map(|(_, m)| m))
}

/// Offsets in the IC header (after the 8-byte pipe header).
const ICMSGSIZE_AT: usize = 8 + 10;
const STATUS_AT: usize = 8 + 12;
const ICFLAGS_AT: usize = 8 + 17;

impl<S: IcService> ChannelHandler for IcChannel<S> {
    fn on_packet(&self, ch: &Arc<Channel>, pkt: &crate::vmbus::packet::Packet<'_>) {
        if pkt.desc.ty != PacketType::DATA_INBAND {
            self.errors.add(1, Relaxed);
            pr_err!("{}: unexpected packet type {:?}\n", S::NAME, pkt.desc.ty);
            return;
        }
        let data = pkt.data();
        let mut resp = KVec::new();
        if resp.extend_from_slice(data, GFP_KERNEL).is_err() {
            return;
        }
        let header = match parse_message(&resp) {
            Ok(m) => m.header,
            Err(e) => {
                self.errors.add(1, Relaxed);
                pr_err!("{}: rejected message: {}\n", S::NAME, e);
                return;
            }
        };
        let body = &mut resp[ICMSG_HDR..];
        let mut status = HV_S_OK;
        let mut after = After::Nothing;
        if header.icmsgtype == IcMsgType::NEGOTIATE {
            match negotiate(body, S::VERSIONS) {
                Ok(Some(v)) => {
                    pr_info!("{}: IC version {} (framework {})\n", S::NAME, v, {
                        read_version(body, 0).unwrap_or(IcVersion::new(0, 0))
                    });
                    *self.version.lock() = Some(v);
                }
                Ok(None) => {
                    pr_err!("{}: no common IC version with the host\n", S::NAME);
                    *self.version.lock() = None;
                }
                Err(_) => {
                    self.errors.add(1, Relaxed);
                    pr_err!("{}: malformed NEGOTIATE ({} bytes)\n", S::NAME, data.len());
                    status = HV_E_FAIL;
                }
            }
            // Linux answers a negotiation with icmsgsize 0x10.
            resp[ICMSGSIZE_AT..ICMSGSIZE_AT + 2].copy_from_slice(&0x10u16.to_le_bytes());
        } else if header.icmsgtype == S::MSG_TYPE {
            let version = *self.version.lock();
            match version {
                Some(v) => (status, after) = self.service.handle(v, body),
                None => {
                    self.errors.add(1, Relaxed);
                    pr_err!("{}: request before version negotiation\n", S::NAME);
                    status = HV_E_FAIL;
                }
            }
        } else {
            self.errors.add(1, Relaxed);
            pr_err!(
                "{}: unknown IC message type {}\n",
                S::NAME,
                header.icmsgtype.0
            );
            status = HV_E_FAIL;
        }
        resp[STATUS_AT..STATUS_AT + 4].copy_from_slice(&status.to_le_bytes());
        resp[ICFLAGS_AT] = icflags::TRANSACTION | icflags::RESPONSE;
        if let Err(e) = ch.send_inband(pkt.desc.trans_id, PacketFlags::NONE, &resp) {
            pr_err!("{}: response not sent: {:?}\n", S::NAME, e);
        }
        match after {
            After::Nothing => {}
            After::PowerOff => crate::shim::orderly_poweroff(),
            After::Reboot => crate::shim::orderly_reboot(),
        }
    }
}
