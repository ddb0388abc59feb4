// SPDX-License-Identifier: GPL-2.0

//! A VMBus channel and the API drivers use.
//!
//! A channel exists from its offer until the host rescinds it (or VMBus
//! unloads). A driver that binds to it (by class, see [`crate::drivers`])
//! opens it: [`Channel::open`] allocates the ring pages,
//! creates the ring GPADL, sends OPENCHANNEL and waits for the result.
//! From then on:
//!
//! * [`Channel::send_inband`] and [`Channel::send_with_pages`] write a
//!   packet to the guest-to-host ring and signal the host when the ring
//!   rules say so; [`Channel::send_inband_wait`] instead waits for space
//!   when the ring is full (`pending_send_sz`, below);
//! * packets from the host are read in process context, by the channel's
//!   work (queued from the channel's event flag), and handed to the
//!   driver's [`ChannelHandler::on_packet`]; [`Channel::poll`] reads them
//!   synchronously instead;
//! * [`Channel::request`] sends a packet that asks for a completion and
//!   waits for the completion with the same transaction ID.
//!
//! Waiting for ring space follows Linux's `pending_send_sz` protocol: the
//! sender stores how many free bytes it waits for in its send ring's
//! header, checks once more (the host may have freed space meanwhile), and
//! sleeps on [`Channel::space`]. The host signals the channel when its
//! reads make the free space cross that amount (`hv_pkt_iter_close`); the
//! signal runs the channel's work, which wakes the sender under the send
//! lock, so a wakeup between the check and the sleep is not lost. Close and
//! rescind wake it too; it never waits longer than its timeout.
//!
//! [`Channel::close`] takes the rings away from every path above under
//! their locks before it tells the host and tears the GPADL down, so no
//! driver call can reach ring pages that are being released: afterwards
//! sends fail with `ENOTCONN` and nothing calls the handler any more. The
//! pages themselves are freed only when the host confirmed the teardown
//! (or rescinded the channel); if it never answers they are leaked, never
//! reused while the host may still write them.
//!
//! This file is the channel's life (offer, open, retarget, close, rescind);
//! [`io`] is its traffic (sending, receiving, completions).

use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Relaxed, Release};
use kernel::sync::{
    new_condvar, new_mutex, new_spinlock, new_spinlock_irq, Arc, CondVar, Mutex, SpinLock,
    SpinLockIrq,
};
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

use super::device::ChannelDevice;
use super::ring::{RingPages, RingView};
mod io;

use super::{Bus, Expect, Phase, Reply};
use crate::vmbus::guid::Guid;
use crate::vmbus::message::{
    CloseChannel, ModifyChannel, OfferChannel, OfferFlags, OpenChannel, MAX_USER_DEFINED_BYTES,
};
use crate::vmbus::packet::Packet;
use crate::vmbus::ring::{RingConsumer, RingError, RingProducer};
#[cfg(hv_guest_selftest)]
use crate::vmbus::ring::{HeaderField, RingMemory};

/// What the offer said, copied once.
#[derive(Clone, Copy)]
pub(crate) struct OfferInfo {
    pub(crate) class: Guid,
    pub(crate) instance: Guid,
    pub(crate) relid: u32,
    pub(crate) connection_id: u32,
    pub(crate) sub_channel_index: u16,
    pub(crate) monitor_allocated: bool,
    pub(crate) dedicated_interrupt: bool,
    /// The offer's `chn_flags` (a socket offer has the TLNPI flag).
    pub(crate) flags: OfferFlags,
    /// The offer's user-defined area (a socket offer's says who connects).
    pub(crate) user_def: [u8; MAX_USER_DEFINED_BYTES],
}

impl OfferInfo {
    /// Whether this is a Hyper-V socket connection's channel.
    pub(crate) fn is_socket(&self) -> bool {
        self.flags.contains(OfferFlags::TLNPI_PROVIDER_OFFER)
    }
}

/// The life of a channel as debugfs shows it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    Offered,
    Opening,
    Open,
    Closing,
    Closed,
    /// The host broke the ring protocol; the channel is closed.
    Broken,
}

