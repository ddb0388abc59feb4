// SPDX-License-Identifier: GPL-2.0

//! The VMBus client: connection, channel messages, offers, unload.
//!
//! The bus owns the SynIC consumer of SINT 2. Messages arrive in hard-irq
//! context: [`BusIrq`] copies each into a fixed inbox and queues the
//! message work, which parses it (`vmbus::parse`, Linux's minimum sizes),
//! checks it against the bus state and either hands a reply to the thread
//! waiting for it (VERSION_RESPONSE, GPADL_CREATED, OPENCHANNEL_RESULT,
//! GPADL_TORNDOWN, ALLOFFERS_DELIVERED, UNLOAD_RESPONSE) or changes the
//! channel table (OFFERCHANNEL, RESCIND_CHANNELOFFER). The message work
//! never waits for the host; everything that waits (connect, open, close,
//! driver binding) runs in process context elsewhere: module init and
//! exit, and the scan work that binds drivers to late offers and unbinds
//! rescinded channels.
//!
//! Channel events arrive as SINT 2 event flags, one per relid; the irq
//! handler looks the relid up in [`Bus::relids`] and queues that channel's
//! work, which runs the driver's receive callback.
//!
//! Nothing the host sends is trusted: a message that does not parse, a
//! reply nobody asked for, an offer with a relid out of range or already
//! in use is logged with the reason, counted by kind and dropped.
//!
//! The parts, along Linux's seams: this file holds the bus, its message
//! dispatch and unloading; [`connection`] the version negotiation and
//! REQUESTOFFERS; [`request`] the typed request/reply API every caller
//! uses; [`gpadl`] GPADLs; [`offers`] offers, rescinds and the scan work;
//! [`channel`] one channel (its life, and in `channel/io.rs` its traffic);
//! [`device`] the channels' auxiliary devices; [`ring`] the ring pages;
//! [`view`] the debugfs view.

pub(crate) mod channel;
mod connection;
pub(crate) mod device;
mod gpadl;
mod offers;
pub(crate) mod request;
pub(crate) mod ring;
pub(crate) mod view;

use kernel::debugfs::Dir;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Full, Relaxed, Release};
use kernel::sync::{new_condvar, new_mutex, new_spinlock_irq, Arc, CondVar, Mutex, SpinLockIrq};
use kernel::time::{delay::fsleep, Delta};
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

use crate::hvcall::hypercall::HvStatus;
use crate::hvcall::synic::{HvMessage, HV_MESSAGE_PAYLOAD_BYTE_COUNT, VMBUS_SINT};
use crate::hypercall::HvError;
use crate::shim::SharedPage;
use crate::synic::{ConsumerRegistration, SintConsumer};
use crate::vmbus::guid::Guid;
use crate::vmbus::message::{
    encode, encode_empty, ChannelMessage, MessageType, TlConnectRequest, TlConnectResult,
    MAX_MESSAGE_SIZE, MESSAGE_CONNECTION_ID,
};
use crate::vmbus::parse::{parse, Message};
use crate::vmbus::version::Version;
use crate::Core;

use channel::Channel;

/// What the bus tells the socket transport.
pub(crate) trait SocketEvents: Send + Sync {
    /// The host refused a connection the guest asked for (message work,
    /// process context).
    fn on_connect_result(&self, r: &TlConnectResult);
}
pub(crate) use request::{Expect, Reply};

/// Relids are event flag numbers of SINT 2 and Linux refuses any at or
/// above `MAX_CHANNEL_RELIDS`; relid 0 is reserved.
pub(crate) const MAX_RELID: u32 = 2048;
/// The SynIC message type the host posts channel messages with.
const HV_MESSAGE_TYPE_VMBUS: u32 = 1;
/// Messages the irq handler can hold before the message work drains them.
const INBOX_SLOTS: usize = 64;
/// How long to wait for the host's answer to a channel message. Generous:
/// the rig runs nested under TCG.
pub(crate) const REPLY_TIMEOUT_MS: u32 = 10_000;
/// Replies nobody has taken yet that the bus keeps (a host that sends
/// unsolicited replies cannot grow this).
const MAX_QUEUED_REPLIES: usize = 32;
/// Offers the bus accepts in all.
const MAX_CHANNELS: usize = 64;
/// The first GPADL handle, as Linux numbers them.
const FIRST_GPADL: u32 = 0xe1e10;

