// SPDX-License-Identifier: GPL-2.0

//! An open channel's data path: its two rings in the ring GPADL and what a
//! device gets to use them ([`ChannelIo`]).
//!
//! Which half is which (Linux `__vmbus_open`): the GPADL's first
//! `downstream_ringbuffer_pageoffset` pages are the guest's send ring, so
//! hvhost *consumes* them ("inbound" here); the rest is the guest's receive
//! ring, which hvhost *produces* ("outbound"). Each ring's first page is its
//! header.
//!
//! Draining follows `hv_begin_read`/`hv_end_read`: mask the guest's
//! signals, read and commit every packet, unmask, and read again if
//! something arrived in between, so that a packet published while the mask
//! was up is never stranded.
//!
//! A guest signals only when its packet lands in an empty, unmasked ring.
//! So before unmasking, a drain that found packets and owes the guest no
//! signal keeps looking for the next packet for as long as the guest may
//! still be writing it, judged by the guest's own progress and not by the
//! clock ([`vp_has_had_its_chance`]): it stops once every VP either sleeps
//! (in HLT, or blocked in hvhost: it writes nothing until woken) or has run
//! [`POLL_BUDGET_NS`] of CPU time without publishing. A guest that streams
//! then writes into a masked ring and needs no signal, which saves an
//! HvSignalEvent exit and a wakeup of this thread per packet, however busy
//! the host is: a VP the host does not schedule uses none of its budget.
//! Without readings of the VPs ([`GuestPort::vcpu_sample`]) the drain does
//! not look at all. A signal the guest waits for (a completion, ring space)
//! goes out before the look, so the VP it wakes gets its budget too.
//! Signals to the guest (its relid's event flag) are decided by the shared
//! ring code: the outbound ring going non-empty, or the inbound ring
//! freeing what the guest's `pending_send_sz` asked for.

use std::sync::Arc;
use std::time::Instant;

use vmbus::message::HV_PAGE_SIZE;
use vmbus::packet::{PacketDescriptor, PacketFlags};
use vmbus::ring::{RingConsumer, RingError, RingProducer};

use super::device::{DeviceError, VmbusDevice};
use super::guest_ring::GuestRing;
use super::port::{GuestPort, VcpuSample};
use crate::hyperv::guest_mem::GuestPages;

/// Why an open channel must close.
#[derive(Debug, thiserror::Error)]
pub enum ChannelFault {
    /// The ring GPADL cannot hold two rings at that offset.
    #[error("ring GPADL of {pages} pages cannot be split at page {offset}")]
    BadRingLayout {
        /// Pages in the GPADL.
        pages: usize,
        /// The guest's downstream offset.
        offset: u32,
    },
    /// A ring's header is corrupt (indices out of range).
    #[error("ring: {0}")]
    Ring(RingError),
    /// Guest memory under a ring could not be reached.
    #[error("ring memory is not accessible")]
    Memory,
    /// The device gave up.
    #[error("{0}")]
    Device(#[from] DeviceError),
}

impl From<RingError> for ChannelFault {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}

/// Events of one open channel, counted by the server (for logs at close
/// and for devices that report them, like the perf sink).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Signals (HvSignalEvent) the guest sent that the server took.
    pub guest_signals: u64,
    /// Interrupts (event flags) the server sent the guest.
    pub guest_interrupts: u64,
}

/// A handle any thread can use to have the server poll a channel's device
/// (a device's I/O thread, when work it handed over completes).
#[derive(Clone)]
pub struct ChannelWaker {
    port: Arc<dyn GuestPort>,
    relid: u32,
}

impl ChannelWaker {
    /// The waker of channel `relid`, through `port`.
    pub fn new(port: Arc<dyn GuestPort>, relid: u32) -> Self {
        Self { port, relid }
    }

    /// Asks for a poll of the channel's device on the server's thread.
    pub fn wake(&self) {
        self.port.wake_channel(self.relid);
    }
}

/// What a device sees of its channel while it runs.
pub struct ChannelIo<'a> {
    outbound: &'a mut RingProducer<GuestRing>,
    memory: &'a Arc<dyn GuestPages>,
    sub_channels: &'a mut Vec<Box<dyn VmbusDevice>>,
    rescind: &'a mut bool,
    waker: &'a ChannelWaker,
    notify: bool,
    /// Packets written for the guest in this call.
    sent: u64,
    /// The room the device waits for ([`Self::wait_for_room`]).
    room_wanted: Option<Room>,
    now: Instant,
    reference_time: u64,
    counts: ChannelCounts,
}

