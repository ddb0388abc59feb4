// SPDX-License-Identifier: GPL-2.0

//! The integration components (Hyper-V "utility" devices): the framework
//! every one of them speaks ([`IcDevice`]) and the services ([`heartbeat`],
//! [`shutdown`], [`timesync`]). Wire layouts are the shared `vmbus::ic`.
//!
//! The host drives: when the guest opens the channel, hvhost sends a
//! NEGOTIATE request listing the framework versions (3.0, 1.0) and the
//! service's message versions, newest first; the guest answers with one of
//! each (Linux: `vmbus_prep_negotiate_resp`). Only then does the service
//! send its own requests, stamped with the negotiated versions. Every
//! guest answer is matched by transaction ID; answers that are not
//! responses, do not parse or answer nothing outstanding are logged and
//! ignored (the channel stays open: an IC is advisory).

pub mod heartbeat;
pub mod shutdown;
pub mod timesync;

use std::time::Instant;

use vmbus::guid::Guid;
use vmbus::ic::{
    encode_negotiate, parse_message, parse_negotiate, IcMessage, IcMsgType, IcVersion, Negotiated,
    FRAMEWORK_VERSIONS,
};
use vmbus::packet::{Packet, PacketType};
use vmbus::ring::RingError;

use super::channel::ChannelIo;
use super::device::{CommandState, DeviceCommand, DeviceError, VmbusDevice};

/// The versions both sides agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcVersions {
    /// Framework version.
    pub framework: IcVersion,
    /// Message (service) version.
    pub message: IcVersion,
}

/// What a service wants to do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send the first `n` bytes of the buffer as a request.
    Send(usize),
    /// Nothing now; be polled again at this time (or only on events).
    Wait(Option<Instant>),
}