/// One message as the irq handler copied it.
#[derive(Clone, Copy)]
struct RawMsg {
    len: u8,
    bytes: [u8; HV_MESSAGE_PAYLOAD_BYTE_COUNT],
}

/// Messages between the irq handler and the message work, a fixed ring.
///
/// # Invariants
///
/// `slots.len() == INBOX_SLOTS`, `head < INBOX_SLOTS`, `count <= INBOX_SLOTS`.
struct Inbox {
    slots: KVec<RawMsg>,
    head: usize,
    count: usize,
}

impl Inbox {
    fn push(&mut self, payload: &[u8]) -> bool {
        if self.count == INBOX_SLOTS || payload.len() > HV_MESSAGE_PAYLOAD_BYTE_COUNT {
            return false;
        }
        let i = (self.head + self.count) % INBOX_SLOTS;
        let slot = &mut self.slots[i];
        slot.len = payload.len() as u8;
        slot.bytes[..payload.len()].copy_from_slice(payload);
        self.count += 1;
        true
    }

    fn pop(&mut self) -> Option<RawMsg> {
        if self.count == 0 {
            return None;
        }
        let m = self.slots[self.head];
        self.head = (self.head + 1) % INBOX_SLOTS;
        self.count -= 1;
        Some(m)
    }
}

/// Where the bus is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    Connecting,
    Connected,
    Unloading,
    Unloaded,
}

/// What [`Bus::connection`] reports.
pub(crate) struct Connection {
    pub(crate) phase: Phase,
    /// The negotiated version (0 before).
    pub(crate) version: Version,
    /// The connection ID channel messages are posted to.
    pub(crate) msg_conn: u32,
}

/// What the state lock protects.
struct BusState {
    phase: Phase,
    /// The version the host accepted (valid from `Connected`).
    version: Version,
    /// The message connection for everything after INITIATE_CONTACT.
    msg_conn: u32,
    /// Replies received and not yet taken, oldest first.
    replies: KVec<Reply>,
    /// Replies asked for and not yet received (registered before the
    /// request is posted).
    expected: KVec<Expect>,
    /// Every channel offered and not yet released, in offer order.
    channels: KVec<Arc<Channel>>,
    /// ALLOFFERS_DELIVERED seen: later offers are hot-added.
    offers_done: bool,
    next_gpadl: u32,
}

/// Counters shown in debugfs. Every message rejected is counted once, by
/// why: `rejected_malformed` (did not parse), `rejected_unexpected` (a reply
/// nobody asked for, a message only a guest sends), `rejected_offer` (an
/// offer of a bad or used relid), `rejected_rescind` (of a relid never
/// offered).
pub(crate) struct BusCounters {
    pub(crate) messages: Atomic<u64>,
    pub(crate) inbox_full: Atomic<u64>,
    pub(crate) rejected_malformed: Atomic<u64>,
    pub(crate) rejected_unexpected: Atomic<u64>,
    pub(crate) rejected_offer: Atomic<u64>,
    pub(crate) rejected_rescind: Atomic<u64>,
    pub(crate) offers: Atomic<u64>,
    pub(crate) rescinds: Atomic<u64>,
    /// RELID_RELEASED sent (a rescinded channel forgotten).
    pub(crate) releases: Atomic<u64>,
    pub(crate) unsolicited: Atomic<u64>,
    pub(crate) events_unknown_relid: Atomic<u64>,
    /// TL_CONNECT_REQUEST sent (a socket connection asked for).
    pub(crate) connect_requests: Atomic<u64>,
    /// TL_CONNECT_RESULT received (the host refused one).
    pub(crate) connect_results: Atomic<u64>,
}

impl BusCounters {
    const fn new() -> Self {
        Self {
            messages: Atomic::new(0),
            inbox_full: Atomic::new(0),
            rejected_malformed: Atomic::new(0),
            rejected_unexpected: Atomic::new(0),
            rejected_offer: Atomic::new(0),
            rejected_rescind: Atomic::new(0),
            offers: Atomic::new(0),
            rescinds: Atomic::new(0),
            releases: Atomic::new(0),
            unsolicited: Atomic::new(0),
            events_unknown_relid: Atomic::new(0),
            connect_requests: Atomic::new(0),
            connect_results: Atomic::new(0),
        }
    }
}