/// What a driver gets called with.
pub(crate) trait ChannelHandler: Send + Sync {
    /// A packet from the host (process context, the channel's work). Must
    /// not call [`Channel::poll`], [`Channel::close`] or wait for a
    /// [`Channel::request`] on the same channel.
    fn on_packet(&self, ch: &Arc<Channel>, pkt: &Packet<'_>);

    /// Whether the driver reads the ring itself ([`Channel::read_one`]):
    /// then nothing reads for it and the host's signals call
    /// [`ChannelHandler::on_signal`] instead, and packets wait in the ring
    /// until the driver takes them, so a slow reader fills the ring and
    /// holds the host back (a socket's flow control).
    fn reads_ring(&self) -> bool {
        false
    }

    /// The host signalled a channel whose driver reads the ring itself:
    /// it wrote, or made room. Called from the channel's event interrupt
    /// (hard irq: must not sleep, take a mutex or read the ring), and once
    /// from process context right after the open, for what came before.
    fn on_signal(&self) {}
}

/// The first transaction ID of [`Channel::request`]: the IDs below it are
/// the driver's own (a block driver numbers its packets by tag), so a
/// completion for one is never taken for a request's.
pub(crate) const REQUEST_ID_BASE: u64 = 1 << 63;

/// Largest completion payload [`Channel::request`] returns.
const MAX_COMPLETION: usize = 4096;

/// A request waiting for its completion.
struct Pending {
    trans_id: u64,
    done: bool,
    data: KVec<u8>,
}

/// The receive side: the consumer and the buffer packets are copied into.
struct Rx {
    consumer: RingConsumer<RingView>,
    buf: KVec<u8>,
}

/// Control state, changed by open/close/bind/unbind (process context).
struct Control {
    state: State,
    driver: Option<&'static str>,
    /// The auxiliary device was created (once per channel).
    probed: bool,
    /// The channel's auxiliary device while it exists.
    device: Option<ChannelDevice>,
    /// What the last [`Channel::close`] found: whether the host confirmed
    /// the GPADL torn down.
    last_close: Option<bool>,
    gpadl: u32,
    pages: Option<Arc<RingPages>>,
    /// The VP the host interrupts for this channel (set at open, changed
    /// by [`Channel::retarget`]).
    target_vp: u32,
}

/// Counters for debugfs.
pub(crate) struct ChannelCounters {
    pub(crate) tx_packets: Atomic<u64>,
    pub(crate) rx_packets: Atomic<u64>,
    pub(crate) signals: Atomic<u64>,
    pub(crate) events: Atomic<u64>,
    pub(crate) errors: Atomic<u64>,
    /// Sends that found the send ring full.
    pub(crate) ring_full: Atomic<u64>,
    /// Sleeps waiting for the host to free send ring space.
    pub(crate) space_waits: Atomic<u64>,
}

impl ChannelCounters {
    const fn new() -> Self {
        Self {
            tx_packets: Atomic::new(0),
            rx_packets: Atomic::new(0),
            signals: Atomic::new(0),
            events: Atomic::new(0),
            errors: Atomic::new(0),
            ring_full: Atomic::new(0),
            space_waits: Atomic::new(0),
        }
    }
}

/// What [`Channel::status`] reports.
pub(crate) struct ChannelStatus {
    pub(crate) state: State,
    /// The bound driver's name.
    pub(crate) driver: Option<&'static str>,
    /// The GPADL handle of the rings (0 when closed).
    pub(crate) gpadl: u32,
    /// Ring sizes in bytes, headers included (0 when closed).
    pub(crate) send_bytes: usize,
    pub(crate) recv_bytes: usize,
}

/// One offered channel.
#[pin_data]
pub(crate) struct Channel {
    bus: Arc<Bus>,
    info: OfferInfo,
    #[pin]
    ctl: Mutex<Control>,
    /// The send ring while open; `None` otherwise (taken by close). A
    /// spinlock: block drivers send from `queue_rq`, which may not sleep,
    /// and a send only copies into the ring.
    #[pin]
    tx: SpinLock<Option<RingProducer<RingView>>>,
    /// Senders waiting for send ring space sleep here, with `tx`; it is
    /// notified with `tx` held (work, rescind) or after `tx` was emptied
    /// (close).
    #[pin]
    space: CondVar,
    /// The receive ring while open; held while a packet is handled.
    #[pin]
    rx: Mutex<Option<Rx>>,
    /// The driver's callback while open.
    #[pin]
    handler: Mutex<Option<Arc<dyn ChannelHandler>>>,
    /// The callback the event interrupt calls itself, while open, for a
    /// driver that reads the ring itself: no work item between the host's
    /// signal and the waiting reader (a socket's round trip).
    #[pin]
    irq_handler: SpinLockIrq<Option<Arc<dyn ChannelHandler>>>,
    /// Requests waiting for completions.
    #[pin]
    pending: Mutex<KVec<Pending>>,
    #[pin]
    completed: CondVar,
    #[pin]
    work: Work<Channel>,
    rescinded: Atomic<bool>,
    /// The host broke a ring of this open channel (set by the receive
    /// path, which must not wait for `ctl`: open may hold it).
    broken: Atomic<bool>,
    next_trans_id: Atomic<u64>,
    pub(crate) counters: ChannelCounters,
}

impl_has_work! {
    impl HasWork<Self> for Channel { self.work }
}

impl WorkItem for Channel {
    type Pointer = Arc<Channel>;

