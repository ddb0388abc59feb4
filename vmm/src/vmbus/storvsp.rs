// SPDX-License-Identifier: GPL-2.0

//! The SCSI controller (`--disk`): a device of class [`SCSI`] that speaks
//! the VSTOR protocol (`vmbus::vstor`) to Linux's storvsc or hv_guest's
//! disk driver and serves its disks ([`crate::storage::Controller`]).
//!
//! Control requests come in-band; SCSI commands with data come as
//! GPA-direct packets whose one range names the data's guest pages
//! ([`GuestBuffer`], checked before any byte moves), commands without data
//! in-band. Every request that asks for a completion gets one: a malformed
//! VSTOR packet is answered INVALID_PARAMETER, a bad range or a command
//! in-band with data SRB_STATUS_INVALID_REQUEST, each logged and counted;
//! only a packet that is not data at all (another VMBus packet type, or
//! unknown flags) breaks the protocol and closes the channel.
//!
//! On CREATE_SUB_CHANNELS the primary asks the server for sub-channels
//! ([`StorvspSubChannel`], same class and instance), which serve SCSI
//! commands on the same disks once the primary is ready, and go when it
//! closes.
//!
//! SCSI commands run on the controller's I/O thread, never on the VMBus
//! thread (a device must not block it): the channel checks a command and
//! hands it over; the I/O thread executes it against the image and leaves
//! the completion in the channel's [`Sink`], then wakes the channel, whose
//! next poll writes every completion waiting there at once (one interrupt
//! for many). Ring space for a command's completion is reserved before
//! the command is taken: the guest's receive ring must hold the
//! completions of everything in flight plus this one, or the command is
//! answered BUSY. An answer that cannot be written without taking room
//! reserved for completions waits in a short queue (at most
//! [`MAX_DEFERRED`]; beyond that it is dropped and counted) until the
//! guest frees ring space, which it signals (`pending_send_sz`). So a
//! completion never waits for ring space and nothing queues without bound.
//! Linux's storvsc never gets there: it sizes its queue to the ring.

use crate::sandbox::seccomp::{self, ThreadClass};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use vmbus::guid::{Guid, SCSI};
use vmbus::packet::{
    Packet, PacketDescriptor, PacketFlags, PacketType, DESCRIPTOR_SIZE, TRAILER_SIZE,
};
use vmbus::ring::RingError;
use vmbus::scsi;
use vmbus::vstor::{
    operation, parse_request, srb, status, VmscsiRequest, VstorPacket, VstorRequest,
    VSTOR_PACKET_SIZE,
};
use zerocopy::IntoBytes as _;

use super::channel::{ChannelIo, ChannelWaker};
use super::device::{DeviceError, DiskHotplug, VmbusDevice};
use crate::storage::disk::{DataBuffer, MAX_TRANSFER_BYTES};
use crate::storage::fault::Fault;
use crate::storage::guest_buffer::GuestBuffer;
use crate::storage::image::DiskImage;
use crate::storage::protocol::{Action, Phase, Protocol};
use crate::storage::Controller;

/// The controller's counters (the disks count their own commands).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorvspCounters {
    /// VSTOR requests taken.
    pub requests: u64,
    /// SCSI commands handed to the I/O thread.
    pub commands: u64,
    /// Requests refused as malformed (bad packet, bad range, data in-band).
    pub invalid: u64,
    /// Commands answered BUSY because the channel had its most in flight.
    pub busy: u64,
    /// Completions that did not fit the guest's receive ring.
    pub completions_dropped: u64,
    /// Most commands in flight on one channel at once.
    pub in_flight_high: u64,
    /// Completions broken on purpose (`hvctl storage-fault`).
    pub faults_injected: u64,
}

/// Where the I/O thread leaves one channel's completions.
struct Sink {
    done: Mutex<Vec<(PacketDescriptor, VstorPacket)>>,
    waker: ChannelWaker,
    /// A wake is on its way: the I/O thread sends one per batch.
    woken: AtomicBool,
}

impl Sink {
    fn new(waker: ChannelWaker) -> Arc<Self> {
        Arc::new(Self {
            done: Mutex::new(Vec::new()),
            waker,
            woken: AtomicBool::new(false),
        })
    }