/// The VMBus client.
#[pin_data]
pub(crate) struct Bus {
    pub(crate) core: Arc<Core>,
    /// Messages from the irq handler; taken by the message work.
    #[pin]
    inbox: SpinLockIrq<Inbox>,
    /// Connection state, replies and the channel table.
    #[pin]
    state: Mutex<BusState>,
    /// Signalled when a reply arrives or a channel is rescinded.
    #[pin]
    cond: CondVar,
    /// Channel by relid, for the event flags (hard irq): index = relid.
    #[pin]
    relids: SpinLockIrq<KVec<Option<Arc<Channel>>>>,
    /// Serializes driver binding and unbinding (scan work, init, exit).
    #[pin]
    scan_lock: Mutex<()>,
    /// Handles the host's messages. Both works run on the high-priority
    /// system workqueue, as Linux handles VMBus messages in a tasklet: a
    /// bind waits for the host's replies (GPADL_CREATED,
    /// OPENCHANNEL_RESULT) and a connect for its bind, and neither may
    /// queue behind the programs that keep the CPUs busy (in the debug
    /// rig, 32 starting socat made a connect wait 2.3 s, past the
    /// socket's connect timeout).
    #[pin]
    msg_work: Work<Bus, 1>,
    /// Binds and releases channels ([`Bus::scan`]).
    #[pin]
    scan_work: Work<Bus, 2>,
    /// Set when unloading starts: no more binding, no more scans.
    closing: Atomic<bool>,
    /// CPUs (bit N: CPU N, below 64) whose message slot holds a message
    /// the full inbox could not take; the message work takes it once it
    /// has made room.
    deferred_cpus: Atomic<u64>,
    /// Who is told of TL_CONNECT_RESULT (the socket transport, while
    /// registered).
    #[pin]
    sockets: Mutex<Option<Arc<dyn SocketEvents>>>,
    /// The VP index of CPU 0, where messages and channel interrupts go.
    pub(crate) target_vp: u32,
    /// The parent of the channels' auxiliary devices.
    parent: device::BusDevice,
    /// Monitor pages: Linux always offers them in INITIATE_CONTACT; this
    /// client asks for no monitored channels, so they stay zero.
    monitor: [SharedPage; 2],
    /// The interrupt page, named in INITIATE_CONTACT below 5.0: a channel
    /// without a dedicated interrupt sets its relid's bit in the second half
    /// before signalling (`vmbus::message::INTERRUPT_PAGE_SEND_OFFSET`). Allocated at
    /// every version, as Linux does.
    pub(crate) interrupt_page: SharedPage,
    pub(crate) counters: BusCounters,
}

impl_has_work! {
    impl HasWork<Self, 1> for Bus { self.msg_work }
    impl HasWork<Self, 2> for Bus { self.scan_work }
}

impl WorkItem<1> for Bus {
    type Pointer = Arc<Bus>;

    fn run(this: Arc<Bus>) {
        loop {
            let Some(m) = this.inbox.lock().pop() else {
                break;
            };
            this.handle(&m.bytes[..usize::from(m.len)]);
        }
        // The inbox is empty: take the messages left in their slots.
        let mut cpus = this.deferred_cpus.xchg(0, Full);
        while cpus != 0 {
            let cpu = cpus.trailing_zeros();
            cpus &= cpus - 1;
            if let Err(e) = this.core.synic.synic().poll(cpu, VMBUS_SINT) {
                pr_err!("vmbus: cannot take the message left on CPU {}: {:?}\n", cpu, e);
            }
        }
    }
}

impl WorkItem<2> for Bus {
    type Pointer = Arc<Bus>;

    fn run(this: Arc<Bus>) {
        this.scan();
    }
}

/// The SINT 2 consumer; runs in hard-irq context.
struct BusIrq(Arc<Bus>);

impl SintConsumer for BusIrq {
    fn accepts(&self, message_type: u32) -> bool {
        message_type == HV_MESSAGE_TYPE_VMBUS
    }