    fn run(this: Arc<Channel>) {
        let handler = this.handler.lock().clone();
        match handler.as_deref() {
            Some(h) if h.reads_ring() => h.on_signal(),
            h => this.drain(h),
        }
        // The host may have signalled because send ring space crossed a
        // waiting sender's pending_send_sz.
        this.wake_senders();
    }
}

fn ring_errno(e: RingError) -> Error {
    match e {
        RingError::Full { .. } => EAGAIN,
        RingError::BufferTooSmall { .. } => EMSGSIZE,
        _ => EIO,
    }
}

impl Channel {
    pub(super) fn new(bus: Arc<Bus>, o: &OfferChannel) -> Result<Arc<Self>> {
        let info = OfferInfo {
            class: o.offer.if_type,
            instance: o.offer.if_instance,
            relid: o.child_relid,
            connection_id: o.connection_id,
            sub_channel_index: o.offer.sub_channel_index,
            monitor_allocated: o.monitor_allocated(),
            dedicated_interrupt: o.is_dedicated_interrupt(),
            flags: o.offer.chn_flags,
            user_def: o.offer.user_def,
        };
        Arc::pin_init(
            pin_init!(Channel {
                bus,
                info,
                ctl <- new_mutex!(Control {
                    state: State::Offered,
                    driver: None,
                    probed: false,
                    device: None,
                    last_close: None,
                    gpadl: 0,
                    pages: None,
                    target_vp: 0,
                }, "hv_guest_channel_ctl"),
                tx <- new_spinlock!(None, "hv_guest_channel_tx"),
                space <- new_condvar!("hv_guest_channel_space"),
                rx <- new_mutex!(None, "hv_guest_channel_rx"),
                handler <- new_mutex!(None, "hv_guest_channel_handler"),
                irq_handler <- new_spinlock_irq!(None, "hv_guest_channel_irq_handler"),
                pending <- new_mutex!(KVec::new(), "hv_guest_channel_pending"),
                completed <- new_condvar!("hv_guest_channel_completed"),
                work <- new_work!("hv_guest_channel_work"),
                rescinded: Atomic::new(false),
                broken: Atomic::new(false),
                next_trans_id: Atomic::new(REQUEST_ID_BASE),
                counters: ChannelCounters::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// The offer.
    pub(crate) fn info(&self) -> &OfferInfo {
        &self.info
    }

    /// The relid.
    pub(crate) fn relid(&self) -> u32 {
        self.info.relid
    }

    /// State, bound driver, GPADL handle and ring sizes, for debugfs.
    pub(crate) fn status(&self) -> ChannelStatus {
        let ctl = self.ctl.lock();
        let (s, r) = ctl.pages.as_ref().map_or((0, 0), |p| {
            (
                p.send_pages() * 4096,
                (p.total_pages() - p.send_pages()) * 4096,
            )
        });
        let state = if ctl.state == State::Open && self.broken.load(Acquire) {
            State::Broken
        } else {
            ctl.state
        };
        ChannelStatus {
            state,
            driver: ctl.driver,
            gpadl: ctl.gpadl,
            send_bytes: s,
            recv_bytes: r,
        }
    }

    /// The VP the host interrupts for this channel while it is open.
    pub(crate) fn target_vp(&self) -> u32 {
        self.ctl.lock().target_vp
    }

    /// Moves the channel's interrupts to `cpu` (MODIFYCHANNEL, from VMBus
    /// 4.1; from 5.3 the host answers and a refusal is `EIO`). The channel
    /// must be open (`ENOTCONN`); `EOPNOTSUPP` before 4.1; `EINVAL` if
    /// `cpu` is not online.
    pub(crate) fn retarget(&self, cpu: u32) -> Result {
        let bus = &self.bus;
        let relid = self.relid();
        let version = bus.connection().version;
        if !version.has_modify_channel() {
            return Err(EOPNOTSUPP);
        }
        let vp = crate::cpu::vp_index(cpu)?;
        let mut ctl = self.ctl.lock();
        if ctl.state != State::Open || self.is_rescinded() {
            return Err(ENOTCONN);
        }
        if ctl.target_vp == vp {
            return Ok(());
        }
        let msg = ModifyChannel {
            child_relid: relid,
            target_vp: vp,
        };
        if !version.modify_channel_answered() {
            bus.post(&msg)?;
        } else {
            let status = bus.request(
                &msg,
                Expect::Modify(relid),
                |r| match r {
                    Reply::Modify(m) if m.child_relid == relid => Some(m.status),
                    _ => None,
                },
                || self.is_rescinded(),
            )?;
            if status != 0 {
                pr_err!(
                    "vmbus: host refused to move relid {} to VP {}: status {:#x}\n",
                    relid,
                    vp,
                    status
                );
                return Err(EIO);
            }
        }
        pr_info!(
            "vmbus: relid {} now interrupts CPU {} (VP {})\n",
            relid,
            cpu,
            vp
        );
        ctl.target_vp = vp;
        Ok(())
    }

    pub(crate) fn is_rescinded(&self) -> bool {
        self.rescinded.load(Acquire)
    }

    pub(super) fn mark_rescinded(&self) {
        self.rescinded.store(true, Release);
        self.completed.notify_all();
        self.wake_senders();
    }

    /// Wakes senders waiting for ring space; they look again. Process
    /// context.
    fn wake_senders(&self) {
        // Taking `tx` orders this after a sender's check and its sleep.
        let _tx = self.tx.lock();
        self.space.notify_all();
    }

    /// The event flag of this relid fired (hard irq). The channel's work
    /// goes on the high-priority system workqueue: a completion a task
    /// waits for (a disk request) must not queue behind that task.
    pub(super) fn on_event(&self) {
        self.counters.events.add(1, Relaxed);
        {
            // Held across the call: `take_rings` clears the slot under
            // this lock, so the handler is not dropped while it runs.
            let direct = self.irq_handler.lock();
            if let Some(h) = direct.as_ref() {
                h.on_signal();
                return;
            }
        }
        let _ = workqueue::system_highpri().enqueue(self.self_arc());
    }

    /// Waits until the channel's work is not running or queued. Not from
    /// the work itself.
    pub(super) fn flush(&self) {
        crate::shim::flush_work(&self.work);
    }

    fn self_arc(&self) -> Arc<Channel> {
        // SAFETY: every `Channel` is made by `Channel::new` inside an
        // `Arc`, alive while `self` is borrowed; `into` takes a new count.
        unsafe { kernel::sync::ArcBorrow::from_raw(core::ptr::from_ref(self)) }.into()
    }

    /// Whether [`Channel::bind`] has work left: a primary channel whose
    /// device was not made yet.
    pub(super) fn needs_bind(&self) -> bool {
        self.info.sub_channel_index == 0 && !self.ctl.lock().probed
    }

    /// Creates the channel's auxiliary device (once): the driver for its
    /// class, if registered, probes it before this returns. Sub-channels
    /// get none: their primary's driver opens them.
    pub(super) fn bind(&self) {
        if self.info.sub_channel_index != 0 {
            return;
        }
        {
            let mut ctl = self.ctl.lock();
            if ctl.probed {
                return;
            }
            ctl.probed = true;
        }
        // The class's name from the contract; drivers match it by the
        // same constant. A socket offer's class is the service it
        // connects, so socket channels are named by their flag instead.
        let name = if self.info.is_socket() {
            crate::vmbus::hvsock::DEVICE_NAME
        } else {
            self.info.class.class().map_or(c"channel", |c| c.name)
        };
        // Not under `ctl`: the probe opens the channel.
        match ChannelDevice::new(name, &self.self_arc()) {
            Ok(dev) => self.ctl.lock().device = Some(dev),
            Err(e) => pr_err!("vmbus: no device for relid {}: {:?}\n", self.relid(), e),
        }
    }

    /// Deletes the channel's device (its driver, if bound, closes the
    /// channel as it unbinds) and closes the channel if still open.
    /// `None` if it was not open, else whether the host confirmed the
    /// GPADL teardown.
    pub(super) fn unbind(&self) -> Option<bool> {
        let dev = {
            let mut ctl = self.ctl.lock();
            ctl.last_close = None;
            ctl.device.take()
        };
        drop(dev);
        self.close();
        self.ctl.lock().last_close.take()
    }

    /// Replaces the handler of an open channel (a driver that opens its
    /// channels before it has the object that handles their packets).
    /// `ENOTCONN` if the channel is not open.
    pub(crate) fn set_handler(&self, handler: Arc<dyn ChannelHandler>) -> Result {
        let mut h = self.handler.lock();
        if h.is_none() {
            return Err(ENOTCONN);
        }
        *h = Some(handler);
        Ok(())
    }

    /// The open sub-channels' siblings: the channels offered with this
    /// (primary) channel's class and instance and a sub-channel index,
    /// not rescinded, in index order.
    pub(crate) fn sub_channels(&self) -> KVec<Arc<Channel>> {
        let mut out: KVec<Arc<Channel>> = KVec::new();
        for ch in self.bus.channels().into_iter() {
            if self.is_sub_channel(&ch) && out.push(ch, GFP_KERNEL).is_err() {
                break;
            }
        }
        out.sort_unstable_by_key(|c| c.info.sub_channel_index);
        out
    }

    /// Whether `other` is a sub-channel of this (primary) channel.
    fn is_sub_channel(&self, other: &Channel) -> bool {
        other.info.sub_channel_index != 0
            && other.info.class == self.info.class
            && other.info.instance == self.info.instance
            && !other.is_rescinded()
    }

    /// Waits until `count` sub-channels of this primary channel are
    /// offered, at most `timeout_ms`; returns those there are then (the
    /// host may offer fewer than asked for).
    pub(crate) fn wait_sub_channels(&self, count: usize, timeout_ms: u32) -> KVec<Arc<Channel>> {
        self.bus.wait_channels(timeout_ms, |chans| {
            self.is_rescinded() || chans.iter().filter(|c| self.is_sub_channel(c)).count() >= count
        });
        self.sub_channels()
    }

    /// Names the driver bound to this channel (debugfs).
    pub(crate) fn set_driver(&self, driver: Option<&'static str>) {
        self.ctl.lock().driver = driver;
    }

    /// The bus this channel was offered on.
    pub(super) fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// Opens the channel with rings of `send_pages` and `recv_pages`
    /// pages (each with its header page) and `handler` for what arrives.
    pub(crate) fn open(
        &self,
        send_pages: usize,
        recv_pages: usize,
        handler: Arc<dyn ChannelHandler>,
    ) -> Result {
        let bus = &self.bus;
        let relid = self.relid();
        let mut ctl = self.ctl.lock();
        if !matches!(ctl.state, State::Offered | State::Closed) {
            return Err(EBUSY);
        }
        if self.is_rescinded() || bus.connection().phase != Phase::Connected {
            return Err(ENODEV);
        }
        ctl.state = State::Opening;
        self.broken.store(false, Release);
        let pages =
            RingPages::new(send_pages, recv_pages).inspect_err(|_| ctl.state = State::Closed)?;
        pages.init_headers();
        let pfns = pages.pfns()?;
        let gpadl = match bus.create_gpadl(relid, &pfns, || self.is_rescinded()) {
            Ok(g) => g,
            Err(e) => {
                // Not created (refused, or the host never answered): a
                // host that answers late may still map the pages, keep them.
                if e == ETIMEDOUT {
                    pages.clone().leak();
                }
                ctl.state = State::Closed;
                return Err(e);
            }
        };
        ctl.gpadl = gpadl;
        ctl.pages = Some(pages.clone());
        ctl.target_vp = bus.target_vp;
        let rings = RingProducer::new(pages.send_ring())
            .and_then(|p| Ok((p, RingConsumer::new(pages.recv_ring())?)));
        let (producer, consumer) = match rings {
            Ok(r) => r,
            Err(e) => {
                pr_err!("vmbus: relid {}: ring setup: {}\n", relid, e);
                self.release_gpadl(&mut ctl);
                return Err(EIO);
            }
        };
        // The buffer packets are copied into for the handler; a driver
        // that reads the ring itself brings its own.
        let data_len = if handler.reads_ring() {
            0
        } else {
            (consumer.data_len() as usize).min(65536)
        };
        let mut buf = KVec::new();
        if let Err(e) = buf.resize(data_len, 0, GFP_KERNEL) {
            self.release_gpadl(&mut ctl);
            return Err(e.into());
        }
        *self.tx.lock() = Some(producer);
        *self.rx.lock() = Some(Rx { consumer, buf });
        if handler.reads_ring() {
            *self.irq_handler.lock() = Some(handler.clone());
        }
        *self.handler.lock() = Some(handler);
        let msg = OpenChannel {
            child_relid: relid,
            openid: relid,
            ringbuffer_gpadlhandle: gpadl,
            target_vp: ctl.target_vp,
            downstream_ringbuffer_pageoffset: pages.send_pages() as u32,
            userdata: [0; MAX_USER_DEFINED_BYTES],
        };
        let result = bus.request(
            &msg,
            Expect::Open(relid),
            |r| match r {
                Reply::OpenResult(o) if o.child_relid == relid && o.openid == relid => {
                    Some(o.status)
                }
                _ => None,
            },
            || self.is_rescinded(),
        );
        let err = match result {
            Ok(0) => None,
            Ok(status) => {
                pr_err!(
                    "vmbus: host refused to open relid {}: status {:#x}\n",
                    relid,
                    status
                );
                Some(EIO)
            }
            Err(e) => Some(e),
        };
        if let Some(e) = err {
            self.take_rings();
            self.release_gpadl(&mut ctl);
            return Err(e);
        }
        ctl.state = State::Open;
        drop(ctl);
        // Anything the host sent before we were ready (on the queue
        // `on_event` uses).
        let _ = workqueue::system_highpri().enqueue(self.self_arc());
        Ok(())
    }

    /// Takes rings and handler away from every driver path; waits for a
    /// running receive callback.
    fn take_rings(&self) {
        // Not dropped under the irq lock: the handler may hold what must
        // be released in process context.
        let direct = self.irq_handler.lock().take();
        drop(direct);
        *self.handler.lock() = None;
        *self.tx.lock() = None;
        // A sender waiting for space sees no ring and gives up.
        self.space.notify_all();
        *self.rx.lock() = None;
        self.flush();
        let mut pending = self.pending.lock();
        for p in pending.iter_mut() {
            p.done = true;
        }
        drop(pending);
        self.completed.notify_all();
    }

    /// Tears the ring GPADL down and frees the pages once the host
    /// confirmed (or rescinded the channel, after which it no longer
    /// touches them); leaks them otherwise. Returns whether the host
    /// confirmed the teardown.
    fn release_gpadl(&self, ctl: &mut Control) -> bool {
        let Some(pages) = ctl.pages.take() else {
            ctl.state = State::Closed;
            return false;
        };
        let mut confirmed = false;
        let rescinded = self.is_rescinded();
        match self.bus.teardown_gpadl(self.relid(), ctl.gpadl, rescinded) {
            Ok(()) => confirmed = !rescinded,
            Err(e) => {
                pr_err!(
                    "vmbus: GPADL {:#x} of relid {} not torn down ({:?}): its pages stay allocated\n",
                    ctl.gpadl,
                    self.relid(),
                    e
                );
                pages.leak();
            }
        }
        ctl.gpadl = 0;
        if ctl.state != State::Broken {
            ctl.state = State::Closed;
        }
        confirmed
    }

    /// Closes the channel if open: no more packets either way, then
    /// CLOSECHANNEL and the GPADL teardown. `None` if it was not open,
    /// else whether the host confirmed the GPADL teardown.
    pub(crate) fn close(&self) -> Option<bool> {
        let mut ctl = self.ctl.lock();
        if !matches!(ctl.state, State::Open | State::Broken) {
            return None;
        }
        let broken = ctl.state == State::Broken || self.broken.load(Acquire);
        ctl.state = State::Closing;
        self.take_rings();
        if let Err(e) = self.bus.post(&CloseChannel {
            child_relid: self.relid(),
        }) {
            pr_err!("vmbus: CLOSECHANNEL {} failed: {:?}\n", self.relid(), e);
        }
        if broken {
            ctl.state = State::Broken;
        }
        let torn_down = self.release_gpadl(&mut ctl);
        ctl.last_close = Some(torn_down);
        pr_debug!("vmbus: relid {} closed\n", self.relid());
        Some(torn_down)
    }

    /// Sets the send ring's write index past the ring's end and signals
    /// the host, which must close the channel: for testing the host's
    /// defences (debugfs `vmbus/misbehave`). `ENOTCONN` if not open.
    #[cfg(hv_guest_selftest)]
    pub(crate) fn corrupt_send_ring(&self) -> Result {
        let ctl = self.ctl.lock();
        if ctl.state != State::Open {
            return Err(ENOTCONN);
        }
        let pages = ctl.pages.as_ref().ok_or(ENOTCONN)?;
        pages
            .send_ring()
            .store_release(HeaderField::WriteIndex, 0xffff_fff8);
        drop(ctl);
        self.signal();
        Ok(())
    }
}
