// SPDX-License-Identifier: GPL-2.0

//! The VMBus server's state machine: the channel messages of
//! `include/linux/hyperv.h` as the host answers them, the channel table and
//! the GPADLs. It is plain data driven by one thread (the VMBus worker):
//! [`Server::handle_message`] for what the guest posts, [`Server::handle_signal`]
//! for a channel event, [`Server::poll`] for device timers. It reaches the
//! guest only through [`GuestPort`], so tests run it against a fake.
//!
//! Protocol, host side, as Linux 7.3's `hv_vmbus` drives it:
//! - INITIATE_CONTACT (connection 4 from 5.0, 1 before): the version is
//!   accepted if it is in the configured list (4.0 to 6.0 by default),
//!   arrived on its version's connection and, below 5.0, names a page of
//!   RAM as the interrupt page; else refused with `version_supported = 0`
//!   so the guest proposes the next one. Accepted: VERSION_RESPONSE (with
//!   `msg_conn_id` = 1 from 5.0) goes to the SINT 2 slot of `target_vcpu`,
//!   as every later message does; every later message must arrive on
//!   connection 1. A new
//!   INITIATE_CONTACT while connected starts over (channels closed, GPADLs
//!   dropped).
//! - REQUESTOFFERS: one OFFERCHANNEL per device (`monitor_allocated` = 0,
//!   `is_dedicated_interrupt` = 1, `connection_id` =
//!   [`CHANNEL_CONNECTION_BASE`] plus the relid; with
//!   [`Server::set_shared_interrupts`] below 5.0, `is_dedicated_interrupt` =
//!   0 and [`SHARED_EVENT_CONNECTION`]), then ALLOFFERS_DELIVERED.
//! - GPADL_HEADER/BODY: GPADL_CREATED once complete; a GPADL that is
//!   malformed, names an unknown relid or a page outside RAM is answered
//!   with a non-zero `creation_status` (Linux then fails the open).
//! - OPENCHANNEL: OPENCHANNEL_RESULT, status 0 if the relid is offered and
//!   closed, the GPADL is the channel's, single-range and splits into two
//!   rings at the downstream offset, and the target VP exists.
//! - CLOSECHANNEL (no answer), GPADL_TEARDOWN → GPADL_TORNDOWN,
//!   MODIFYCHANNEL (from 4.1) → MODIFYCHANNEL_RESPONSE from 5.3, RELID_RELEASED after a
//!   rescind, UNLOAD → UNLOAD_RESPONSE.
//!
//! A message that does not parse, names an unknown relid or comes in the
//! wrong state is logged and dropped; a channel whose ring or device fails
//! is closed on the host side with a logged error. Nothing a guest sends
//! stops the server or affects another channel.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use hvcall::hypercall::HvStatus;
use vmbus::message::{
    encode, encode_empty, ChannelMessage, ConnectionState, GpadlCreated, GpadlTorndown,
    InitiateContact, MessageType, ModifyChannelResponse, Offer, OfferChannel, OfferFlags,
    OpenChannel, OpenResult, RescindChannelOffer, TlConnectRequest, TlConnectResult,
    VersionResponse, MAX_MESSAGE_SIZE, MAX_USER_DEFINED_BYTES, MESSAGE_CONNECTION_ID,
};
use vmbus::parse::{parse, Message};
use vmbus::version::Version;

use super::channel::{ChannelFault, ChannelRings, ChannelWaker, Outcome};
use super::device::{CommandState, DeviceCommand, DiskHotplug, SocketService, VmbusDevice};
use super::gpadl::{GpadlTable, Progress};
pub use super::port::{Faults, GuestPort};

/// Channel event connections are this plus the relid.
pub const CHANNEL_CONNECTION_BASE: u32 = 0x1_0000;
/// The SINT VMBus messages and channel events use (`VMBUS_MESSAGE_SINT`).
pub const VMBUS_SINT: usize = vmbus::message::MESSAGE_SINT as usize;
/// Highest relid handed out (Linux's event flag scan covers 2048 bits).
pub const MAX_RELID: u32 = 2047;
/// The event connection every channel without a dedicated interrupt
/// signals (`VMBUS_EVENT_CONNECTION_ID`): the guest sets the channel's bit
/// in its interrupt page first.
pub const SHARED_EVENT_CONNECTION: u32 = 2;
/// What [`Server::handle_signal`] gets for [`SHARED_EVENT_CONNECTION`]:
/// not a relid (those end at [`MAX_RELID`]).
pub const SHARED_SIGNAL: u32 = u32::MAX;
/// Failure status in OPENCHANNEL_RESULT, GPADL_CREATED and
/// MODIFYCHANNEL_RESPONSE (`STATUS_UNSUCCESSFUL`).
pub const STATUS_UNSUCCESSFUL: u32 = 0xc000_0001;

/// The protocol state of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// No version negotiated (or after UNLOAD).
    Disconnected,
    /// Connected at `version`; messages go to VP `vp`.
    Connected {
        /// The version: every version-dependent step reads it, through
        /// [`Version`]'s predicates.
        version: Version,
        /// Where messages go.
        vp: u32,
        /// The message connection every guest message after the version
        /// response arrives on (1: hvhost names it from 5.0, and before
        /// 5.0 it is always 1).
        msg_conn: u32,
        /// Below 5.0, the GPA of the guest's interrupt page (its second
        /// half holds the guest-to-host bits of channels without a
        /// dedicated interrupt); `None` from 5.0.
        interrupt_page: Option<u64>,
    },
}

struct OpenState {
    gpadl: u32,
    /// Pages of the guest's send ring (where its receive ring starts).
    downstream: u32,
    target_vp: u32,
    rings: ChannelRings,
    next_poll: Option<Instant>,
    /// The last drain stopped at its budget: drain again.
    more: bool,
    /// The last drain stopped because the device took no more packets:
    /// the device's wake-up drains again.
    stalled: bool,
}

#[derive(PartialEq, Eq, Debug, Clone, Copy)]
enum Phase {
    /// Not offered in the current connection.
    Idle,
    /// Offered, closed.
    Offered,
    /// Open.
    Open,
    /// Rescinded; waiting for RELID_RELEASED.
    Rescinded,
}

struct Channel {
    stats: ChannelStats,
    /// hvhost closed the channel because the guest broke it; the guest,
    /// not told, closes it too when its driver lets go: that CLOSECHANNEL
    /// is expected, not dropped.
    closed_by_host: bool,
    connection_id: u32,
    /// Offered without a dedicated interrupt: signalled on
    /// [`SHARED_EVENT_CONNECTION`] with its bit in the interrupt page.
    shared: bool,
    device: Box<dyn VmbusDevice>,
    phase: Phase,
    open: Option<OpenState>,
    /// For a sub-channel: its primary's relid and its index (1..).
    sub_channel: Option<(u32, u16)>,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Offered => "offered",
            Phase::Open => "open",
            Phase::Rescinded => "rescinded",
        }
    }
}

/// What [`Server::run_channel`] does with a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The channel just opened: the device starts, then is polled.
    Open,
    /// Read what the guest sent, then poll.
    Drain,
    /// Only poll (timers, commands).
    Poll,
}

