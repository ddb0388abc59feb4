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
//! in use is logged with the reason and dropped.

pub(crate) mod channel;
pub(crate) mod device;
pub(crate) mod misbehave;
pub(crate) mod ring;
pub(crate) mod view;

use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Relaxed, Release};
use kernel::sync::{new_condvar, new_mutex, new_spinlock_irq, Arc, CondVar, Mutex, SpinLockIrq};
use kernel::time::msecs_to_jiffies;
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

use crate::hvcall::hypercall::HvStatus;
use crate::hvcall::synic::{HvMessage, HV_MESSAGE_PAYLOAD_BYTE_COUNT, VMBUS_SINT};
use crate::hypercall::HvError;
use crate::shim::SharedPage;
use crate::synic::{ConsumerRegistration, SintConsumer};
use crate::vmbus::gpadl::{GpadlRange, GpadlSplitter};
use crate::vmbus::message::{
    encode, encode_empty, ChannelMessage, ConnectionState, GpadlCreated, GpadlTeardown,
    InitiateContact, MessageType, ModifyChannelResponse, OfferChannel, OpenResult, RelidReleased,
    VersionResponse, MAX_MESSAGE_SIZE, MESSAGE_CONNECTION_ID,
};
use crate::vmbus::parse::{parse, Message};
use crate::vmbus::version::Version;
use crate::Core;

use channel::Channel;

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

/// A reply of the host, parsed, waiting for whoever asked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    Version(VersionResponse),
    AllOffers,
    GpadlCreated(GpadlCreated),
    GpadlTorndown(u32),
    OpenResult(OpenResult),
    Modify(ModifyChannelResponse),
    Unload,
}

/// A reply the bus waits for: replies nobody expects are rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Expect {
    Version,
    AllOffers,
    GpadlCreated(u32),
    GpadlTorndown(u32),
    /// OPENCHANNEL_RESULT of this relid.
    Open(u32),
    /// MODIFYCHANNEL_RESPONSE of this relid.
    Modify(u32),
    Unload,
}