    fn message(&self, cpu: u32, msg: &HvMessage) -> bool {
        let bus = &self.0;
        let len = usize::from(msg.header.payload_size).min(HV_MESSAGE_PAYLOAD_BYTE_COUNT);
        let taken = bus.inbox.lock().push(&msg.payload[..len]);
        if !taken {
            // The host sends faster than the message work reads: the
            // message stays in the slot (holding the host's next ones
            // back) until the work has made room and asks for it.
            bus.counters.inbox_full.add(1, Relaxed);
            if cpu >= 64 {
                // No bit to remember it by: taken (and lost) as before.
                return true;
            }
            let bit = 1u64 << cpu;
            let mut old = bus.deferred_cpus.load(Relaxed);
            while let Err(now) = bus.deferred_cpus.cmpxchg(old, old | bit, Full) {
                old = now;
            }
        }
        // Already queued (Err): it will see this message (or the deferral)
        // too; queued again if it is running.
        let _ = workqueue::system_highpri().enqueue::<Arc<Bus>, 1>(bus.clone());
        taken
    }

    fn flag_count(&self) -> u32 {
        MAX_RELID
    }

    fn event(&self, _cpu: u32, flag: u32) {
        let relids = self.0.relids.lock();
        // The table holds a reference while the lock is held, so the
        // channel reference the work queue hands back is never the last.
        match relids.get(flag as usize) {
            Some(Some(ch)) => ch.on_event(),
            _ => self.0.counters.events_unknown_relid.add(1, Relaxed),
        }
    }
}

/// The connected bus as the module holds it; dropping it unloads VMBus.
pub(crate) struct VmBus {
    bus: Arc<Bus>,
    registration: Option<ConsumerRegistration>,
}

impl VmBus {
    /// Connects to the host's VMBus and collects the offers, each a channel
    /// device (with a debugfs directory in `debugfs`) that a driver binds.
    /// `Ok(None)` if the host has no VMBus.
    pub(crate) fn connect(core: Arc<Core>, debugfs: Dir) -> Result<Option<Self>> {
        let target_vp = crate::cpu::vp_index(0)?;
        let mut slots = KVec::with_capacity(INBOX_SLOTS, GFP_KERNEL)?;
        for _ in 0..INBOX_SLOTS {
            slots.push(
                RawMsg {
                    len: 0,
                    bytes: [0; HV_MESSAGE_PAYLOAD_BYTE_COUNT],
                },
                GFP_KERNEL,
            )?;
        }
        let mut relids = KVec::with_capacity(MAX_RELID as usize, GFP_KERNEL)?;
        for _ in 0..MAX_RELID {
            relids.push(None, GFP_KERNEL)?;
        }
        let monitor = [SharedPage::new()?, SharedPage::new()?];
        let interrupt_page = SharedPage::new()?;
        let parent = device::BusDevice::new(debugfs)?;
        let bus = Arc::pin_init(
            pin_init!(Bus {
                core,
                // INVARIANT (Inbox): INBOX_SLOTS slots, empty.
                inbox <- new_spinlock_irq!(Inbox { slots, head: 0, count: 0 }, "hv_guest_vmbus_inbox"),
                state <- new_mutex!(BusState {
                    phase: Phase::Connecting,
                    version: Version(0),
                    msg_conn: MESSAGE_CONNECTION_ID,
                    replies: KVec::new(),
                    expected: KVec::new(),
                    channels: KVec::new(),
                    offers_done: false,
                    next_gpadl: FIRST_GPADL,
                }, "hv_guest_vmbus_state"),
                cond <- new_condvar!("hv_guest_vmbus_cond"),
                relids <- new_spinlock_irq!(relids, "hv_guest_vmbus_relids"),
                scan_lock <- new_mutex!((), "hv_guest_vmbus_scan"),
                msg_work <- new_work!("hv_guest_vmbus_msg"),
                scan_work <- new_work!("hv_guest_vmbus_scan"),
                closing: Atomic::new(false),
                deferred_cpus: Atomic::new(0),
                sockets <- new_mutex!(None, "hv_guest_vmbus_sockets"),
                target_vp,
                parent,
                monitor,
                interrupt_page,
                counters: BusCounters::new(),
            }),
            GFP_KERNEL,
        )?;
        let registration = bus
            .core
            .synic
            .synic()
            .register(VMBUS_SINT, Arc::new(BusIrq(bus.clone()), GFP_KERNEL)?)?;
        let vmbus = Self {
            bus,
            registration: Some(registration),
        };
        match vmbus.bus.negotiate() {
            Ok(true) => {}
            Ok(false) => {
                vmbus.bus.state.lock().phase = Phase::Unloaded;
                return Ok(None); // drop: unregisters, nothing to unload
            }
            Err(e) => {
                vmbus.bus.state.lock().phase = Phase::Unloaded;
                return Err(e);
            }
        }
        vmbus.bus.request_offers()?;
        vmbus.bus.scan();
        Ok(Some(vmbus))
    }