/// One integration service on top of the framework.
pub trait IcService: Send {
    /// Name for logs.
    fn name(&self) -> &'static str;
    /// Class GUID of the offer.
    fn class_id(&self) -> Guid;
    /// Instance GUID of the offer.
    fn instance_id(&self) -> Guid;
    /// Message versions hvhost speaks, preferred first.
    fn versions(&self) -> &'static [IcVersion];
    /// Negotiation finished with `versions`; requests may follow.
    fn ready(&mut self, versions: IcVersions, now: Instant);
    /// The next request, written into `buf`, or when to ask again.
    fn next_request(
        &mut self,
        versions: IcVersions,
        now: Instant,
        reference_time: u64,
        buf: &mut [u8],
    ) -> Next;
    /// The guest's answer to one of this service's requests.
    fn response(&mut self, msg: &IcMessage<'_>);
    /// The channel closed.
    fn closed(&mut self) {}
    /// A host command; whether this service takes it.
    fn command(&mut self, _cmd: DeviceCommand) -> bool {
        false
    }
    /// The service's counters as `key=value` fields (see
    /// [`VmbusDevice::counters`]).
    fn counters(&self) -> String {
        String::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    /// NEGOTIATE sent with this transaction ID.
    Negotiating(u64),
    Ready(IcVersions),
    /// The guest shares no version with hvhost.
    Refused,
}

/// The largest IC message hvhost sends (a shutdown request, 2088 bytes).
const MAX_REQUEST: usize = 4096;

/// A VMBus device running one integration service.
pub struct IcDevice<S> {
    service: S,
    state: State,
    next_trans_id: u64,
    buf: Vec<u8>,
}

impl<S: IcService> IcDevice<S> {
    /// The device for `service`.
    pub fn new(service: S) -> Self {
        Self {
            service,
            state: State::Closed,
            next_trans_id: 1,
            buf: vec![0; MAX_REQUEST],
        }
    }

    fn trans_id(&mut self) -> u64 {
        let t = self.next_trans_id;
        self.next_trans_id = self.next_trans_id.wrapping_add(1);
        t
    }

    fn send(
        &mut self,
        io: &mut ChannelIo<'_>,
        trans_id: u64,
        len: usize,
    ) -> Result<(), DeviceError> {
        match io.send_inband(trans_id, &self.buf[..len]) {
            Ok(()) => Ok(()),
            Err(RingError::Full { need, free }) => {
                log::warn!(
                    "vmbus: {}: the guest's ring is full ({free} bytes free, {need} needed); request dropped",
                    self.service.name()
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn on_message(&mut self, trans_id: u64, msg: &IcMessage<'_>, now: Instant) {
        let name = self.service.name();
        if !msg.is_response() {
            log::warn!(
                "vmbus: {name}: the guest sent a request (icflags {:#x}); ignored",
                msg.header.icflags
            );
            return;
        }
        match (self.state, msg.header.icmsgtype) {
            (State::Negotiating(t), IcMsgType::NEGOTIATE) if t == trans_id => {
                match parse_negotiate(msg.body) {
                    Ok(Negotiated::Versions { framework, message }) => {
                        let offered = self.service.versions().contains(&message)
                            && FRAMEWORK_VERSIONS.contains(&framework);
                        if !offered {
                            log::warn!(
                                "vmbus: {name}: the guest chose framework {framework}, message {message}, \
                                 which hvhost did not offer"
                            );
                            self.state = State::Refused;
                            return;
                        }
                        log::info!("vmbus: {name}: negotiated framework {framework}, message version {message}");
                        let v = IcVersions { framework, message };
                        self.state = State::Ready(v);
                        self.service.ready(v, now);
                    }
                    Ok(Negotiated::NoCommonVersion) => {
                        log::warn!("vmbus: {name}: the guest shares no version with hvhost");
                        self.state = State::Refused;
                    }
                    Err(e) => log::warn!("vmbus: {name}: bad negotiate answer: {e}"),
                }
            }
            (State::Ready(_), t) if t != IcMsgType::NEGOTIATE => self.service.response(msg),
            (state, t) => log::warn!(
                "vmbus: {name}: unexpected answer of type {} (transaction {trans_id}) in state {state:?}",
                t.0
            ),
        }
    }
}

impl<S: IcService> VmbusDevice for IcDevice<S> {
    fn name(&self) -> &'static str {
        self.service.name()
    }

    fn counters(&self) -> String {
        self.service.counters()
    }

    fn class_id(&self) -> Guid {
        self.service.class_id()
    }

    fn instance_id(&self) -> Guid {
        self.service.instance_id()
    }

    fn open(&mut self, io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        let len = encode_negotiate(&FRAMEWORK_VERSIONS, self.service.versions(), &mut self.buf)
            .map_err(|e| DeviceError::Protocol(e.to_string()))?;
        let t = self.trans_id();
        self.state = State::Negotiating(t);
        self.send(io, t, len)
    }

    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError> {
        let name = self.service.name();
        if packet.desc.ty != PacketType::DATA_INBAND {
            log::warn!(
                "vmbus: {name}: ignored a packet of type {:?}",
                packet.desc.ty
            );
            return Ok(());
        }
        match parse_message(packet.data()) {
            Ok(msg) => self.on_message(packet.desc.trans_id, &msg, io.now()),
            Err(e) => log::warn!("vmbus: {name}: ignored a packet: {e}"),
        }
        Ok(())
    }

    fn poll(&mut self, io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        let State::Ready(v) = self.state else {
            return Ok(None);
        };
        // A service sends at most a few requests per poll; the bound keeps
        // a buggy one from spinning.
        for _ in 0..8 {
            match self
                .service
                .next_request(v, io.now(), io.reference_time(), &mut self.buf)
            {
                Next::Send(len) => {
                    let t = self.trans_id();
                    self.send(io, t, len)?;
                }
                Next::Wait(at) => return Ok(at),
            }
        }
        Ok(Some(io.now()))
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.service.closed();
    }

    fn command(&mut self, cmd: DeviceCommand) -> Option<CommandState> {
        if !self.service.command(cmd) {
            return None;
        }
        Some(match self.state {
            State::Ready(_) => CommandState::Ready,
            State::Closed | State::Negotiating(_) => CommandState::Queued,
            State::Refused => CommandState::Refused,
        })
    }
}

/// A fixed instance GUID for hvhost's service number `n` (stable across
/// boots, so the guest sees the same device names every time).
pub const fn instance_guid(n: u8) -> Guid {
    Guid::from_fields(0x7473_6f68, 0x7668, 0x0000, [0x80, 0, 0, 0, 0, 0, 0, n])
}

/// Writes an IC request of `msgtype` with `body` into `buf`.
pub(crate) fn request(
    versions: IcVersions,
    msgtype: IcMsgType,
    body: &[u8],
    buf: &mut [u8],
) -> Option<usize> {
    let header = vmbus::ic::IcMsgHeader {
        icverframe: versions.framework,
        icmsgtype: msgtype,
        icvermsg: versions.message,
        icflags: vmbus::ic::icflags::TRANSACTION | vmbus::ic::icflags::REQUEST,
        ..Default::default()
    };
    vmbus::ic::encode_message(&header, &[body], buf).ok()
}