/// Counters for the exit summary and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages received (parsed or not).
    pub messages: u64,
    /// Messages dropped as malformed or out of place (refusals that the
    /// protocol answers are counted by kind below, not here).
    pub dropped: u64,
    /// Channel signals from the guest.
    pub signals: u64,
    /// Packets read from the guest's rings, and written to them.
    pub packets_in: u64,
    pub packets_out: u64,
    /// Times a drain looked for the guest's next packet before unmasking
    /// (`channel::POLL_BUDGET_NS`), and times it came.
    pub looks: u64,
    pub looks_found: u64,
    /// Times a device waited for room in the guest's ring and a poll
    /// looked for it (`ChannelRings::poll_device`), and times it came.
    pub room_looks: u64,
    pub room_looks_found: u64,
    /// Event flags set for the guest.
    pub notifications: u64,
    /// Channels closed because the guest broke something.
    pub faults: u64,
    /// INITIATE_CONTACTs accepted, and refused.
    pub contacts: u64,
    pub contacts_refused: u64,
    /// Channels offered (each offer, re-offers after a reconnect too).
    pub offers: u64,
    /// OPENCHANNELs accepted, and refused with a failure status.
    pub opens: u64,
    pub opens_refused: u64,
    /// Open channels closed, for any reason (CLOSECHANNEL, a fault, a
    /// removal, a disconnect).
    pub closes: u64,
    /// GPADLs created, refused (GPADL_CREATED with a failure status) and
    /// torn down.
    pub gpadls: u64,
    pub gpadls_refused: u64,
    pub gpadls_torn_down: u64,
    /// MODIFYCHANNELs carried out, and refused.
    pub modifies: u64,
    pub modifies_refused: u64,
    /// Channels rescinded, and relids the guest released.
    pub rescinds: u64,
    pub releases: u64,
    /// UNLOADs, and those that found no channel open and no GPADL left.
    pub unloads: u64,
    pub unloads_clean: u64,
    /// Sub-channels offered at a device's request.
    pub sub_channels: u64,
    /// Hyper-V socket connections the guest asked for (TL_CONNECT_REQUEST),
    /// and those refused (no service, no listener, the limit).
    pub socket_requests: u64,
    pub socket_refusals: u64,
    /// Socket offers withdrawn because the guest did not open them in time
    /// (no guest program listens on the port).
    pub socket_offers_expired: u64,
    /// Refusals not answered with TL_CONNECT_RESULT because the guest was
    /// behind with its messages (the answer is optional: Linux never reads
    /// it; the guest's connect then times out).
    pub socket_results_skipped: u64,
    /// Messages that waited in the backlog, and messages lost past it.
    pub backlogged: u64,
    pub lost: u64,
    /// The longest a guest message waited for the VMBus thread, in µs.
    pub message_wait_max_us: u64,
}

impl Stats {
    /// The counters as `key=value` fields, space-separated.
    pub fn fields(&self) -> String {
        format!(
            "messages={} dropped={} signals={} packets_in={} packets_out={} looks={} looks_found={} \
             room_looks={} room_looks_found={} \
             notifications={} faults={} contacts={} \
             contacts_refused={} offers={} opens={} opens_refused={} closes={} gpadls={} \
             gpadls_refused={} gpadls_torn_down={} modifies={} modifies_refused={} rescinds={} \
             releases={} unloads={} unloads_clean={} sub_channels={} socket_requests={} \
             socket_refusals={} socket_offers_expired={} socket_results_skipped={} backlogged={} \
             lost={} message_wait_max_us={}",
            self.messages,
            self.dropped,
            self.signals,
            self.packets_in,
            self.packets_out,
            self.looks,
            self.looks_found,
            self.room_looks,
            self.room_looks_found,
            self.notifications,
            self.faults,
            self.contacts,
            self.contacts_refused,
            self.offers,
            self.opens,
            self.opens_refused,
            self.closes,
            self.gpadls,
            self.gpadls_refused,
            self.gpadls_torn_down,
            self.modifies,
            self.modifies_refused,
            self.rescinds,
            self.releases,
            self.unloads,
            self.unloads_clean,
            self.sub_channels,
            self.socket_requests,
            self.socket_refusals,
            self.socket_offers_expired,
            self.socket_results_skipped,
            self.backlogged,
            self.lost,
            self.message_wait_max_us
        )
    }
}

/// Counters of one channel over its life (all its opens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    pub opens: u64,
    pub closes: u64,
    /// Closed because the guest broke its ring.
    pub faults: u64,
    /// Signals from the guest, and interrupts to it, over closed opens.
    pub guest_signals: u64,
    pub guest_interrupts: u64,
}

/// One device as [`Server::devices`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its relid.
    pub relid: u32,
    /// Its name.
    pub name: &'static str,
    /// `idle` (not offered: the guest is not connected), `offered`,
    /// `open` or `rescinded` (waiting for the guest's RELID_RELEASED).
    pub state: &'static str,
}

/// Why [`Server::remove_device`] did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoveError {
    /// No device has the relid.
    #[error("no device with relid {0}")]
    NoSuchRelid(u32),
    /// It is rescinded already, waiting for the guest to release it.
    #[error("relid {0} is already rescinded; waiting for the guest to release it")]
    AlreadyRescinded(u32),
}

/// What [`Server::remove_device`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Never offered to the guest (or it is not connected): gone now.
    Removed,
    /// Offered: the guest got RESCINDCHANNELOFFER; the relid is free once
    /// it releases it.
    Rescinded,
}

/// Why a host command cannot reach the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The guest has no VMBus connection (never connected, or unloaded).
    #[error("the guest has no VMBus connection")]
    NotConnected,
    /// No offered device takes the command.
    #[error("no device takes it")]
    NoDevice,
}

/// The VMBus server of one partition.
pub struct Server {
    guest: Arc<dyn GuestPort>,
    versions: Vec<Version>,
    conn: Connection,
    channels: BTreeMap<u32, Channel>,
    gpadls: GpadlTable,
    next_relid: u32,
    faults: Faults,
    stats: Stats,
    /// Offer channels without a dedicated interrupt when the guest named an
    /// interrupt page (below 5.0).
    shared_interrupts: bool,
    /// Open channels that signal on [`SHARED_EVENT_CONNECTION`].
    shared_open: u32,
    /// Where guest socket connections go (`--vsock`), if anywhere.
    sockets: Option<Box<dyn SocketService>>,
    /// Messages for the guest the SynIC had no room for yet, in order.
    backlog: VecDeque<(u32, Vec<u8>, MessageType)>,
}

/// Most messages the backlog keeps for a guest that does not read them;
/// past that they are lost (and that is an error in the log).
pub const MAX_BACKLOG: usize = 4096;

/// How soon the backlog is tried again while it is not empty.
const BACKLOG_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

/// Packets one channel may take per drain before others get a turn.
pub const DRAIN_BUDGET: usize = 256;

impl Server {
    /// A server that accepts exactly `versions` (hvhost: 4.0 to 6.0 unless
    /// `--vmbus-versions` says otherwise).
    pub fn new(guest: Arc<dyn GuestPort>, versions: Vec<Version>, faults: Faults) -> Self {
        Self {
            guest,
            versions,
            conn: Connection::Disconnected,
            channels: BTreeMap::new(),
            gpadls: GpadlTable::new(),
            next_relid: 1,
            faults,
            stats: Stats::default(),
            shared_interrupts: false,
            shared_open: 0,
            sockets: None,
            backlog: VecDeque::new(),
        }
    }