    /// The bus.
    pub(crate) fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }
}

impl Drop for VmBus {
    fn drop(&mut self) {
        let bus = &self.bus;
        bus.closing.store(true, Release);
        // Waits for a running scan.
        crate::shim::flush_work(&bus.scan_work);
        let connected = bus.state.lock().phase == Phase::Connected;
        // Devices go first: each driver closes its channel and tears its
        // GPADL down while the host still listens.
        let (mut closed, mut torn_down) = (0, 0);
        {
            let _guard = bus.scan_lock.lock();
            for ch in bus.channels().iter() {
                if let Some(torn) = ch.unbind() {
                    closed += 1;
                    torn_down += u32::from(torn);
                }
            }
        }
        if connected {
            bus.state.lock().phase = Phase::Unloading;
            let unload = bus.expect(Expect::Unload).and_then(|pending| {
                bus.post_empty(MessageType::UNLOAD)?;
                pending.wait(
                    REPLY_TIMEOUT_MS,
                    |r| matches!(r, Reply::Unload).then_some(()),
                    || false,
                )
            });
            // A key=value record (what tests read, like KUnit's KTAP in the
            // log): the module's debugfs is gone by the time anyone looks.
            match unload {
                Ok(()) => pr_info!(
                    "vmbus_unload channels_closed={} gpadls_torn_down={} unload_response=1\n",
                    closed,
                    torn_down
                ),
                Err(e) => pr_err!(
                    "vmbus_unload channels_closed={} gpadls_torn_down={} unload_response=0 error={:?}\n",
                    closed,
                    torn_down,
                    e
                ),
            }
        }
        bus.state.lock().phase = Phase::Unloaded;
        // No interrupts, then no work: the registration waits for running
        // handlers, the flushes for queued work.
        drop(self.registration.take());
        crate::shim::flush_work(&bus.msg_work);
        // The message work may have queued a scan (a late offer) after the
        // first flush; nothing can queue one now.
        crate::shim::flush_work(&bus.scan_work);
        let channels = core::mem::take(&mut bus.state.lock().channels);
        for ch in channels.iter() {
            ch.flush();
        }
        for slot in bus.relids.lock().iter_mut() {
            // Dropped here with the lock held is fine: `channels` still
            // holds each, so no channel is freed in this critical section.
            *slot = None;
        }
        drop(channels);
    }
}

impl Bus {
    /// The connected version and message connection.
    pub(crate) fn connection(&self) -> Connection {
        let st = self.state.lock();
        Connection {
            phase: st.phase,
            version: st.version,
            msg_conn: st.msg_conn,
        }
    }

    /// A snapshot of the channel table.
    pub(crate) fn channels(&self) -> KVec<Arc<Channel>> {
        let st = self.state.lock();
        let mut out = KVec::new();
        for ch in st.channels.iter() {
            if out.push(ch.clone(), GFP_KERNEL).is_err() {
                break;
            }
        }
        out
    }

    /// Posts raw message bytes to connection `conn`, retrying while the
    /// host's buffers are full (as Linux's `vmbus_post_msg` does).
    pub(crate) fn post_raw(&self, conn: u32, bytes: &[u8]) -> Result<(), HvError> {
        let mut tries = 0;
        loop {
            match self
                .core
                .hypercalls
                .post_message(conn, HV_MESSAGE_TYPE_VMBUS, bytes)
            {
                Err(HvError(HvStatus::INSUFFICIENT_BUFFERS)) if tries < 100 => {
                    tries += 1;
                    // Every caller is in process context and may sleep.
                    fsleep(Delta::from_millis(1));
                }
                other => return other,
            }
        }
    }

    fn post_to<M: ChannelMessage>(&self, conn: u32, msg: &M) -> Result<(), HvError> {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let n = encode(msg, &mut buf).map_err(|_| HvError(HvStatus::INVALID_PARAMETER))?;
        self.post_raw(conn, &buf[..n])
    }