impl ChannelIo<'_> {
    /// Writes an in-band packet for the guest (no completion requested).
    pub fn send_inband(&mut self, trans_id: u64, data: &[u8]) -> Result<(), RingError> {
        if self
            .outbound
            .write_inband(trans_id, PacketFlags::NONE, data)?
        {
            self.notify = true;
        }
        self.sent += 1;
        Ok(())
    }

    /// Writes the completion of the guest's request `request`.
    pub fn send_completion(
        &mut self,
        request: &PacketDescriptor,
        data: &[u8],
    ) -> Result<(), RingError> {
        if self.outbound.write_completion(request, data)? {
            self.notify = true;
        }
        self.sent += 1;
        Ok(())
    }

    /// Asks the server to offer `device` as the next sub-channel of this
    /// channel (same class and instance, `sub_channel_index` 1, 2, ...),
    /// once this call returns. Sub-channels go when this channel closes.
    pub fn offer_sub_channel(&mut self, device: Box<dyn VmbusDevice>) {
        self.sub_channels.push(device);
    }

    /// Asks the server to close and rescind this channel once this call
    /// returns (a socket connection that is over).
    pub fn rescind(&mut self) {
        *self.rescind = true;
    }

    /// A waker for this channel, for the device's own threads.
    pub fn waker(&self) -> ChannelWaker {
        self.waker.clone()
    }

    /// Bytes free now in the ring the device writes to (to the guest).
    pub fn outbound_free(&self) -> Result<usize, RingError> {
        Ok(self.outbound.free_bytes()? as usize)
    }

    /// Size of the data area of the ring the device writes to.
    pub fn outbound_len(&self) -> usize {
        self.outbound.data_len() as usize
    }

    /// Asks the guest to signal the channel once more than `bytes` are
    /// free in the ring the device writes to (`pending_send_sz`; the
    /// signal polls the device). Returns whether that much is free already
    /// (then no signal comes: write now).
    pub fn wait_for_room(&mut self, bytes: usize) -> Result<bool, RingError> {
        self.wait_for_room_batched(bytes, bytes)
    }

    /// [`Self::wait_for_room`] for a device that can write again once
    /// `first` bytes are free but asks the guest to signal only once
    /// `batch` are (one wake-up for several packets). hvhost's look for
    /// room ([`ChannelRings::poll_device`]) polls the device as soon as
    /// `first` are free.
    pub fn wait_for_room_batched(&mut self, first: usize, batch: usize) -> Result<bool, RingError> {
        let bytes = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let signal_at = bytes(batch.max(first));
        self.outbound.enable_pending_send_size();
        let enough = self.outbound.set_pending_send_size(signal_at)?;
        self.room_wanted = (!enough).then_some(Room {
            first: bytes(first),
            signal_at,
        });
        Ok(enough)
    }

    /// Withdraws [`Self::wait_for_room`].
    pub fn room_is_enough(&mut self) {
        self.outbound.clear_pending_send_size();
        self.room_wanted = None;
    }

    /// Guest memory, for the pages a GPA-direct packet names (the device
    /// checks them: [`GuestPages::is_ram`]).
    pub fn memory(&self) -> &Arc<dyn GuestPages> {
        self.memory
    }

    /// The channel's event counts before this call.
    pub fn counts(&self) -> ChannelCounts {
        self.counts
    }

    /// When this call started (one clock for the whole call).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The partition reference time (TIME_REF_COUNT) at [`Self::now`].
    pub fn reference_time(&self) -> u64 {
        self.reference_time
    }
}

/// CPU time a VP may run without publishing a packet (or freeing room)
/// before a look for it ends and the guest's signals are asked for again.
/// In the nested rig a 4 KiB packet costs the guest about 12 µs, and a
/// thread woken by hvhost's interrupt (a writer that waited for ring space,
/// a reader that waited for data) needs most of 200 µs to take the
/// interrupt, be scheduled and reach the ring: with 50 µs, Linux's hv_sock
/// writer, woken for ring space, signalled 0.05–0.07 times per packet
/// (bench_stream); with 200 µs, 0.01–0.03. On real hardware all of it is
/// far cheaper, and the budget only bounds what a look spends on a guest
/// that computes instead of writing; a VP that sleeps ends it at once.
pub const POLL_BUDGET_NS: u64 = 200_000;