    /// Serves the guest's Hyper-V socket connections with `service`.
    pub fn set_socket_service(&mut self, service: Box<dyn SocketService>) {
        self.sockets = Some(service);
    }

    /// Offer channels without a dedicated interrupt to a guest connected
    /// below 5.0 (as Hyper-V hosts of that era may): it signals them all on
    /// [`SHARED_EVENT_CONNECTION`] and names the channel by its bit in the
    /// interrupt page. From 5.0, with no interrupt page, every channel keeps
    /// its own.
    pub fn set_shared_interrupts(&mut self, on: bool) {
        self.shared_interrupts = on;
    }

    /// The connection state.
    pub fn connection(&self) -> Connection {
        self.conn
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The counters as records, one per line, each field `key=value`: a
    /// `vmbus` record (the connection, the totals, then `extra`), then a
    /// `channel` record for each device (its relid, name, state and its
    /// counters over all its opens, the current one included).
    pub fn report(&self, extra: &str) -> String {
        let (version, page) = match self.conn {
            Connection::Connected {
                version,
                interrupt_page,
                ..
            } => (
                version.to_string(),
                interrupt_page.map_or("none".into(), |gpa| format!("{gpa:#x}")),
            ),
            Connection::Disconnected => ("none".into(), "none".into()),
        };
        let mut out = format!(
            "vmbus version={version} interrupt_page={page} channels={} gpadls_live={} {}{}{extra}\n",
            self.channels.len(),
            self.gpadls.len(),
            self.stats.fields(),
            if extra.is_empty() { "" } else { " " },
        );
        for (relid, c) in &self.channels {
            let (mut signals, mut interrupts) = (c.stats.guest_signals, c.stats.guest_interrupts);
            // The open rings' data bytes: the guest's to hvhost, hvhost's to the guest.
            let mut rings = String::new();
            if let Some(o) = &c.open {
                signals += o.rings.counts.guest_signals;
                interrupts += o.rings.counts.guest_interrupts;
                let (to_host, to_guest) = o.rings.ring_bytes();
                rings = format!(" ring_to_host={to_host} ring_to_guest={to_guest}");
            }
            let device = c.device.counters();
            out.push_str(&format!(
                "channel relid={relid} name={} sub_channel={} state={} opens={} closes={} faults={} \
                 guest_signals={signals} guest_interrupts={interrupts}{rings}{}{device}\n",
                c.device.name(),
                c.sub_channel.map_or(0, |(_, index)| index),
                c.phase.name(),
                c.stats.opens,
                c.stats.closes,
                c.stats.faults,
                if device.is_empty() { "" } else { " " },
            ));
        }
        out
    }

    /// Whether channel `relid` is open.
    pub fn is_open(&self, relid: u32) -> bool {
        self.channels.get(&relid).is_some_and(|c| c.open.is_some())
    }

    /// Number of established GPADLs.
    pub fn gpadl_count(&self) -> usize {
        self.gpadls.len()
    }

    /// Adds a device and returns its relid; offered at once if the guest is
    /// connected. `None` when relids are exhausted.
    pub fn add_device(&mut self, device: Box<dyn VmbusDevice>) -> Option<u32> {
        let relid = self.insert_channel(device, None)?;
        if self.is_connected() {
            self.offer(relid);
        }
        Some(relid)
    }

    /// Commits a socket fault (`hvctl vsock-fault`): what was done.
    pub fn socket_fault(&mut self, fault: crate::vsock::fault::Fault) -> Result<String, String> {
        let service = self
            .sockets
            .as_mut()
            .ok_or("no sockets (hvhost started without --vsock)")?;
        match service.fault(fault)? {
            None => Ok(format!(
                "fault {fault} armed for the next data packet to the guest"
            )),
            Some(device) => {
                let relid = self.add_socket(device)?;
                log::warn!(
                    "vmbus: relid {relid}: an offer no guest program asked for (hvctl vsock-fault)"
                );
                Ok(format!(
                    "relid {relid} offered; no guest program asked for it"
                ))
            }
        }
    }

    /// Adds and offers the device of a Hyper-V socket connection (a host
    /// program connecting to a guest listener); its relid, or why not.
    pub fn add_socket(&mut self, device: Box<dyn VmbusDevice>) -> Result<u32, String> {
        if device.socket().is_none() {
            return Err(format!("{} is not a socket", device.name()));
        }
        if !self.is_connected() {
            return Err("the guest has no VMBus connection".into());
        }
        self.add_device(device)
            .ok_or_else(|| "no relid left".into())
    }

    /// TL_CONNECT_REQUEST: a guest program connects to a host service.
    /// The service makes the connection's device, which is offered; a
    /// refusal is logged and, where the version has it, answered with
    /// TL_CONNECT_RESULT (Linux's `hv_sock` waits for an offer and times
    /// out either way).
    fn socket_request(&mut self, m: &TlConnectRequest) {
        self.stats.socket_requests += 1;
        let (endpoint, service) = (m.guest_endpoint_id, m.host_service_id);
        let result = match self.sockets.as_mut() {
            None => Err("no socket service (hvhost runs without --vsock)".to_string()),
            Some(s) => s.guest_connect(endpoint, service),
        }
        .and_then(|device| {
            self.add_device(device)
                .ok_or_else(|| "no relid left".into())
        });
        match result {
            Ok(relid) => log::info!(
                "vmbus: socket: guest endpoint {endpoint} connects to service {service}: relid \
                 {relid}"
            ),
            Err(why) => {
                self.stats.socket_refusals += 1;
                log::warn!(
                    "vmbus: socket: guest endpoint {endpoint} connects to service {service}: \
                     refused: {why}"
                );
                if !self.backlog.is_empty() {
                    // A guest flooding requests is behind with its
                    // messages: the optional answer must not crowd out
                    // offers and rescinds.
                    self.stats.socket_results_skipped += 1;
                } else if self.version().is_some_and(Version::has_tl_connect_result) {
                    self.send(&TlConnectResult {
                        guest_endpoint_id: endpoint,
                        host_service_id: service,
                        status: vmbus::hvsock::CONNECT_REFUSED,
                    });
                }
            }
        }
    }

    fn insert_channel(
        &mut self,
        device: Box<dyn VmbusDevice>,
        sub_channel: Option<(u32, u16)>,
    ) -> Option<u32> {
        // Relids go up and wrap: one the guest released is free again (a
        // socket connection takes one each), but not at once.
        let Some(relid) = (0..MAX_RELID)
            .map(|i| (self.next_relid - 1 + i) % MAX_RELID + 1)
            .find(|r| !self.channels.contains_key(r))
        else {
            log::error!("vmbus: no relid left for device {}", device.name());
            return None;
        };
        self.next_relid = relid % MAX_RELID + 1;
        log::debug!(
            "vmbus: device {} (class {}, instance {}) is relid {relid}",
            device.name(),
            device.class_id(),
            device.instance_id()
        );
        self.channels.insert(
            relid,
            Channel {
                stats: ChannelStats::default(),
                closed_by_host: false,
                connection_id: CHANNEL_CONNECTION_BASE + relid,
                shared: false,
                device,
                phase: Phase::Idle,
                open: None,
                sub_channel,
            },
        );
        Some(relid)
    }

    /// Offers the sub-channels the device of `primary` asked for (numbered
    /// on from its existing ones), while the primary is open and the guest
    /// connected; a sub-channel that finds no relid is logged and dropped.
    fn add_sub_channels(&mut self, primary: u32, devices: Vec<Box<dyn VmbusDevice>>) {
        for device in devices {
            if !self.is_connected() || !self.is_open(primary) {
                log::warn!("vmbus: sub-channel of relid {primary} asked for while it is closed");
                return;
            }
            let index = self
                .channels
                .values()
                .filter_map(|c| c.sub_channel)
                .filter(|(p, _)| *p == primary)
                .map(|(_, i)| i)
                .max()
                .unwrap_or(0)
                .saturating_add(1);
            let Some(relid) = self.insert_channel(device, Some((primary, index))) else {
                continue;
            };
            self.stats.sub_channels += 1;
            log::info!("vmbus: relid {relid} is sub-channel {index} of relid {primary}");
            self.offer(relid);
        }
    }

    /// Rescinds (or, if never offered, removes) every sub-channel of
    /// `primary`: they live as long as the primary is open.
    fn drop_sub_channels(&mut self, primary: u32) {
        let subs: Vec<u32> = self
            .channels
            .iter()
            .filter(|(_, c)| {
                c.sub_channel.is_some_and(|(p, _)| p == primary) && c.phase != Phase::Rescinded
            })
            .map(|(&r, _)| r)
            .collect();
        for relid in subs {
            if let Err(e) = self.remove_device(relid) {
                log::warn!("vmbus: sub-channel {relid} of {primary}: {e}");
            }
        }
    }

    /// Removes a device: closes its channel and, if the guest knows it,
    /// rescinds it (the relid is freed at RELID_RELEASED); a device the
    /// guest was not offered goes at once.
    pub fn remove_device(&mut self, relid: u32) -> Result<Removal, RemoveError> {
        let Some(phase) = self.channels.get(&relid).map(|c| c.phase) else {
            return Err(RemoveError::NoSuchRelid(relid));
        };
        self.close_channel(relid, "the device was removed");
        match phase {
            Phase::Idle => {
                if let Some(c) = self.channels.remove(&relid) {
                    log::info!("vmbus: device {} (relid {relid}) removed", c.device.name());
                }
                Ok(Removal::Removed)
            }
            Phase::Rescinded => Err(RemoveError::AlreadyRescinded(relid)),
            Phase::Offered | Phase::Open => {
                if let Some(c) = self.channels.get_mut(&relid) {
                    c.phase = Phase::Rescinded;
                    log::info!("vmbus: rescinding channel {relid} ({})", c.device.name());
                }
                self.stats.rescinds += 1;
                self.send(&RescindChannelOffer { child_relid: relid });
                Ok(Removal::Rescinded)
            }
        }
    }

    /// The devices, by relid.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.channels
            .iter()
            .map(|(&relid, c)| DeviceInfo {
                relid,
                name: c.device.name(),
                state: c.phase.name(),
            })
            .collect()
    }