    /// Posts a channel message on the negotiated message connection.
    pub(crate) fn post<M: ChannelMessage>(&self, msg: &M) -> Result {
        let conn = self.state.lock().msg_conn;
        self.post_to(conn, msg).map_err(|e| {
            pr_err!("vmbus: posting {} failed: {}\n", M::TYPE, e);
            e.to_errno()
        })
    }

    fn post_empty(&self, t: MessageType) -> Result {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let n = encode_empty(t, &mut buf).map_err(|_| EINVAL)?;
        let conn = self.state.lock().msg_conn;
        self.post_raw(conn, &buf[..n]).map_err(|e| {
            pr_err!("vmbus: posting {} failed: {}\n", t, e);
            e.to_errno()
        })
    }

    /// One message from the host (message work, process context).
    fn handle(&self, bytes: &[u8]) {
        self.counters.messages.add(1, Relaxed);
        let msg = match parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.counters.rejected_malformed.add(1, Relaxed);
                pr_err!("vmbus: rejected a message from the host: {}\n", e);
                return;
            }
        };
        match msg {
            Message::VersionResponse(r) => self.queue_reply(Reply::Version(r)),
            Message::AllOffersDelivered => self.queue_reply(Reply::AllOffers),
            Message::GpadlCreated(c) => self.queue_reply(Reply::GpadlCreated(c)),
            Message::GpadlTorndown(t) => self.queue_reply(Reply::GpadlTorndown(t.gpadl)),
            Message::OpenResult(r) => self.queue_reply(Reply::OpenResult(r)),
            Message::UnloadResponse => self.queue_reply(Reply::Unload),
            Message::OfferChannel(o) => self.on_offer(&o),
            Message::RescindChannelOffer(r) => self.on_rescind(r.child_relid),
            Message::ModifyChannelResponse(m) => self.queue_reply(Reply::Modify(m)),
            Message::TlConnectResult(r) => {
                self.counters.connect_results.add(1, Relaxed);
                let sockets = self.sockets.lock().clone();
                if let Some(s) = sockets {
                    s.on_connect_result(&r);
                }
            }
            other => {
                self.counters.rejected_unexpected.add(1, Relaxed);
                pr_err!(
                    "vmbus: host sent {}, which only a guest sends\n",
                    other.msgtype()
                );
            }
        }
    }

    /// Sets (or with `None` clears) who is told of TL_CONNECT_RESULT.
    pub(crate) fn set_socket_events(&self, events: Option<Arc<dyn SocketEvents>>) {
        *self.sockets.lock() = events;
    }

    /// Whether the negotiated version has Hyper-V sockets.
    pub(crate) fn has_sockets(&self) -> bool {
        self.connection().version.has_sockets()
    }

    /// Asks the host for a socket connection from the guest's `endpoint`
    /// to the host's `service` (TL_CONNECT_REQUEST): the host answers with
    /// an offer whose instance is `endpoint`, or from 4.1 with
    /// TL_CONNECT_RESULT if it refuses. `EOPNOTSUPP` before 4.0,
    /// `ENOTCONN` if the bus is not connected.
    pub(crate) fn request_connection(&self, endpoint: Guid, service: Guid) -> Result {
        let conn = self.connection();
        if conn.phase != Phase::Connected {
            return Err(ENOTCONN);
        }
        if !conn.version.has_sockets() {
            return Err(EOPNOTSUPP);
        }
        self.post(&TlConnectRequest {
            guest_endpoint_id: endpoint,
            host_service_id: service,
        })?;
        self.counters.connect_requests.add(1, Relaxed);
        Ok(())
    }

    /// An `Arc` to this bus. Every `Bus` lives in an `Arc` (only
    /// [`VmBus::connect`] makes one), and `&self` is borrowed from one.
    fn self_arc(&self) -> Arc<Bus> {
        // SAFETY: `self` is inside an `Arc<Bus>` (above), alive while this
        // reference is; `from_raw` of an `ArcBorrow` does not consume a
        // count, and `into` takes a new one.
        unsafe { kernel::sync::ArcBorrow::from_raw(core::ptr::from_ref(self)) }.into()
    }
}