/// Whether a drain's look for the next packet is over as far as one VP
/// goes: it cannot be read (no reading: nothing to wait for), it sleeps
/// (in HLT or in the VMM), or it has run `budget_ns` since the look began
/// (`start`, its run time then).
pub fn vp_has_had_its_chance(start: Option<u64>, now: Option<VcpuSample>, budget_ns: u64) -> bool {
    match (start, now) {
        (_, None) => true,
        (_, Some(s)) if s.asleep => true,
        // It could not be read when the look began: its budget counts
        // from its first reading, which this is.
        (None, Some(_)) => false,
        (Some(t0), Some(s)) => s.run_ns.saturating_sub(t0) >= budget_ns,
    }
}

/// Most device polls one [`ChannelRings::poll_device`] makes while it looks
/// for room (each moves data to the guest), so that other channels are
/// served in between.
pub const ROOM_POLLS: usize = 16;

/// The rings of an open channel.
pub struct ChannelRings {
    inbound: RingConsumer<GuestRing>,
    outbound: RingProducer<GuestRing>,
    memory: Arc<dyn GuestPages>,
    /// Sub-channels the device asked for, for the server to offer.
    pub sub_channels: Vec<Box<dyn VmbusDevice>>,
    /// The device asked for the channel to be rescinded.
    pub rescind: bool,
    waker: ChannelWaker,
    /// One packet's worth of copy buffer (the inbound data area's size).
    buf: Vec<u8>,
    /// Signals and interrupts so far (the server counts them).
    pub counts: ChannelCounts,
    /// See [`POLL_BUDGET_NS`].
    poll_budget_ns: u64,
    /// Each VP's run time when the current look began.
    poll_start: Vec<Option<u64>>,
}

impl ChannelRings {
    /// Data bytes of the guest's two rings: the one it writes (hvhost
    /// reads) and the one it reads.
    pub fn ring_bytes(&self) -> (u32, u32) {
        (self.inbound.data_len(), self.outbound.data_len())
    }
}

/// What a [`ChannelRings::with_io`] call wrote for the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Set the channel's event flag for the guest.
    pub notify: bool,
    /// Packets written.
    pub packets: u64,
    /// The room the device waits for in the guest's ring.
    pub room_wanted: Option<Room>,
}

/// Room a device waits for in the guest's ring, in bytes free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// Enough to write again.
    pub first: u32,
    /// When the guest is asked to signal (`pending_send_sz`; at least
    /// `first`).
    pub signal_at: u32,
}

/// What a ring operation asks of the caller.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Set the channel's event flag for the guest.
    pub signal_guest: bool,
    /// Poll the device again at this time.
    pub next_poll: Option<Instant>,
    /// The drain stopped at its budget with packets left: drain again soon.
    pub more: bool,
    /// The drain stopped because the device takes no more packets for now
    /// ([`VmbusDevice::takes_packets`]); the guest's signals stay masked
    /// and the device's wake-up drains again.
    pub stalled: bool,
    /// Packets read from the guest, and written for it.
    pub packets: u64,
    pub packets_sent: u64,
    /// Times the drain looked for the guest's next packet with the ring
    /// masked ([`POLL_BUDGET_NS`]), and times the packet came.
    pub looks: u64,
    pub looks_found: u64,
    /// Signals the drain sent through its `signal` itself, before a look
    /// (counted in the channel's counts already; [`Self::signal_guest`] is
    /// for the rest).
    pub signals_early: u64,
    /// Times a device waited for room in the guest's ring and hvhost
    /// looked for it ([`ChannelRings::poll_device`]), and times it came.
    pub room_looks: u64,
    pub room_looks_found: u64,
}

impl Outcome {
    /// Takes in what a [`ChannelRings::with_io`] call wrote.
    pub fn add_sent(&mut self, sent: &Sent) {
        self.signal_guest |= sent.notify;
        self.packets_sent += sent.packets;
    }
}