    fn push(&self, desc: PacketDescriptor, reply: VstorPacket) {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((desc, reply));
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    fn take(&self) -> Vec<(PacketDescriptor, VstorPacket)> {
        self.woken.store(false, Ordering::Release);
        std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A checked SCSI command for the I/O thread.
struct Job {
    desc: PacketDescriptor,
    request: VmscsiRequest,
    /// The data's guest pages, checked when the command was taken; none
    /// for a command without data.
    data: Option<GuestBuffer>,
    sink: Arc<Sink>,
}

/// What the I/O thread takes, in order.
enum IoWork {
    /// A SCSI command.
    Command(Job),
    /// Everything queued before it is done: says so on the sender.
    Barrier(Sender<()>),
}

/// The controller's I/O thread.
struct IoThread {
    tx: Option<Sender<IoWork>>,
    thread: Option<JoinHandle<()>>,
}

impl IoThread {
    fn start(controller: Arc<Mutex<Controller>>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("scsi-io".into())
            .spawn(move || {
                seccomp::enter_or_exit(ThreadClass::ScsiIo);
                io_thread(&controller, &rx);
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        // The thread finishes what it has, then sees the channel closed.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("vmbus: scsi: the I/O thread panicked");
            }
        }
    }
}

fn io_thread(controller: &Mutex<Controller>, rx: &Receiver<IoWork>) {
    for work in rx {
        match work {
            IoWork::Command(mut job) => {
                let reply = execute(controller, &mut job);
                job.sink.push(job.desc, reply);
            }
            IoWork::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Executes a job's command; its completion.
fn execute(controller: &Mutex<Controller>, job: &mut Job) -> VstorPacket {
    let request = &job.request;
    let mut empty = Vec::new();
    let buf: &mut dyn DataBuffer = match &mut job.data {
        Some(guest) => guest,
        None => &mut empty,
    };
    let done = controller
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .execute(
            request.path_id,
            request.target_id,
            request.lun,
            request.cdb(),
            buf,
        );
    let sense = done.outcome.sense.map(|s| s.to_bytes());
    let reply = request.completed(
        done.srb_status,
        done.outcome.status,
        done.outcome.moved,
        sense.as_ref().map_or(&[][..], |s| &s[..]),
    );
    VstorPacket::completion(status::SUCCESS).with_body(&reply)
}

/// What the primary channel and its sub-channels share: the protocol
/// state (sub-channels serve SCSI only once the primary is ready), the
/// counters and the I/O thread.
struct Shared {
    protocol: Protocol,
    counters: StorvspCounters,
    io: Option<IoThread>,
    /// Commands in flight per LUN, and the most at once (queue depth).
    lun_in_flight: [u32; 256],
    lun_queue_high: [u32; 256],
    /// A fault to commit on the next completion of a command.
    fault: Option<Fault>,
}

/// The disks (locked by the I/O thread while it executes, and by reports)
/// and the shared state (locked on the VMBus thread).
#[derive(Clone)]
struct Service {
    controller: Arc<Mutex<Controller>>,
    shared: Arc<Mutex<Shared>>,
}

impl Service {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Ring bytes one completion takes: descriptor, packet, trailer.
const COMPLETION_BYTES: usize = DESCRIPTOR_SIZE + VSTOR_PACKET_SIZE + TRAILER_SIZE;

/// Most answers that wait for ring space on one channel.
pub const MAX_DEFERRED: usize = 256;

/// One channel's command flow: its sink, what it has in flight, and the
/// answers waiting for ring space.
struct Flow {
    sink: Option<Arc<Sink>>,
    in_flight: usize,
    commands: u64,
    deferred: VecDeque<(PacketDescriptor, VstorPacket)>,
}

impl Flow {
    fn new() -> Self {
        Self {
            sink: None,
            in_flight: 0,
            commands: 0,
            deferred: VecDeque::new(),
        }
    }

    /// A fresh sink for a new open; commands of an earlier open complete
    /// into the old one, which nobody reads.
    fn open(&mut self, io: &ChannelIo<'_>) {
        self.sink = Some(Sink::new(io.waker()));
        self.in_flight = 0;
        self.deferred.clear();
    }

    /// Answers `desc` now if that leaves room for what is in flight, else
    /// queues the answer (bounded) until the guest frees space.
    fn answer(
        &mut self,
        io: &mut ChannelIo<'_>,
        counters: &mut StorvspCounters,
        desc: &PacketDescriptor,
        reply: VstorPacket,
    ) {
        if !desc.flags.contains(PacketFlags::COMPLETION_REQUESTED) {
            return;
        }
        if self.deferred.is_empty() && room(io, self.in_flight + 1) {
            return send(io, counters, desc, &reply);
        }
        if self.deferred.len() >= MAX_DEFERRED {
            counters.completions_dropped += 1;
            log::warn!(
                "vmbus: scsi: {MAX_DEFERRED} answers wait for ring space already: the answer \
                 to request {:#x} is dropped",
                desc.trans_id
            );
            return;
        }
        self.deferred.push_back((*desc, reply));
        self.wait(io);
    }

    /// Asks the guest for a signal when the waiting answers fit.
    fn wait(&self, io: &mut ChannelIo<'_>) {
        if self.deferred.is_empty() {
            io.room_is_enough();
            return;
        }
        let need = (self.in_flight + self.deferred.len()) * COMPLETION_BYTES;
        // Already there (the guest read meanwhile): the next poll writes.
        if io.wait_for_room(need).unwrap_or(false) {
            if let Some(sink) = &self.sink {
                sink.waker.wake();
            }
        }
    }

    fn close(&mut self) {
        self.sink = None;
        self.in_flight = 0;
    }

    /// Writes the completions the I/O thread left.
    fn drain(&mut self, io: &mut ChannelIo<'_>, service: &Service) {
        let Some(sink) = &self.sink else {
            return;
        };
        let done = sink.take();
        if done.is_empty() {
            return;
        }
        let mut shared = service.lock();
        for (desc, reply) in done {
            self.in_flight = self.in_flight.saturating_sub(1);
            if let Some(r) = reply.body_as::<VmscsiRequest>() {
                let n = &mut shared.lun_in_flight[usize::from(r.lun)];
                *n = n.saturating_sub(1);
            }
            if let Some(fault) = shared.fault.take() {
                shared.counters.faults_injected += 1;
                log::warn!(
                    "vmbus: scsi: fault {fault} committed on the completion of request {:#x} (hvctl storage-fault)",
                    desc.trans_id
                );
                for (d, bytes) in fault.apply(&desc, &reply) {
                    if let Err(e) = io.send_completion(&d, &bytes) {
                        log::error!("vmbus: scsi: faulty completion not sent: {e}");
                    }
                }
                continue;
            }
            send(io, &mut shared.counters, &desc, &reply);
        }
    }

    /// Writes the answers that waited for ring space, as far as they fit
    /// beside what is in flight.
    fn flush_deferred(&mut self, io: &mut ChannelIo<'_>, service: &Service) {
        if self.deferred.is_empty() {
            return;
        }
        let mut shared = service.lock();
        while room(io, self.in_flight + 1) {
            let Some((desc, reply)) = self.deferred.pop_front() else {
                break;
            };
            send(io, &mut shared.counters, &desc, &reply);
        }
        drop(shared);
        self.wait(io);
    }

    /// Takes SCSI command `request` of `packet`: checks its data and hands
    /// it to the I/O thread, or answers at once.
    fn submit(
        &mut self,
        io: &mut ChannelIo<'_>,
        shared: &mut Shared,
        packet: &Packet<'_>,
        request: &VmscsiRequest,
    ) {
        let desc = &packet.desc;
        let len = request.data_transfer_length;
        let data = if desc.ty == PacketType::DATA_USING_GPA_DIRECT {
            match packet.gpa_ranges() {
                Err(e) => Err(format!("GPA ranges: {e:?}")),
                Ok(ranges) => GuestBuffer::new(io.memory().clone(), ranges, len)
                    .map(Some)
                    .map_err(|e| e.to_string()),
            }
        } else if len == 0 {
            Ok(None)
        } else {
            Err(format!("{len} bytes of data but no GPA range"))
        };
        let data = match data {
            Ok(r) => r,
            Err(why) => {
                shared.counters.invalid += 1;
                log::warn!(
                    "vmbus: scsi: request {:#x} (opcode {:#04x}) refused: {why}",
                    desc.trans_id,
                    request.cdb().first().copied().unwrap_or(0)
                );
                let reply = VstorPacket::completion(status::INVALID_PARAMETER)
                    .with_body(&request.completed(srb::INVALID_REQUEST, 0, 0, &[]));
                return self.answer(io, &mut shared.counters, desc, reply);
            }
        };
        // Taken only with room reserved for its completion and an I/O
        // thread that takes it; else BUSY, which Linux retries.
        let thread = shared.io.as_ref().and_then(|t| t.tx.as_ref());
        let taken = match (&self.sink, thread) {
            (Some(sink), Some(tx)) if room(io, self.in_flight + 1) => {
                let job = Job {
                    desc: *desc,
                    request: *request,
                    data,
                    sink: sink.clone(),
                };
                let sent = tx.send(IoWork::Command(job)).is_ok();
                if !sent {
                    log::error!("vmbus: scsi: the I/O thread is gone");
                }
                sent
            }
            _ => false,
        };
        if !taken {
            shared.counters.busy += 1;
            let reply = VstorPacket::completion(status::SUCCESS).with_body(&request.completed(
                srb::ERROR,
                scsi::status::BUSY,
                0,
                &[],
            ));
            return self.answer(io, &mut shared.counters, desc, reply);
        }
        self.in_flight += 1;
        self.commands += 1;
        shared.counters.commands += 1;
        let lun = usize::from(request.lun);
        shared.lun_in_flight[lun] += 1;
        shared.lun_queue_high[lun] = shared.lun_queue_high[lun].max(shared.lun_in_flight[lun]);
        shared.counters.in_flight_high = shared.counters.in_flight_high.max(self.in_flight as u64);
    }
}

/// Whether the guest's receive ring holds `completions` completions.
fn room(io: &ChannelIo<'_>, completions: usize) -> bool {
    io.outbound_free()
        .is_ok_and(|free| free > completions * COMPLETION_BYTES)
}

/// Writes a completion for `desc`; one that does not fit is dropped and
/// counted.
fn send(
    io: &mut ChannelIo<'_>,
    counters: &mut StorvspCounters,
    desc: &PacketDescriptor,
    reply: &VstorPacket,
) {
    match io.send_completion(desc, reply.as_bytes()) {
        Ok(()) => {}
        Err(RingError::Full { need, free }) => {
            counters.completions_dropped += 1;
            log::warn!(
                "vmbus: scsi: the guest's receive ring is full ({free} bytes free, {need} \
                 needed): completion of request {:#x} dropped",
                desc.trans_id
            );
        }
        Err(e) => log::error!("vmbus: scsi: completion not sent: {e}"),
    }
}

/// Checks a packet's type and flags: only data is VSTOR.
fn check_packet(packet: &Packet<'_>) -> Result<(), DeviceError> {
    let desc = &packet.desc;
    if desc.ty != PacketType::DATA_INBAND && desc.ty != PacketType::DATA_USING_GPA_DIRECT {
        return Err(DeviceError::Protocol(format!(
            "scsi: packet of type {:?}: only in-band and GPA-direct data are VSTOR",
            desc.ty
        )));
    }
    if desc.flags.0 & !PacketFlags::COMPLETION_REQUESTED.0 != 0 {
        return Err(DeviceError::Protocol(format!(
            "scsi: unknown packet flags {:#x}",
            desc.flags.0
        )));
    }
    Ok(())
}

/// Parses `packet`; a malformed one is answered INVALID_PARAMETER here
/// (`None`).
fn parse(io: &mut ChannelIo<'_>, shared: &mut Shared, packet: &Packet<'_>) -> Option<VstorRequest> {
    shared.counters.requests += 1;
    match parse_request(packet.data()) {
        Ok((_, r)) => Some(r),
        Err(e) => {
            shared.counters.invalid += 1;
            log::warn!(
                "vmbus: scsi: request {:#x} refused: {e}",
                packet.desc.trans_id
            );
            if packet
                .desc
                .flags
                .contains(PacketFlags::COMPLETION_REQUESTED)
            {
                send(
                    io,
                    &mut shared.counters,
                    &packet.desc,
                    &VstorPacket::completion(status::INVALID_PARAMETER),
                );
            }
            None
        }
    }
}

/// The SCSI controller device (its primary channel).
pub struct Storvsp {
    service: Service,
    flow: Flow,
    /// Disks came or went: the guest is to be told (ENUMERATE_BUS).
    bus_changed: bool,
}

/// How long a disk's removal waits for the I/O queued before it.
const REMOVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One sub-channel of the controller: SCSI commands only.
pub struct StorvspSubChannel {
    service: Service,
    flow: Flow,
}

impl Storvsp {
    /// A controller device serving `controller`'s disks, offering up to
    /// `max_sub_channels` sub-channels (one per vCPU beyond the first, as
    /// Linux asks for).
    pub fn new(controller: Controller, max_sub_channels: u16) -> Self {
        Self {
            service: Service {
                controller: Arc::new(Mutex::new(controller)),
                shared: Arc::new(Mutex::new(Shared {
                    protocol: Protocol::new(max_sub_channels, MAX_TRANSFER_BYTES),
                    counters: StorvspCounters::default(),
                    io: None,
                    lun_in_flight: [0; 256],
                    lun_queue_high: [0; 256],
                    fault: None,
                })),
            },
            flow: Flow::new(),
            bus_changed: false,
        }
    }

    /// Tells the guest the LUNs changed (an unsolicited ENUMERATE_BUS, as
    /// Hyper-V sends: storvsc tests every LUN it knows and rescans), once
    /// the controller is initialised; kept for later if the ring is full.
    fn tell_bus_changed(&mut self, io: &mut ChannelIo<'_>) {
        if !self.bus_changed || !matches!(self.service.lock().protocol.phase(), Phase::Ready(_)) {
            return;
        }
        let packet = VstorPacket {
            flags: 0,
            ..VstorPacket::request(operation::ENUMERATE_BUS)
        };
        match io.send_inband(0, packet.as_bytes()) {
            Ok(()) => {
                self.bus_changed = false;
                log::info!("vmbus: scsi: told the guest to rescan its LUNs");
            }
            Err(e) => log::warn!("vmbus: scsi: rescan notice not sent yet: {e}"),
        }
    }
}

impl DiskHotplug for Storvsp {
    fn add_disk(&mut self, lun: Option<u8>, image: DiskImage) -> Result<u8, String> {
        let path = image.path().to_path_buf();
        let lun = self
            .service
            .controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(lun, image)
            .map_err(|e| e.to_string())?;
        log::info!("vmbus: scsi: LUN {lun} added: {}", path.display());
        self.bus_changed = true;
        Ok(lun)
    }

    fn remove_disk(&mut self, lun: u8) -> Result<(), String> {
        if self
            .service
            .controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .disk(lun)
            .is_none()
        {
            return Err(format!("no disk at LUN {lun}"));
        }
        // The commands already queued finish first (commands that come
        // after find no LUN).
        let (tx, rx) = mpsc::channel();
        let queued = self
            .service
            .lock()
            .io
            .as_ref()
            .and_then(|t| t.tx.as_ref())
            .is_some_and(|t| t.send(IoWork::Barrier(tx)).is_ok());
        if queued && rx.recv_timeout(REMOVE_TIMEOUT).is_err() {
            return Err(format!(
                "the I/O queued for LUN {lun} did not finish within {} s; not removed",
                REMOVE_TIMEOUT.as_secs()
            ));
        }
        self.service
            .controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(lun);
        log::info!("vmbus: scsi: LUN {lun} removed");
        self.bus_changed = true;
        Ok(())
    }

    fn arm_fault(&mut self, fault: Fault) {
        log::info!("vmbus: scsi: fault {fault} armed for the next completion");
        self.service.lock().fault = Some(fault);
    }
}

impl VmbusDevice for Storvsp {
    fn name(&self) -> &'static str {
        "scsi"
    }

    fn class_id(&self) -> Guid {
        SCSI
    }

    fn instance_id(&self) -> Guid {
        INSTANCE
    }

    fn open(&mut self, io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        let mut shared = self.service.lock();
        shared.protocol.reset();
        if shared.io.is_none() {
            let thread = IoThread::start(self.service.controller.clone()).map_err(|e| {
                DeviceError::Protocol(format!("scsi: cannot start the I/O thread: {e}"))
            })?;
            shared.io = Some(thread);
        }
        drop(shared);
        self.flow.open(io);
        Ok(())
    }

    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError> {
        check_packet(packet)?;
        let service = self.service.clone();
        let mut shared = service.lock();
        let Some(request) = parse(io, &mut shared, packet) else {
            return Ok(());
        };
        let before = shared.protocol.phase();
        let reply = match shared.protocol.handle(&request) {
            Action::Complete(reply) => reply,
            Action::CreateSubChannels(n, reply) => {
                for _ in 0..n {
                    io.offer_sub_channel(Box::new(StorvspSubChannel {
                        service: self.service.clone(),
                        flow: Flow::new(),
                    }));
                }
                log::info!("vmbus: scsi: the guest asked for {n} sub-channel(s)");
                reply
            }
            Action::Execute => {
                if let VstorRequest::ExecuteSrb(srb) = request {
                    self.flow.submit(io, &mut shared, packet, &srb);
                }
                return Ok(());
            }
        };
        if reply.status != status::SUCCESS {
            log::info!(
                "vmbus: scsi: {request:?} answered {:#x} ({:?})",
                reply.status,
                shared.protocol.phase()
            );
        }
        if shared.protocol.phase() != before {
            log::debug!("vmbus: scsi: {:?} -> {:?}", before, shared.protocol.phase());
        }
        if packet
            .desc
            .flags
            .contains(PacketFlags::COMPLETION_REQUESTED)
        {
            send(io, &mut shared.counters, &packet.desc, &reply);
        }
        Ok(())
    }

    fn poll(&mut self, io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        self.flow.drain(io, &self.service);
        self.flow.flush_deferred(io, &self.service);
        self.tell_bus_changed(io);
        Ok(None)
    }

    fn disks(&mut self) -> Option<&mut dyn DiskHotplug> {
        Some(self)
    }

    fn close(&mut self) {
        self.flow.close();
        self.service.lock().protocol.reset();
    }

    fn counters(&self) -> String {
        let shared = self.service.lock();
        let c = &shared.counters;
        let mut out = format!(
            "version={} requests={} commands={} invalid={} busy={} completions_dropped={} \
             in_flight_high={} faults_injected={} channel_commands={}",
            shared
                .protocol
                .version()
                .map_or("none".to_string(), |v| format!(
                    "{}.{}",
                    v.major(),
                    v.minor()
                )),
            c.requests,
            c.commands,
            c.invalid,
            c.busy,
            c.completions_dropped,
            c.in_flight_high,
            c.faults_injected,
            self.flow.commands
        );
        let queue_high = shared.lun_queue_high;
        drop(shared);
        let controller = self
            .service
            .controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (lun, d) in controller.counters() {
            out.push_str(&format!(
                " lun{lun}_reads={} lun{lun}_writes={} lun{lun}_bytes_read={} \
                 lun{lun}_bytes_written={} lun{lun}_flushes={} lun{lun}_discards={} lun{lun}_errors={} \
                 lun{lun}_queue_high={}",
                d.reads,
                d.writes,
                d.bytes_read,
                d.bytes_written,
                d.flushes,
                d.discards,
                d.errors,
                queue_high[usize::from(lun)]
            ));
        }
        out
    }
}

impl VmbusDevice for StorvspSubChannel {
    fn name(&self) -> &'static str {
        "scsi"
    }

    fn class_id(&self) -> Guid {
        SCSI
    }

    fn instance_id(&self) -> Guid {
        INSTANCE
    }

    fn open(&mut self, io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        self.flow.open(io);
        Ok(())
    }

    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError> {
        check_packet(packet)?;
        let service = self.service.clone();
        let mut shared = service.lock();
        let Some(request) = parse(io, &mut shared, packet) else {
            return Ok(());
        };
        match (shared.protocol.on_sub_channel(&request), request) {
            (Action::Execute, VstorRequest::ExecuteSrb(srb)) => {
                self.flow.submit(io, &mut shared, packet, &srb);
            }
            (action, _) => {
                let reply = match action {
                    Action::Complete(reply) => reply,
                    _ => VstorPacket::completion(status::INVALID_DEVICE_STATE),
                };
                log::info!(
                    "vmbus: scsi: {request:?} on a sub-channel answered {:#x}",
                    reply.status
                );
                if packet
                    .desc
                    .flags
                    .contains(PacketFlags::COMPLETION_REQUESTED)
                {
                    send(io, &mut shared.counters, &packet.desc, &reply);
                }
            }
        }
        Ok(())
    }

    fn poll(&mut self, io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        self.flow.drain(io, &self.service);
        self.flow.flush_deferred(io, &self.service);
        Ok(None)
    }

    fn close(&mut self) {
        self.flow.close();
    }

    fn counters(&self) -> String {
        format!("channel_commands={}", self.flow.commands)
    }
}

/// The controller's instance GUID (one controller per VM).
const INSTANCE: Guid = super::ic::instance_guid(0x20);