    /// The relid of the first device called `name` that is not being
    /// removed.
    pub fn find_device(&self, name: &str) -> Option<u32> {
        self.channels
            .iter()
            .find(|(_, c)| c.device.name() == name && c.phase != Phase::Rescinded)
            .map(|(&relid, _)| relid)
    }

    /// Offers `cmd` to the devices: what became of it, from the first
    /// device that took it. A guest without a VMBus connection can get no
    /// request, so nothing is kept for it then.
    pub fn command(
        &mut self,
        cmd: DeviceCommand,
        now: Instant,
    ) -> Result<CommandState, CommandError> {
        if !self.is_connected() {
            return Err(CommandError::NotConnected);
        }
        let relids: Vec<u32> = self.channels.keys().copied().collect();
        for relid in relids {
            let state = self
                .channels
                .get_mut(&relid)
                .filter(|c| c.phase != Phase::Rescinded)
                .and_then(|c| c.device.command(cmd));
            if let Some(state) = state {
                if self.is_open(relid) {
                    self.run_channel(relid, now, Step::Poll);
                }
                return Ok(state);
            }
        }
        Err(CommandError::NoDevice)
    }

    /// Runs `f` on the disk controller's hot-plug interface, then polls
    /// the controller's channel (which tells the guest); `None` if there is
    /// no controller.
    pub fn with_disks<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut dyn DiskHotplug) -> R,
    ) -> Option<R> {
        let relid = self.channels.iter_mut().find_map(|(r, c)| {
            (c.sub_channel.is_none() && c.device.disks().is_some()).then_some(*r)
        })?;
        let r = f(self.channels.get_mut(&relid)?.device.disks()?);
        if self.is_open(relid) {
            self.run_channel(relid, now, Step::Poll);
        }
        Some(r)
    }

    /// A guest message waited `waited` in the VMBus thread's queue.
    pub fn note_message_wait(&mut self, waited: std::time::Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.stats.message_wait_max_us = self.stats.message_wait_max_us.max(us);
    }

    /// Whether a version was agreed (and no UNLOAD since).
    pub fn is_connected(&self) -> bool {
        matches!(self.conn, Connection::Connected { .. })
    }

    fn version(&self) -> Option<Version> {
        match self.conn {
            Connection::Connected { version, .. } => Some(version),
            Connection::Disconnected => None,
        }
    }

    fn message_connection(&self) -> u32 {
        match self.conn {
            Connection::Connected { msg_conn, .. } => msg_conn,
            Connection::Disconnected => MESSAGE_CONNECTION_ID,
        }
    }

    fn message_vp(&self) -> u32 {
        match self.conn {
            Connection::Connected { vp, .. } => vp,
            Connection::Disconnected => 0,
        }
    }

    /// Posts a message to VP `vp`. A guest that reads its messages slower
    /// than they come fills the SynIC's queue: what does not fit waits in
    /// the backlog and goes, in order, before anything newer (at the next
    /// send, or from [`Self::poll`]).
    fn post(&mut self, vp: u32, bytes: &[u8], what: MessageType) {
        self.flush_backlog();
        if self.backlog.is_empty() {
            match self.guest.post_message(vp, bytes) {
                Ok(()) => return,
                Err(HvStatus::INSUFFICIENT_BUFFERS) => {}
                Err(status) => {
                    log::warn!("vmbus: {what} to VP {vp} was not delivered: {status}");
                    return;
                }
            }
        }
        if self.backlog.len() >= MAX_BACKLOG {
            self.stats.lost += 1;
            log::error!(
                "vmbus: {what} to VP {vp} lost: the guest has not read {MAX_BACKLOG} messages"
            );
            return;
        }
        self.stats.backlogged += 1;
        self.backlog.push_back((vp, bytes.to_vec(), what));
    }

    /// Delivers what waits in the backlog while the SynIC takes it.
    fn flush_backlog(&mut self) {
        while let Some((vp, bytes, what)) = self.backlog.front() {
            match self.guest.post_message(*vp, bytes) {
                Ok(()) => {}
                Err(HvStatus::INSUFFICIENT_BUFFERS) => return,
                Err(status) => log::warn!("vmbus: {what} to VP {vp} was not delivered: {status}"),
            }
            self.backlog.pop_front();
        }
    }

    fn send<M: ChannelMessage>(&mut self, msg: &M) {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        match encode(msg, &mut buf) {
            Ok(n) => self.post(self.message_vp(), &buf[..n], M::TYPE),
            Err(e) => log::error!("vmbus: cannot encode {}: {e}", M::TYPE),
        }
    }

    fn send_empty(&mut self, t: MessageType) {
        let mut buf = [0u8; 8];
        if let Ok(n) = encode_empty(t, &mut buf) {
            self.post(self.message_vp(), &buf[..n], t);
        }
    }

    fn drop_message(&mut self, vp: u32, why: std::fmt::Arguments<'_>) {
        self.stats.dropped += 1;
        log::warn!("vmbus: VP {vp}: message dropped: {why}");
    }

    /// A message the guest posted on connection `connection` from VP `vp`.
    pub fn handle_message(&mut self, vp: u32, connection: u32, bytes: &[u8], now: Instant) {
        self.stats.messages += 1;
        let msg = match parse(bytes) {
            Ok(m) => m,
            Err(e) => return self.drop_message(vp, format_args!("{e}")),
        };
        log::trace!("vmbus: VP {vp} conn {connection}: {}", msg.msgtype());
        match msg {
            Message::InitiateContact(m) => self.initiate_contact(vp, connection, &m),
            _ if !self.is_connected() => self.drop_message(
                vp,
                format_args!("{} before a version was agreed", msg.msgtype()),
            ),
            _ if connection != self.message_connection() => self.drop_message(
                vp,
                format_args!(
                    "{} on connection {connection}; this connection's messages use {}",
                    msg.msgtype(),
                    self.message_connection()
                ),
            ),
            Message::RequestOffers => self.request_offers(),
            Message::GpadlHeader(view) => {
                let r = self.gpadls.header(&view, self.guest.memory().as_ref());
                let relid = view.header.child_relid;
                self.gpadl_progress(relid, view.header.gpadl, r);
            }
            Message::GpadlBody(view) => {
                let handle = view.body.gpadl;
                match self.gpadls.body(&view, self.guest.memory().as_ref()) {
                    Ok(p) => self.gpadl_progress(0, handle, Ok(p)),
                    Err((Some(relid), e)) => self.gpadl_progress(relid, handle, Err(e)),
                    Err((None, e)) => self.drop_message(vp, format_args!("{e}")),
                }
            }
            Message::GpadlTeardown(m) => self.gpadl_teardown(vp, m.child_relid, m.gpadl),
            Message::OpenChannel(m) => self.open_channel(&m, now),
            Message::CloseChannel(m) => {
                let phase = self.channels.get(&m.child_relid).map(|c| c.phase);
                let host_closed = self
                    .channels
                    .get_mut(&m.child_relid)
                    .is_some_and(|c| std::mem::take(&mut c.closed_by_host));
                if self.is_open(m.child_relid) {
                    self.close_channel(m.child_relid, "the guest closed it");
                    self.rescind_socket(m.child_relid, "the guest closed its channel");
                } else if host_closed {
                    log::debug!(
                        "vmbus: CLOSECHANNEL of relid {}, closed by hvhost after a fault",
                        m.child_relid
                    );
                } else if phase == Some(Phase::Rescinded) {
                    // The host closed it at the rescind; a guest's driver
                    // that was using it closes it as it unbinds.
                    log::debug!("vmbus: CLOSECHANNEL of rescinded relid {}", m.child_relid);
                } else {
                    self.drop_message(
                        vp,
                        format_args!("CLOSECHANNEL of relid {}, which is not open", m.child_relid),
                    );
                }
            }
            Message::ModifyChannel(m) => self.modify_channel(vp, m.child_relid, m.target_vp),
            Message::RelidReleased(m) => self.relid_released(vp, m.child_relid),
            Message::Unload => {
                let open = self.channels.values().filter(|c| c.open.is_some()).count();
                self.stats.unloads += 1;
                if open == 0 && self.gpadls.is_empty() {
                    self.stats.unloads_clean += 1;
                }
                log::info!(
                    "vmbus: the guest unloads VMBus ({open} channel(s) still open, {} GPADL(s) \
                     not torn down)",
                    self.gpadls.len()
                );
                self.disconnect();
                self.send_empty(MessageType::UNLOAD_RESPONSE);
            }
            Message::TlConnectRequest(m) => self.socket_request(&m),
            other => self.drop_message(
                vp,
                format_args!("{} is not a guest-to-host message", other.msgtype()),
            ),
        }
    }

    fn initiate_contact(&mut self, vp: u32, connection: u32, m: &InitiateContact) {
        let version = Version(m.vmbus_version_requested);
        let target = m.target_vcpu;
        let reply_vp = if target < self.guest.vp_count() {
            target
        } else {
            vp
        };
        if self.is_connected() {
            log::info!("vmbus: INITIATE_CONTACT while connected: starting over");
            self.disconnect();
        }
        let accepted = match self.check_contact(version, connection, m) {
            Ok(interrupt_page) => {
                self.conn = Connection::Connected {
                    version,
                    vp: target,
                    msg_conn: MESSAGE_CONNECTION_ID,
                    interrupt_page,
                };
                log::info!(
                    "vmbus: connected at version {version} (INITIATE_CONTACT on connection \
                     {connection}), messages to VP {target}{}",
                    match interrupt_page {
                        Some(gpa) => format!(", interrupt page at {gpa:#x}"),
                        None => String::new(),
                    }
                );
                self.stats.contacts += 1;
                true
            }
            Err(why) if !self.versions.contains(&version) => {
                log::info!("vmbus: refused version {version}: {why}");
                false
            }
            Err(why) => {
                log::warn!("vmbus: refused version {version}: {why}");
                false
            }
        };
        if !accepted {
            self.stats.contacts_refused += 1;
        }
        let response = VersionResponse {
            version_supported: u8::from(accepted),
            connection_state: if accepted {
                ConnectionState::SUCCESSFUL
            } else {
                ConnectionState::FAILED_UNKNOWN_FAILURE
            },
            padding: 0,
            // Before 5.0 the field is not read: every message uses 1.
            msg_conn_id: if accepted && version.response_names_connection() {
                MESSAGE_CONNECTION_ID
            } else {
                0
            },
        };
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        if let Ok(n) = encode(&response, &mut buf) {
            self.post(reply_vp, &buf[..n], MessageType::VERSION_RESPONSE);
        }
    }

    /// Whether INITIATE_CONTACT for `version`, posted on `connection`, can
    /// be accepted; `Ok` holds the interrupt page GPA below 5.0.
    fn check_contact(
        &self,
        version: Version,
        connection: u32,
        m: &InitiateContact,
    ) -> Result<Option<u64>, String> {
        if !self.versions.contains(&version) {
            return Err("not served (--vmbus-versions)".into());
        }
        if m.target_vcpu >= self.guest.vp_count() {
            return Err(format!("target VP {} does not exist", m.target_vcpu));
        }
        if connection != version.contact_connection() {
            return Err(format!(
                "proposed on connection {connection}; version {version} contacts on {}",
                version.contact_connection()
            ));
        }
        if !version.contact_names_sint() {
            let gpa = m.interrupt_page();
            let page = vmbus::message::HV_PAGE_SIZE;
            if gpa == 0 || !gpa.is_multiple_of(page) || !self.guest.memory().is_ram(gpa, page) {
                return Err(format!(
                    "interrupt page {gpa:#x} is not a page of guest RAM"
                ));
            }
            return Ok(Some(gpa));
        }
        if m.msg_sint as usize != VMBUS_SINT {
            log::warn!(
                "vmbus: the guest asks for messages on SINT {}; hvhost uses SINT {VMBUS_SINT}",
                m.msg_sint
            );
        }
        if version.has_feature_flags()
            && m.feature_flags & InitiateContact::FEATURE_CONFIDENTIAL_CHANNELS != 0
        {
            log::info!("vmbus: the guest offers confidential channels; hvhost has none");
        }
        Ok(None)
    }

    fn offer(&mut self, relid: u32) {
        let Some(c) = self.channels.get_mut(&relid) else {
            return;
        };
        if c.phase != Phase::Idle {
            return;
        }
        c.phase = Phase::Offered;
        let shared = self.shared_interrupts
            && matches!(
                self.conn,
                Connection::Connected {
                    interrupt_page: Some(_),
                    ..
                }
            );
        c.shared = shared;
        c.connection_id = if shared {
            SHARED_EVENT_CONNECTION
        } else {
            CHANNEL_CONNECTION_BASE + relid
        };
        let socket = c.device.socket();
        let msg = OfferChannel {
            offer: Offer {
                if_type: c.device.class_id(),
                if_instance: c.device.instance_id(),
                reserved: [0; 16],
                chn_flags: socket.map_or(OfferFlags(0), |s| s.flags()),
                mmio_megabytes: 0,
                user_def: socket.map_or([0; MAX_USER_DEFINED_BYTES], |s| s.user_defined()),
                sub_channel_index: c.sub_channel.map_or(0, |(_, index)| index),
                reserved3: 0,
            },
            child_relid: relid,
            monitorid: 0,
            monitor_flags: 0,
            // A dedicated interrupt: the channel has its own event
            // connection, and the guest need not set its bit in the
            // interrupt page.
            interrupt_flags: u16::from(!shared),
            connection_id: c.connection_id,
        };
        log::debug!("vmbus: offering {} as relid {relid}", c.device.name());
        self.stats.offers += 1;
        self.send(&msg);
    }

    fn request_offers(&mut self) {
        if std::mem::take(&mut self.faults.malformed_offer) {
            log::warn!("vmbus: fault injection: sending a truncated OFFERCHANNEL");
            let mut buf = [0u8; MAX_MESSAGE_SIZE];
            if let Ok(n) = encode_empty(MessageType::OFFERCHANNEL, &mut buf) {
                // Header and a few bytes: far below Linux's 196.
                self.post(self.message_vp(), &buf[..n + 8], MessageType::OFFERCHANNEL);
            }
        }
        let relids: Vec<u32> = self.channels.keys().copied().collect();
        for relid in relids {
            self.offer(relid);
        }
        self.send_empty(MessageType::ALLOFFERS_DELIVERED);
    }

    fn gpadl_progress(
        &mut self,
        relid: u32,
        handle: u32,
        r: Result<Progress, super::gpadl::GpadlRefusal>,
    ) {
        if std::mem::take(&mut self.faults.bogus_gpadl_reply) {
            log::warn!("vmbus: fault injection: GPADL_CREATED for a handle the guest never sent");
            self.send(&GpadlCreated {
                child_relid: relid,
                gpadl: handle ^ 0x8000_0000,
                creation_status: 0,
            });
        }
        match r {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Created { relid, handle }) => {
                let known = self
                    .channels
                    .get(&relid)
                    .is_some_and(|c| matches!(c.phase, Phase::Offered | Phase::Open));
                let status = if known {
                    log::debug!("vmbus: GPADL {handle:#x} created for relid {relid}");
                    self.stats.gpadls += 1;
                    0
                } else {
                    log::warn!("vmbus: GPADL {handle:#x} refused: relid {relid} is not offered");
                    self.stats.gpadls_refused += 1;
                    self.gpadls.teardown(handle);
                    STATUS_UNSUCCESSFUL
                };
                self.send(&GpadlCreated {
                    child_relid: relid,
                    gpadl: handle,
                    creation_status: status,
                });
            }
            Err(e) => {
                self.stats.gpadls_refused += 1;
                log::warn!("vmbus: GPADL refused for relid {relid}: {e}");
                self.send(&GpadlCreated {
                    child_relid: relid,
                    gpadl: handle,
                    creation_status: STATUS_UNSUCCESSFUL,
                });
            }
        }
    }

    fn gpadl_teardown(&mut self, vp: u32, relid: u32, handle: u32) {
        let in_use: Vec<u32> = self
            .channels
            .iter()
            .filter(|(_, c)| c.open.as_ref().is_some_and(|o| o.gpadl == handle))
            .map(|(r, _)| *r)
            .collect();
        for r in in_use {
            log::warn!("vmbus: GPADL {handle:#x} torn down while channel {r} uses it as its ring");
            self.close_channel(r, "its ring GPADL was torn down");
        }
        match self.gpadls.teardown(handle) {
            Some(g) if g.relid != relid => {
                self.stats.gpadls_torn_down += 1;
                log::warn!(
                    "vmbus: GPADL {handle:#x} of relid {} torn down naming relid {relid}",
                    g.relid
                );
            }
            Some(_) => {
                self.stats.gpadls_torn_down += 1;
                log::debug!("vmbus: GPADL {handle:#x} torn down");
            }
            // The guest waits for the answer whatever it sent: answer, so
            // a confused guest is not left hanging.
            None => self.drop_message(
                vp,
                format_args!("GPADL_TEARDOWN of unknown GPADL {handle:#x}"),
            ),
        }
        self.send(&GpadlTorndown { gpadl: handle });
    }

    fn open_channel(&mut self, m: &OpenChannel, now: Instant) {
        let relid = m.child_relid;
        let result = self.try_open(m, now);
        let status = match &result {
            Ok(()) => 0,
            Err(why) => {
                self.stats.opens_refused += 1;
                log::warn!("vmbus: OPENCHANNEL of relid {relid} refused: {why}");
                STATUS_UNSUCCESSFUL
            }
        };
        self.send(&OpenResult {
            child_relid: relid,
            openid: m.openid,
            status,
        });
        if result.is_ok() {
            self.stats.opens += 1;
            if let Some(c) = self.channels.get_mut(&relid) {
                c.stats.opens += 1;
                log::info!(
                    "vmbus: channel {relid} ({}) open, target VP {}",
                    c.device.name(),
                    m.target_vp
                );
            }
            self.run_channel(relid, now, Step::Open);
            if std::mem::take(&mut self.faults.corrupt_ring) {
                self.corrupt_ring(relid);
            }
        }
    }

    fn try_open(&mut self, m: &OpenChannel, _now: Instant) -> Result<(), String> {
        let relid = m.child_relid;
        let c = self.channels.get(&relid).ok_or("no such relid")?;
        match c.phase {
            Phase::Offered => {}
            Phase::Open => return Err("already open".into()),
            Phase::Idle | Phase::Rescinded => return Err("not offered".into()),
        }
        if m.target_vp >= self.guest.vp_count() {
            return Err(format!("target VP {} does not exist", m.target_vp));
        }
        let g = self
            .gpadls
            .get(m.ringbuffer_gpadlhandle)
            .ok_or_else(|| format!("no GPADL {:#x}", m.ringbuffer_gpadlhandle))?;
        if g.relid != relid {
            return Err(format!(
                "GPADL {:#x} belongs to relid {}",
                m.ringbuffer_gpadlhandle, g.relid
            ));
        }
        let [range] = g.ranges.as_slice() else {
            return Err(format!("ring GPADL has {} ranges, not one", g.ranges.len()));
        };
        if range.byte_offset != 0 {
            return Err("ring GPADL does not start at a page boundary".into());
        }
        let rings = ChannelRings::new(
            self.guest.memory(),
            &range.pfns,
            m.downstream_ringbuffer_pageoffset,
            ChannelWaker::new(self.guest.clone(), relid),
        )
        .map_err(|e| e.to_string())?;
        let (connection_id, shared) = (c.connection_id, c.shared);
        if !shared {
            self.guest
                .register_channel_event(connection_id, relid)
                .map_err(|e| e.to_string())?;
        } else if self.shared_open == 0 {
            self.guest
                .register_channel_event(SHARED_EVENT_CONNECTION, SHARED_SIGNAL)
                .map_err(|e| e.to_string())?;
        }
        if shared {
            self.shared_open += 1;
        }
        let c = self.channels.get_mut(&relid).ok_or("no such relid")?;
        c.phase = Phase::Open;
        c.closed_by_host = false;
        c.open = Some(OpenState {
            gpadl: m.ringbuffer_gpadlhandle,
            downstream: m.downstream_ringbuffer_pageoffset,
            target_vp: m.target_vp,
            rings,
            next_poll: None,
            more: false,
            stalled: false,
        });
        Ok(())
    }

    /// Closes channel `relid` on the host side (if open): the device is
    /// told, the event connection goes. The channel stays offered.
    fn close_channel(&mut self, relid: u32, why: &str) {
        let Some(c) = self.channels.get_mut(&relid) else {
            return;
        };
        let Some(o) = c.open.take() else {
            return;
        };
        if c.phase == Phase::Open {
            c.phase = Phase::Offered;
        }
        c.device.close();
        let is_primary = c.sub_channel.is_none();
        let (name, conn) = (c.device.name(), c.connection_id);
        if !c.shared {
            self.guest.unregister_channel_event(conn);
        } else {
            self.shared_open = self.shared_open.saturating_sub(1);
            if self.shared_open == 0 {
                self.guest.unregister_channel_event(SHARED_EVENT_CONNECTION);
            }
        }
        let counts = o.rings.counts;
        c.stats.closes += 1;
        c.stats.guest_signals += counts.guest_signals;
        c.stats.guest_interrupts += counts.guest_interrupts;
        self.stats.closes += 1;
        log::info!(
            "vmbus: channel {relid} ({name}) closed: {why} (guest signals {}, interrupts to the guest {})",
            counts.guest_signals,
            counts.guest_interrupts
        );
        if is_primary && self.is_connected() {
            self.drop_sub_channels(relid);
        }
    }

    fn modify_channel(&mut self, vp: u32, relid: u32, target_vp: u32) {
        let version = self.version().unwrap_or(Version::WIN10);
        if !version.has_modify_channel() {
            return self.drop_message(
                vp,
                format_args!("MODIFYCHANNEL at version {version}: it exists from 4.1"),
            );
        }
        let vp_ok = target_vp < self.guest.vp_count();
        let status = match self.channels.get_mut(&relid).and_then(|c| c.open.as_mut()) {
            Some(o) if vp_ok => {
                log::info!("vmbus: channel {relid} now interrupts VP {target_vp}");
                o.target_vp = target_vp;
                self.stats.modifies += 1;
                0
            }
            _ => {
                self.stats.modifies_refused += 1;
                log::warn!("vmbus: MODIFYCHANNEL of relid {relid} to VP {target_vp} refused");
                STATUS_UNSUCCESSFUL
            }
        };
        if version.modify_channel_answered() {
            self.send(&ModifyChannelResponse {
                child_relid: relid,
                status,
            });
        }
    }

    fn relid_released(&mut self, vp: u32, relid: u32) {
        match self.channels.get(&relid).map(|c| c.phase) {
            Some(Phase::Rescinded) => {
                let n = self.gpadls.remove_channel(relid);
                self.stats.releases += 1;
                if let Some(c) = self.channels.remove(&relid) {
                    log::info!(
                        "vmbus: relid {relid} ({}) released by the guest ({n} GPADL(s) dropped)",
                        c.device.name()
                    );
                }
            }
            _ => self.drop_message(
                vp,
                format_args!("RELID_RELEASED of relid {relid}, which was not rescinded"),
            ),
        }
    }

    /// Back to the state before INITIATE_CONTACT: channels closed and
    /// unoffered, GPADLs gone; rescinded devices are gone for good.
    fn disconnect(&mut self) {
        let relids: Vec<u32> = self.channels.keys().copied().collect();
        for relid in relids {
            self.close_channel(relid, "VMBus disconnected");
        }
        // Rescinded devices and sub-channels (made for one open of their
        // primary) are gone for good.
        // So are socket connections.
        self.channels.retain(|_, c| {
            c.phase != Phase::Rescinded && c.sub_channel.is_none() && c.device.socket().is_none()
        });
        for c in self.channels.values_mut() {
            c.phase = Phase::Idle;
        }
        self.gpadls.clear();
        // What was meant for the connection that ended.
        self.backlog.clear();
        self.conn = Connection::Disconnected;
    }

    /// The guest signalled channel `relid`'s event connection, or
    /// [`SHARED_SIGNAL`]: the shared one.
    pub fn handle_signal(&mut self, relid: u32, now: Instant) {
        self.stats.signals += 1;
        if relid == SHARED_SIGNAL {
            return self.shared_signal(now);
        }
        if let Some(o) = self.channels.get_mut(&relid).and_then(|c| c.open.as_mut()) {
            o.rings.counts.guest_signals += 1;
            self.run_channel(relid, now, Step::Drain);
        }
    }

    /// A signal on [`SHARED_EVENT_CONNECTION`]: takes the guest-to-host
    /// half of the interrupt page (each word swapped with 0, as the guest
    /// sets bits concurrently) and drains every open shared channel whose
    /// bit was set. A bit of any other relid is the guest's error: logged,
    /// counted as dropped.
    fn shared_signal(&mut self, now: Instant) {
        let Connection::Connected {
            interrupt_page: Some(page),
            ..
        } = self.conn
        else {
            return;
        };
        let base = page + vmbus::message::INTERRUPT_PAGE_SEND_OFFSET as u64;
        let mem = self.guest.memory().clone();
        for word in 0..(MAX_RELID + 1) / 32 {
            let bits = match mem.swap_u32(base + u64::from(word) * 4, 0) {
                Ok(b) => b,
                Err(e) => {
                    log::error!("vmbus: interrupt page at {page:#x} unreadable: {e}");
                    return;
                }
            };
            let mut rest = bits;
            while rest != 0 {
                let relid = word * 32 + rest.trailing_zeros();
                rest &= rest - 1;
                let ok = self
                    .channels
                    .get_mut(&relid)
                    .filter(|c| c.shared)
                    .and_then(|c| c.open.as_mut());
                match ok {
                    Some(o) => {
                        o.rings.counts.guest_signals += 1;
                        self.run_channel(relid, now, Step::Drain);
                    }
                    None => {
                        self.stats.dropped += 1;
                        log::warn!(
                            "vmbus: interrupt page bit {relid} set, but relid {relid} is no open \
                             channel without a dedicated interrupt"
                        );
                    }
                }
            }
        }
    }

    /// Runs device timers that are due and unfinished drains; returns the
    /// next deadline.
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        self.flush_backlog();
        let expired: Vec<u32> = self
            .channels
            .iter()
            .filter(|(_, c)| c.phase == Phase::Offered)
            .filter(|(_, c)| c.device.socket().is_some_and(|s| s.open_by <= now))
            .map(|(&r, _)| r)
            .collect();
        for relid in expired {
            self.stats.socket_offers_expired += 1;
            self.rescind_socket(relid, "the guest did not open it in time");
        }
        let due: Vec<(u32, Step)> = self
            .channels
            .iter()
            .filter_map(|(r, c)| {
                let o = c.open.as_ref()?;
                let step = if o.more { Step::Drain } else { Step::Poll };
                (o.more || o.next_poll.is_some_and(|t| t <= now)).then_some((*r, step))
            })
            .collect();
        for (relid, step) in due {
            self.run_channel(relid, now, step);
        }
        let offers = self
            .channels
            .values()
            .filter(|c| c.phase == Phase::Offered)
            .filter_map(|c| c.device.socket().map(|s| s.open_by));
        let backlog = (!self.backlog.is_empty()).then(|| now + BACKLOG_RETRY);
        self.channels
            .values()
            .filter_map(|c| c.open.as_ref())
            .filter_map(|o| if o.more { Some(now) } else { o.next_poll })
            .chain(offers)
            .chain(backlog)
            .min()
    }

    /// Rescinds channel `relid` if it is a socket connection that is not
    /// rescinded yet (a socket channel is good for one connection).
    fn rescind_socket(&mut self, relid: u32, why: &str) {
        let live = self
            .channels
            .get(&relid)
            .is_some_and(|c| c.device.socket().is_some() && c.phase != Phase::Rescinded);
        if live {
            log::info!("vmbus: socket channel {relid}: {why}; rescinding it");
            if let Err(e) = self.remove_device(relid) {
                log::warn!("vmbus: socket channel {relid}: {e}");
            }
        }
    }

    /// Polls channel `relid`'s device (if open): what a device's own
    /// thread asks for through its [`super::channel::ChannelWaker`].
    pub fn poll_channel(&mut self, relid: u32, now: Instant) {
        self.run_channel(relid, now, Step::Poll);
    }

    /// Runs `step` on channel `relid` (if open); a fault closes it.
    fn run_channel(&mut self, relid: u32, now: Instant, step: Step) {
        let reference_time = self.guest.reference_time();
        let Some(c) = self.channels.get_mut(&relid) else {
            return;
        };
        let Some(o) = c.open.as_mut() else {
            return;
        };
        // A device that stalled the drain wakes its channel when it takes
        // packets again: that wake-up drains.
        let step = if step == Step::Poll && o.stalled {
            Step::Drain
        } else {
            step
        };
        let device = c.device.as_mut();
        let (guest, vp) = (&self.guest, o.target_vp);
        let mut signal = || guest.signal_channel(vp, relid);
        let result: Result<Outcome, ChannelFault> = match step {
            Step::Drain => o
                .rings
                .drain(device, now, reference_time, DRAIN_BUDGET, &mut signal),
            Step::Open | Step::Poll => (|| {
                let mut out = Outcome::default();
                if step == Step::Open {
                    let ((), sent) = o.rings.with_io(now, reference_time, |io| device.open(io))?;
                    out.add_sent(&sent);
                }
                out.next_poll =
                    o.rings
                        .poll_device(device, now, reference_time, &mut signal, &mut out)?;
                Ok(out)
            })(),
        };
        let subs = std::mem::take(&mut o.rings.sub_channels);
        let rescind = std::mem::take(&mut o.rings.rescind);
        match result {
            Ok(out) => {
                self.stats.packets_in += out.packets;
                self.stats.packets_out += out.packets_sent;
                self.stats.looks += out.looks;
                self.stats.looks_found += out.looks_found;
                self.stats.room_looks += out.room_looks;
                self.stats.room_looks_found += out.room_looks_found;
                self.stats.notifications += out.signals_early;
                o.next_poll = out.next_poll;
                // Only a drain knows whether the ring has more: a drain
                // that ran out of budget left the guest's interrupts
                // masked (no signal will come) and the rest to the next
                // drain, which a device's poll in between must not cancel.
                o.more = match step {
                    Step::Drain => out.more,
                    Step::Open | Step::Poll => o.more || out.more,
                };
                if step == Step::Drain {
                    // The drain's closing poll may have made room (a
                    // device flushing to its peer): then drain on at once,
                    // as no wake-up may come for room that is there.
                    let takes = c.device.takes_packets();
                    o.stalled = out.stalled && !takes;
                    o.more |= out.stalled && takes;
                }
                if out.signal_guest {
                    let vp = o.target_vp;
                    self.stats.notifications += 1;
                    o.rings.counts.guest_interrupts += 1;
                    self.guest.signal_channel(vp, relid);
                }
            }
            Err(fault) => {
                self.stats.faults += 1;
                c.stats.faults += 1;
                c.closed_by_host = true;
                log::error!(
                    "vmbus: channel {relid} ({}): {fault}; closing it",
                    c.device.name()
                );
                self.close_channel(relid, "the guest broke its ring");
                self.rescind_socket(relid, "its ring broke");
            }
        }
        if !subs.is_empty() {
            self.add_sub_channels(relid, subs);
        }
        if rescind {
            self.rescind_socket(relid, "the connection is over");
        }
    }

    fn corrupt_ring(&mut self, relid: u32) {
        let Some(o) = self.channels.get(&relid).and_then(|c| c.open.as_ref()) else {
            return;
        };
        let Some(g) = self.gpadls.get(o.gpadl) else {
            return;
        };
        let Some(range) = g.ranges.first() else {
            return;
        };
        // The host-to-guest ring's header: its write index past the end.
        if let Some(&pfn) = range.pfns.get(o.downstream as usize) {
            log::warn!("vmbus: fault injection: corrupting the write index of channel {relid}'s guest ring");
            let _ = self
                .guest
                .memory()
                .store_u32(pfn * vmbus::message::HV_PAGE_SIZE, 0xffff_fff8);
            self.guest.signal_channel(o.target_vp, relid);
        }
    }
}