impl Reply {
    fn key(&self) -> Expect {
        match self {
            Self::Version(_) => Expect::Version,
            Self::AllOffers => Expect::AllOffers,
            Self::GpadlCreated(c) => Expect::GpadlCreated(c.gpadl),
            Self::GpadlTorndown(g) => Expect::GpadlTorndown(*g),
            Self::OpenResult(o) => Expect::Open(o.child_relid),
            Self::Modify(m) => Expect::Modify(m.child_relid),
            Self::Unload => Expect::Unload,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Version(_) => "VERSION_RESPONSE",
            Self::AllOffers => "ALLOFFERS_DELIVERED",
            Self::GpadlCreated(_) => "GPADL_CREATED",
            Self::GpadlTorndown(_) => "GPADL_TORNDOWN",
            Self::OpenResult(_) => "OPENCHANNEL_RESULT",
            Self::Modify(_) => "MODIFYCHANNEL_RESPONSE",
            Self::Unload => "UNLOAD_RESPONSE",
        }
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

/// Counters shown in debugfs.
pub(crate) struct BusCounters {
    pub(crate) messages: Atomic<u64>,
    pub(crate) inbox_full: Atomic<u64>,
    pub(crate) rejected: Atomic<u64>,
    pub(crate) offers: Atomic<u64>,
    pub(crate) rescinds: Atomic<u64>,
    pub(crate) unsolicited: Atomic<u64>,
    pub(crate) events_unknown_relid: Atomic<u64>,
}

impl BusCounters {
    const fn new() -> Self {
        Self {
            messages: Atomic::new(0),
            inbox_full: Atomic::new(0),
            rejected: Atomic::new(0),
            offers: Atomic::new(0),
            rescinds: Atomic::new(0),
            unsolicited: Atomic::new(0),
            events_unknown_relid: Atomic::new(0),
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
    #[pin]
    msg_work: Work<Bus, 1>,
    #[pin]
    scan_work: Work<Bus, 2>,
    /// Set when unloading starts: no more binding, no more scans.
    closing: Atomic<bool>,
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

    fn message(&self, _cpu: u32, msg: &HvMessage) {
        let bus = &self.0;
        let len = usize::from(msg.header.payload_size).min(HV_MESSAGE_PAYLOAD_BYTE_COUNT);
        if bus.inbox.lock().push(&msg.payload[..len]) {
            // Already queued (Err): it will see this message too.
            let _ = workqueue::system().enqueue::<Arc<Bus>, 1>(bus.clone());
        } else {
            bus.counters.inbox_full.add(1, Relaxed);
        }
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
    /// Connects to the host's VMBus, collects the offers and binds the
    /// drivers. `Ok(None)` if the host has no VMBus.
    pub(crate) fn connect(core: Arc<Core>) -> Result<Option<Self>> {
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
        let parent = device::BusDevice::new()?;
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
        // SAFETY: `scan_work` is a live work item of `bus`, which this
        // reference keeps alive; flushing waits for a running scan.
        unsafe { kernel::bindings::flush_work(Work::raw_get(&bus.scan_work)) };
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
            let unload = bus.expect(Expect::Unload).and_then(|()| {
                bus.post_empty(MessageType::UNLOAD)?;
                bus.wait_reply(
                    REPLY_TIMEOUT_MS,
                    Expect::Unload,
                    |r| matches!(r, Reply::Unload),
                    || false,
                )
            });
            match unload {
                Ok(_) => pr_info!(
                    "vmbus: unloaded: {} channel(s) closed, {} GPADL(s) torn down, UNLOAD_RESPONSE received\n",
                    closed,
                    torn_down
                ),
                Err(e) => pr_err!("vmbus: host did not answer UNLOAD: {:?}\n", e),
            }
        }
        bus.state.lock().phase = Phase::Unloaded;
        // No interrupts, then no work: the registration waits for running
        // handlers, the flushes for queued work.
        drop(self.registration.take());
        // SAFETY: as above, for the message work.
        unsafe { kernel::bindings::flush_work(Work::raw_get(&bus.msg_work)) };
        // The message work may have queued a scan (a late offer) after the
        // first flush; nothing can queue one now.
        // SAFETY: as above.
        unsafe { kernel::bindings::flush_work(Work::raw_get(&bus.scan_work)) };
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
    /// Proposes each version in Linux's order; `Ok(false)` if the host
    /// has no VMBus message connection at all.
    fn negotiate(&self) -> Result<bool> {
        let mut any_connection = false;
        for v in Version::GUEST_PROPOSALS {
            let conn = v.contact_connection();
            let mut msg = InitiateContact {
                vmbus_version_requested: v.0,
                target_vcpu: self.target_vp,
                msg_sint: VMBUS_SINT,
                msg_vtl: 0,
                reserved: [0; 2],
                feature_flags: 0,
                monitor_page1: self.monitor[0].phys(),
                monitor_page2: self.monitor[1].phys(),
            };
            if !v.contact_names_sint() {
                // Below 5.0 the union carries the interrupt page instead.
                msg.set_interrupt_page(self.interrupt_page.phys());
            }
            self.expect(Expect::Version)?;
            let posted = self.post_to(conn, &msg);
            if posted.is_err() {
                self.unexpect(Expect::Version);
            }
            match posted {
                Ok(()) => any_connection = true,
                Err(HvError(HvStatus::INVALID_CONNECTION_ID)) => {
                    pr_debug!("vmbus: version {}: host has no connection {}\n", v, conn);
                    continue;
                }
                Err(e) => {
                    pr_err!("vmbus: INITIATE_CONTACT {} failed: {}\n", v, e);
                    return Err(e.to_errno());
                }
            }
            let reply = self.wait_reply(
                REPLY_TIMEOUT_MS,
                Expect::Version,
                |r| matches!(r, Reply::Version(_)),
                || false,
            );
            let r = match reply {
                Ok(Reply::Version(r)) => r,
                Ok(_) => return Err(EIO),
                Err(e) => {
                    pr_err!("vmbus: no VERSION_RESPONSE to {}: {:?}\n", v, e);
                    return Err(e);
                }
            };
            if r.version_supported == 0 {
                pr_debug!("vmbus: host refused version {}\n", v);
                continue;
            }
            if r.connection_state != ConnectionState::SUCCESSFUL {
                pr_err!(
                    "vmbus: host accepted {} but the connection failed (state {})\n",
                    v,
                    r.connection_state.0
                );
                return Err(EIO);
            }
            let msg_conn = v.message_connection(r.msg_conn_id);
            {
                let mut st = self.state.lock();
                st.version = v;
                st.msg_conn = msg_conn;
                st.phase = Phase::Connected;
            }
            pr_info!(
                "vmbus: Vmbus version:{} (message connection {})\n",
                v,
                msg_conn
            );
            return Ok(true);
        }
        if any_connection {
            pr_err!("vmbus: host refused every version from 6.0 to 4.0\n");
            return Err(ENODEV);
        }
        pr_info!("vmbus: no VMBus host\n");
        Ok(false)
    }

    fn request_offers(&self) -> Result {
        self.expect(Expect::AllOffers)?;
        self.post_empty(MessageType::REQUESTOFFERS)
            .inspect_err(|_| self.unexpect(Expect::AllOffers))?;
        match self.wait_reply(
            REPLY_TIMEOUT_MS,
            Expect::AllOffers,
            |r| matches!(r, Reply::AllOffers),
            || false,
        ) {
            Ok(_) => {
                let n = {
                    let mut st = self.state.lock();
                    st.offers_done = true;
                    st.channels.len()
                };
                pr_debug!("vmbus: all offers delivered: {} channel(s)\n", n);
                Ok(())
            }
            Err(e) => {
                pr_err!("vmbus: no ALLOFFERS_DELIVERED: {:?}\n", e);
                Err(e)
            }
        }
    }

    /// The connected version and message connection.
    pub(crate) fn connection(&self) -> (Phase, Version, u32) {
        let st = self.state.lock();
        (st.phase, st.version, st.msg_conn)
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
    fn post_raw(&self, conn: u32, bytes: &[u8]) -> Result<(), HvError> {
        let mut tries = 0;
        loop {
            match self
                .core
                .hypercalls
                .post_message(conn, HV_MESSAGE_TYPE_VMBUS, bytes)
            {
                Err(HvError(HvStatus::INSUFFICIENT_BUFFERS)) if tries < 100 => {
                    tries += 1;
                    // SAFETY: process context (every caller may sleep).
                    unsafe { kernel::bindings::msleep(1) };
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

    /// Waits until a reply for which `want` holds arrives and takes it;
    /// `ENODEV` as soon as `abort()` holds (a rescinded channel),
    /// `ETIMEDOUT` after `ms`.
    /// `expect` was registered with [`Self::expect`] before the request
    /// was posted; it is withdrawn here whatever the outcome.
    pub(crate) fn wait_reply(
        &self,
        ms: u32,
        expect: Expect,
        want: impl Fn(&Reply) -> bool,
        abort: impl Fn() -> bool,
    ) -> Result<Reply> {
        let mut left = msecs_to_jiffies(ms);
        let mut st = self.state.lock();
        loop {
            if let Some(i) = st.replies.iter().position(|r| want(r)) {
                Self::withdraw(&mut st, expect);
                return st.replies.remove(i).map_err(|_| EINVAL);
            }
            if abort() || left == 0 {
                Self::withdraw(&mut st, expect);
                return Err(if left == 0 { ETIMEDOUT } else { ENODEV });
            }
            match self.cond.wait_interruptible_timeout(&mut st, left) {
                kernel::sync::CondVarTimeoutResult::Timeout => left = 0,
                kernel::sync::CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                kernel::sync::CondVarTimeoutResult::Signal { jiffies } => {
                    // A pending signal (rmmod from a shell that got one)
                    // must not turn this into a busy loop, nor cut the
                    // wait short: sleep a little, uninterruptibly.
                    drop(st);
                    // SAFETY: process context.
                    unsafe { kernel::bindings::msleep(10) };
                    left = jiffies.saturating_sub(msecs_to_jiffies(10));
                    st = self.state.lock();
                }
            }
        }
    }

    /// Registers a reply this side is about to ask for.
    pub(crate) fn expect(&self, e: Expect) -> Result {
        self.state.lock().expected.push(e, GFP_KERNEL)?;
        Ok(())
    }

    /// Withdraws an expectation whose request could not be posted.
    pub(crate) fn unexpect(&self, e: Expect) {
        Self::withdraw(&mut self.state.lock(), e);
    }

    fn withdraw(st: &mut BusState, e: Expect) {
        if let Some(i) = st.expected.iter().position(|x| *x == e) {
            let _ = st.expected.remove(i);
        }
    }

    /// Allocates a GPADL handle.
    pub(crate) fn next_gpadl(&self) -> u32 {
        let mut st = self.state.lock();
        let g = st.next_gpadl;
        st.next_gpadl = st.next_gpadl.wrapping_add(1).max(FIRST_GPADL);
        g
    }

    /// Sends GPADL_HEADER and GPADL_BODY messages for `pfns` (one range
    /// from offset 0) and waits for GPADL_CREATED with status 0.
    pub(crate) fn create_gpadl(
        &self,
        relid: u32,
        pfns: &[u64],
        abort: impl Fn() -> bool,
    ) -> Result<u32> {
        let gpadl = self.next_gpadl();
        let bytes = pfns.len().checked_mul(4096).ok_or(EINVAL)?;
        let range = [GpadlRange {
            byte_count: u32::try_from(bytes).map_err(|_| EINVAL)?,
            byte_offset: 0,
            pfns,
        }];
        let mut split = GpadlSplitter::new(relid, gpadl, &range).map_err(|e| {
            pr_err!("vmbus: GPADL for relid {}: {}\n", relid, e);
            EINVAL
        })?;
        let conn = self.state.lock().msg_conn;
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let expect = Expect::GpadlCreated(gpadl);
        self.expect(expect)?;
        while let Some(n) = split.next_message(&mut buf) {
            let posted = n.map_err(|_| EINVAL).and_then(|n| {
                self.post_raw(conn, &buf[..n]).map_err(|e| {
                    pr_err!("vmbus: posting GPADL {:#x} failed: {}\n", gpadl, e);
                    e.to_errno()
                })
            });
            if let Err(e) = posted {
                self.unexpect(expect);
                return Err(e);
            }
        }
        let reply = self.wait_reply(
            REPLY_TIMEOUT_MS,
            expect,
            |r| matches!(r, Reply::GpadlCreated(c) if c.gpadl == gpadl && c.child_relid == relid),
            abort,
        )?;
        match reply {
            Reply::GpadlCreated(c) if c.creation_status == 0 => Ok(gpadl),
            Reply::GpadlCreated(c) => {
                pr_err!(
                    "vmbus: host refused GPADL {:#x} of relid {}: status {:#x}\n",
                    gpadl,
                    relid,
                    c.creation_status
                );
                Err(EIO)
            }
            _ => Err(EIO),
        }
    }

    /// Sends GPADL_TEARDOWN and, unless `no_wait`, waits for GPADL_TORNDOWN.
    /// Without waiting, the expectation stays until the answer comes, so a
    /// late answer is not mistaken for a bogus one.
    pub(crate) fn teardown_gpadl(&self, relid: u32, gpadl: u32, no_wait: bool) -> Result {
        let expect = Expect::GpadlTorndown(gpadl);
        self.expect(expect)?;
        self.post(&GpadlTeardown {
            child_relid: relid,
            gpadl,
        })
        .inspect_err(|_| self.unexpect(expect))?;
        if no_wait {
            return Ok(());
        }
        self.wait_reply(
            REPLY_TIMEOUT_MS,
            expect,
            |r| matches!(r, Reply::GpadlTorndown(g) if *g == gpadl),
            || false,
        )
        .map(|_| ())
    }

    fn queue_reply(&self, r: Reply) {
        let mut st = self.state.lock();
        let Some(i) = st.expected.iter().position(|e| *e == r.key()) else {
            drop(st);
            self.counters.rejected.add(1, Relaxed);
            pr_err!(
                "vmbus: rejected {} nobody asked for ({:?})\n",
                r.name(),
                r.key()
            );
            return;
        };
        let _ = st.expected.remove(i);
        if st.replies.len() >= MAX_QUEUED_REPLIES {
            // Nobody took these: the host sent replies nobody asked for.
            let _ = st.replies.remove(0);
            self.counters.unsolicited.add(1, Relaxed);
        }
        if st.replies.push(r, GFP_KERNEL).is_err() {
            pr_err!("vmbus: out of memory queueing a reply\n");
        }
        drop(st);
        self.cond.notify_all();
    }

    /// One message from the host (message work, process context).
    fn handle(&self, bytes: &[u8]) {
        self.counters.messages.add(1, Relaxed);
        let msg = match parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.counters.rejected.add(1, Relaxed);
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
            Message::TlConnectResult(_) => {
                self.counters.unsolicited.add(1, Relaxed);
            }
            other => {
                self.counters.rejected.add(1, Relaxed);
                pr_err!(
                    "vmbus: host sent {}, which only a guest sends\n",
                    other.msgtype()
                );
            }
        }
    }

    fn reject_offer(&self, relid: u32, why: &str) {
        self.counters.rejected.add(1, Relaxed);
        pr_err!("vmbus: rejected offer of relid {}: {}\n", relid, why);
    }

    fn on_offer(&self, o: &OfferChannel) {
        self.counters.offers.add(1, Relaxed);
        let relid = o.child_relid;
        if relid == 0 || relid >= MAX_RELID {
            return self.reject_offer(relid, "relid out of range");
        }
        let hot = {
            let st = self.state.lock();
            if st.phase != Phase::Connected {
                drop(st);
                return self.reject_offer(relid, "bus not connected");
            }
            if st.channels.iter().any(|c| c.relid() == relid) {
                drop(st);
                return self.reject_offer(relid, "relid already in use");
            }
            if st.channels.len() >= MAX_CHANNELS {
                drop(st);
                return self.reject_offer(relid, "too many channels");
            }
            st.offers_done
        };
        let ch = match Channel::new(self.self_arc(), o) {
            Ok(ch) => ch,
            Err(e) => {
                pr_err!("vmbus: offer of relid {}: {:?}\n", relid, e);
                return;
            }
        };
        pr_debug!(
            "vmbus: offer relid {} class {} ({}) instance {} connection {:#x}{}\n",
            relid,
            ch.info().class,
            ch.info().class.class_name().unwrap_or("unknown"),
            ch.info().instance,
            ch.info().connection_id,
            if ch.info().monitor_allocated {
                " (monitored: signalled by hypercall)"
            } else {
                ""
            }
        );
        {
            let mut st = self.state.lock();
            if st.channels.push(ch.clone(), GFP_KERNEL).is_err() {
                return;
            }
        }
        if let Some(slot) = self.relids.lock().get_mut(relid as usize) {
            *slot = Some(ch.clone());
        }
        if hot && !self.closing.load(Acquire) {
            let _ = workqueue::system().enqueue::<Arc<Bus>, 2>(self.self_arc());
        }
    }

    fn on_rescind(&self, relid: u32) {
        self.counters.rescinds.add(1, Relaxed);
        let ch = self
            .state
            .lock()
            .channels
            .iter()
            .find(|c| c.relid() == relid)
            .cloned();
        let Some(ch) = ch else {
            self.counters.rejected.add(1, Relaxed);
            pr_err!("vmbus: rescind of unknown relid {}\n", relid);
            return;
        };
        pr_info!("vmbus: relid {} rescinded\n", relid);
        ch.mark_rescinded();
        self.cond.notify_all();
        if !self.closing.load(Acquire) {
            let _ = workqueue::system().enqueue::<Arc<Bus>, 2>(self.self_arc());
        }
    }

    /// Binds drivers to new channels, releases rescinded ones.
    fn scan(&self) {
        let _guard = self.scan_lock.lock();
        if self.closing.load(Acquire) {
            return;
        }
        for ch in self.channels().iter() {
            if ch.is_rescinded() {
                ch.unbind();
                self.release(ch);
            } else {
                ch.bind();
            }
        }
    }

    /// Forgets a rescinded, unbound channel and tells the host.
    fn release(&self, ch: &Arc<Channel>) {
        let relid = ch.relid();
        if let Some(slot) = self.relids.lock().get_mut(relid as usize) {
            if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, ch)) {
                *slot = None;
            }
        }
        ch.flush();
        self.state.lock().channels.retain(|c| !Arc::ptr_eq(c, ch));
        if let Err(e) = self.post(&RelidReleased { child_relid: relid }) {
            pr_err!("vmbus: RELID_RELEASED {} failed: {:?}\n", relid, e);
        } else {
            pr_info!("vmbus: relid {} released\n", relid);
        }
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