impl ChannelRings {
    /// Splits the ring GPADL's `pfns` at `downstream_offset` pages.
    pub fn new(
        mem: &Arc<dyn GuestPages>,
        pfns: &[u64],
        downstream_offset: u32,
        waker: ChannelWaker,
    ) -> Result<Self, ChannelFault> {
        let off = downstream_offset as usize;
        let bad = ChannelFault::BadRingLayout {
            pages: pfns.len(),
            offset: downstream_offset,
        };
        // Each ring needs its header page and at least one data page.
        if off < 2 || pfns.len() < off + 2 {
            return Err(bad);
        }
        let gpas: Vec<u64> = pfns.iter().map(|p| p * HV_PAGE_SIZE).collect();
        let ring = |pages: &[u64]| GuestRing::new(mem.clone(), pages[0], pages[1..].to_vec());
        let inbound = RingConsumer::new(ring(&gpas[..off]))?;
        let outbound = RingProducer::new(ring(&gpas[off..]))?;
        let buf = vec![0; inbound.data_len() as usize];
        let rings = Self {
            inbound,
            outbound,
            memory: mem.clone(),
            sub_channels: Vec::new(),
            rescind: false,
            waker,
            buf,
            counts: ChannelCounts::default(),
            poll_budget_ns: POLL_BUDGET_NS,
            poll_start: Vec::new(),
        };
        rings.check_memory()?;
        Ok(rings)
    }

    /// Guest memory under the rings.
    pub fn memory(&self) -> &Arc<dyn GuestPages> {
        &self.memory
    }

    /// Sets the CPU time a VP may run without publishing before a drain
    /// stops looking for more (tests).
    pub fn set_poll_budget(&mut self, ns: u64) {
        self.poll_budget_ns = ns;
    }

    /// Looks for the guest's next packet while some VP may still be
    /// writing it ([`vp_has_had_its_chance`]); whether it came.
    fn poll_for_more(&mut self) -> Result<bool, ChannelFault> {
        self.look(|rings| Ok(rings.inbound.bytes_available()? != 0))
    }

    /// Looks for `ready` while some VP may still bring it about
    /// ([`vp_has_had_its_chance`]); whether it came. The thread yields
    /// between looks, so that a VP sharing its CPU runs.
    fn look(
        &mut self,
        ready: impl Fn(&Self) -> Result<bool, ChannelFault>,
    ) -> Result<bool, ChannelFault> {
        let port = self.waker.port.clone();
        let vps = port.vp_count();
        let mut start = std::mem::take(&mut self.poll_start);
        start.clear();
        start.extend((0..vps).map(|vp| port.vcpu_sample(vp).map(|s| s.run_ns)));
        let found = loop {
            if ready(self)? {
                break true;
            }
            self.check_memory()?;
            let over = (0..vps).zip(&mut start).all(|(vp, start)| {
                let now = port.vcpu_sample(vp);
                let done = vp_has_had_its_chance(*start, now, self.poll_budget_ns);
                if start.is_none() {
                    *start = now.map(|s| s.run_ns);
                }
                done
            });
            if over {
                break false;
            }
            std::thread::yield_now();
        };
        self.poll_start = start;
        Ok(found)
    }

    /// Sends the signal `out` owes the guest now, through `signal`, rather
    /// than leaving it to the caller when the call ends
    /// ([`Outcome::signals_early`]).
    fn signal_now(&mut self, signal: &mut dyn FnMut(), out: &mut Outcome) {
        if out.signal_guest {
            signal();
            out.signal_guest = false;
            out.signals_early += 1;
            self.counts.guest_interrupts += 1;
        }
    }

    /// Polls `device`. While it waits for room in the guest's ring
    /// ([`ChannelIo::wait_for_room`]), looks for that room the way a drain
    /// looks for packets, with the guest's signal for it withdrawn: a guest
    /// that reads what hvhost writes then frees the room while hvhost
    /// looks, and needs no signal. When the room comes, polls the device
    /// again (at most [`ROOM_POLLS`] times a call); when the look ends
    /// without it, the device's request for a signal stands again. What
    /// the device wrote is signalled (`signal`) before each look, as the
    /// guest frees room by reading it.
    pub fn poll_device(
        &mut self,
        device: &mut dyn VmbusDevice,
        now: Instant,
        reference_time: u64,
        signal: &mut dyn FnMut(),
        out: &mut Outcome,
    ) -> Result<Option<Instant>, ChannelFault> {
        let mut polls = 0;
        loop {
            let (next, sent) = self.with_io(now, reference_time, |io| device.poll(io))?;
            polls += 1;
            out.add_sent(&sent);
            let Some(need) = sent.room_wanted else {
                return Ok(next);
            };
            if polls >= ROOM_POLLS || self.rescind {
                return Ok(next);
            }
            self.signal_now(signal, out);
            self.outbound.clear_pending_send_size();
            out.room_looks += 1;
            if self.look(|rings| Ok(rings.outbound.free_bytes()? > need.first))? {
                out.room_looks_found += 1;
            } else if !self.outbound.set_pending_send_size(need.signal_at)? {
                // The guest signals when the room comes.
                return Ok(next);
            }
        }
    }

