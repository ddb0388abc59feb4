// SPDX-License-Identifier: GPL-2.0

//! The integration-component (IC) drivers: heartbeat, shutdown, timesync.
//!
//! Each service is an auxiliary driver ([`IcDriver`], in sysfs
//! `hv_guest_heartbeat.hv_guest_heartbeat` and so on, registered by
//! [`super::Drivers`]) bound through the auxiliary bus to the channel
//! devices of its class (`hv_guest.heartbeat.N`, `.shutdown.N`,
//! `.timesync.N`; the names are the contract's, `vmbus::guid`).
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

use core::fmt::{self, Formatter};

use core::marker::PhantomData;

use kernel::auxiliary;
use kernel::device::Core as DeviceCore;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_mutex, Arc, Mutex};

use crate::bus::channel::{Channel, ChannelHandler};
use crate::bus::device::{channel_of, Binding, MODULE_NAME};
use crate::vmbus::guid;
use crate::vmbus::ic::{
    icflags, parse_message, IcMsgType, IcNegotiate, IcVersion, FRAMEWORK_VERSIONS, HV_E_FAIL,
    HV_S_OK, ICMSG_HDR, MAX_VERSION_COUNT,
};
use crate::vmbus::packet::{PacketFlags, PacketType};

/// Ring pages of an IC channel, each way, header included (Linux's
/// `HV_UTIL_RING_SEND_SIZE`: a header and three pages of data).
const IC_RING_PAGES: usize = 4;

kernel::auxiliary_device_table!(
    HEARTBEAT_IDS,
    (),
    [(auxiliary::DeviceId::new(MODULE_NAME, guid::HEARTBEAT_CLASS.name), ())]
);
kernel::auxiliary_device_table!(
    SHUTDOWN_IDS,
    (),
    [(auxiliary::DeviceId::new(MODULE_NAME, guid::SHUTDOWN_CLASS.name), ())]
);
kernel::auxiliary_device_table!(
    TIMESYNC_IDS,
    (),
    [(auxiliary::DeviceId::new(MODULE_NAME, guid::TIMESYNC_CLASS.name), ())]
);

/// The auxiliary driver of IC service `S`: probing opens the channel with
/// the service as its handler; unbinding closes it.
pub(crate) struct IcDriver<S>(PhantomData<S>);

impl<S: IcService> auxiliary::Driver for IcDriver<S> {
    type IdInfo = ();
    type Data<'bound> = Binding;

    const ID_TABLE: auxiliary::IdTable<()> = S::ID_TABLE;

    fn probe<'bound>(
        adev: &'bound auxiliary::Device<DeviceCore<'_>>,
        _info: &'bound (),
    ) -> impl PinInit<Binding, Error> + 'bound {
        let ch = channel_of(adev)?;
        probe::<S>(&ch)?;
        Ok(Binding::new(ch, S::NAME))
    }
}

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
    /// The auxiliary device IDs its driver matches.
    const ID_TABLE: auxiliary::IdTable<()>;
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

/// What the utility drivers did, one `key=value` record per service
/// (debugfs `vmbus/ic`).
pub(crate) fn show(f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "service=heartbeat beats={} last_seq={}",
        heartbeat::BEATS.load(Relaxed),
        heartbeat::LAST_SEQ.load(Relaxed)
    )?;
    writeln!(
        f,
        "service=shutdown requests={}",
        shutdown::REQUESTS.load(Relaxed)
    )?;
    writeln!(
        f,
        "service=timesync samples={} applied={} offset_ns={} last_flags={}",
        timesync::SAMPLES.load(Relaxed),
        timesync::APPLIED.load(Relaxed),
        timesync::OFFSET_NS.load(Relaxed),
        timesync::LAST_FLAGS.load(Relaxed)
    )
}