    fn check_memory(&self) -> Result<(), ChannelFault> {
        if self.inbound.memory().failed() || self.outbound.memory().failed() {
            return Err(ChannelFault::Memory);
        }
        Ok(())
    }

    fn io(&mut self, now: Instant, reference_time: u64) -> ChannelIo<'_> {
        ChannelIo {
            outbound: &mut self.outbound,
            memory: &self.memory,
            sub_channels: &mut self.sub_channels,
            rescind: &mut self.rescind,
            waker: &self.waker,
            notify: false,
            sent: 0,
            room_wanted: None,
            now,
            reference_time,
            counts: self.counts,
        }
    }

    /// Runs `f` with the channel's I/O; collects whether to signal and
    /// how many packets it wrote.
    pub fn with_io<T>(
        &mut self,
        now: Instant,
        reference_time: u64,
        f: impl FnOnce(&mut ChannelIo<'_>) -> Result<T, DeviceError>,
    ) -> Result<(T, Sent), ChannelFault> {
        let mut io = self.io(now, reference_time);
        let r = f(&mut io)?;
        let sent = Sent {
            notify: io.notify,
            packets: io.sent,
            room_wanted: io.room_wanted,
        };
        self.check_memory()?;
        Ok((r, sent))
    }

    /// Reads the packets the guest has published, at most `budget`, hands
    /// each to `device`, then polls it. With packets left over the guest's
    /// signals stay masked and [`Outcome::more`] says to come back.
    /// `signal` sets the channel's event flag for the guest at once (see
    /// [`Outcome::signals_early`]).
    pub fn drain(
        &mut self,
        device: &mut dyn VmbusDevice,
        now: Instant,
        reference_time: u64,
        budget: usize,
        signal: &mut dyn FnMut(),
    ) -> Result<Outcome, ChannelFault> {
        let mut out = Outcome::default();
        let mut left = budget;
        'drain: loop {
            self.inbound.mask_interrupts();
            let mut read = 0usize;
            loop {
                if left == 0 {
                    out.more = true;
                    break 'drain;
                }
                if self.rescind {
                    // The device is done with the channel: what is left
                    // goes with it.
                    break 'drain;
                }
                if !device.takes_packets() {
                    out.stalled = true;
                    break 'drain;
                }
                left -= 1;
                let Self {
                    inbound,
                    outbound,
                    memory,
                    sub_channels,
                    rescind,
                    waker,
                    buf,
                    counts,
                    ..
                } = self;
                let Some(packet) = inbound.read_packet(buf)? else {
                    if read > 0 {
                        // The device passes on what it took so far (the
                        // relay's bytes to its host stream) while hvhost
                        // waits for the guest.
                        out.next_poll =
                            self.poll_device(device, now, reference_time, signal, &mut out)?;
                        // A signal the guest waits for (a completion,
                        // ring space) goes out before the look, not when
                        // the drain ends: the VP it wakes is the one that
                        // writes next, and it is runnable from now on
                        // (KVM wakes it as the interrupt is raised).
                        self.signal_now(signal, &mut out);
                        out.looks += 1;
                        if self.poll_for_more()? {
                            out.looks_found += 1;
                            read = 0;
                            continue;
                        }
                    }
                    break;
                };
                read += 1;
                out.packets += 1;
                let mut io = ChannelIo {
                    outbound,
                    memory,
                    sub_channels,
                    rescind,
                    waker,
                    notify: false,
                    sent: 0,
                    room_wanted: None,
                    now,
                    reference_time,
                    counts: *counts,
                };
                device.packet(&mut io, &packet)?;
                out.signal_guest |= io.notify;
                out.packets_sent += io.sent;
                out.signal_guest |= self.inbound.commit()?;
                self.check_memory()?;
            }
            if !self.inbound.unmask_interrupts()? {
                break;
            }
        }
        self.check_memory()?;
        out.next_poll = self.poll_device(device, now, reference_time, signal, &mut out)?;
        Ok(out)
    }
}
