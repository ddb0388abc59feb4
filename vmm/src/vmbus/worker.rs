// SPDX-License-Identifier: GPL-2.0

//! The VMBus worker thread and its plumbing into the partition.
//!
//! Threads: the server and every device run on one thread, `vmbus`, which
//! owns all their state (no locks). vCPU threads only hand work over: a
//! message posted to connection 1 or 4 is copied into a [`Work`] item (the
//! hypercall returns at once; more than [`MAX_QUEUED_MESSAGES`] waiting
//! answers HV_STATUS_INSUFFICIENT_BUFFERS, which Linux retries), and a
//! channel's HvSignalEvent queues at most one [`Work::Signal`] per channel
//! until the worker has taken it (a flag per channel coalesces the rest).
//! The worker answers through the SynIC (its per-VP mutex), registers and
//! unregisters channel event connections (the table's lock, never held
//! while a handler runs), and sleeps until the next device timer.

use crate::sandbox::seccomp::{self, ThreadClass};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hvcall::hypercall::HvStatus;
use hvcall::synic::{HvMessage, MessageType};
use vmbus::message::{MAX_MESSAGE_SIZE, MESSAGE_CONNECTION_ID, MESSAGE_CONNECTION_ID_4};
use vmbus::version::Version;

use super::device::{CommandState, DeviceCommand, VmbusDevice};
use super::ic::heartbeat::Heartbeat;
use super::ic::shutdown::Shutdown;
use super::ic::timesync::Timesync;
use super::ic::IcDevice;
use super::port::{GuestActivity, VcpuSample};
use super::server::{Faults, GuestPort, Removal, Server, Stats, VMBUS_SINT};
use crate::api::{DeviceRef, Request};
use crate::hyperv::connections::{ConnectionError, EventHandler, MessageHandler};
use crate::hyperv::guest_mem::GuestPages;
use crate::hyperv::Partition;
use crate::storage::image::DiskImage;
use crate::storage::{Controller, DiskSpec, StorageError};
use crate::vsock::service::{Sockets, VsockConfig, VsockError};

/// Guest messages that may wait for the worker.
pub const MAX_QUEUED_MESSAGES: usize = 256;

/// The SynIC message type VMBus messages travel with (Linux posts and
/// expects 1).
pub const VMBUS_SYNIC_MESSAGE_TYPE: u32 = 1;

/// Work for the VMBus thread.
pub enum Work {
    /// A message the guest posted.
    Message {
        /// From this VP.
        vp: u32,
        /// On this connection.
        connection: u32,
        /// The payload.
        bytes: Vec<u8>,
        /// When it was queued.
        queued_at: Instant,
    },
    /// The guest signalled a channel.
    Signal {
        /// The channel.
        relid: u32,
        /// Cleared when the worker takes the signal.
        pending: Arc<AtomicBool>,
    },
    /// A device's own thread asks for its channel to be polled.
    Poll {
        /// The channel.
        relid: u32,
    },
    /// A host request.
    Command(DeviceCommand),
    /// A host program's socket connection, to be offered.
    AddSocket(Box<dyn VmbusDevice>),
    /// A control socket request, answered on `reply`.
    Control {
        /// The request.
        request: Request,
        /// Where the answer goes.
        reply: Sender<Result<String, String>>,
    },
    /// `hvctl disk-add`: a disk image the control thread opened (the VMBus
    /// thread opens no file), answered on `reply`.
    AttachDisk {
        /// Its LUN, or the first free one.
        lun: Option<u8>,
        /// The open, locked image.
        image: DiskImage,
        /// Where the answer goes.
        reply: Sender<Result<String, String>>,
    },
    /// End the thread.
    Stop,
}

/// How VMBus is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmbusConfig {
    /// The protocol versions accepted (`--vmbus-versions`).
    pub versions: Vec<Version>,
    /// Offer channels without a dedicated interrupt below 5.0
    /// (`--vmbus-shared-interrupts`).
    pub shared_interrupts: bool,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Time sample interval.
    pub timesync: Duration,
    /// Ask the guest to shut down this long after boot.
    pub shutdown_after: Option<Duration>,
    /// Fault injection.
    pub faults: Faults,
    /// Also offer the benchmark sink ([`super::perf::PerfSink`]).
    pub perf: bool,
    /// Disks on a SCSI controller ([`super::storvsp::Storvsp`]), offered
    /// when there is any.
    pub disks: Vec<DiskSpec>,
    /// Hyper-V sockets (`--vsock`).
    pub vsock: Option<VsockConfig>,
}

impl Default for VmbusConfig {
    fn default() -> Self {
        Self {
            versions: Version::SERVED.to_vec(),
            shared_interrupts: false,
            heartbeat: Duration::from_secs(1),
            timesync: Duration::from_secs(5),
            shutdown_after: None,
            faults: Faults::default(),
            perf: false,
            disks: Vec::new(),
            vsock: None,
        }
    }
}

/// Makes the devices hvhost can offer, by name: the initial set and what
/// the control socket adds.
struct DeviceFactory {
    heartbeat: Duration,
    timesync: Duration,
    heartbeats: Arc<AtomicU64>,
    shutdown_ready: Arc<AtomicBool>,
}

impl DeviceFactory {
    /// The names [`Self::make`] knows, in the order hvhost offers them.
    const NAMES: [&'static str; 3] = ["heartbeat", "shutdown", "timesync"];

    fn make(&self, name: &str) -> Option<Box<dyn VmbusDevice>> {
        Some(match name {
            "heartbeat" => Box::new(IcDevice::new(Heartbeat::new(
                self.heartbeat,
                self.heartbeats.clone(),
            ))),
            "shutdown" => Box::new(IcDevice::new(Shutdown::new(self.shutdown_ready.clone()))),
            "timesync" => Box::new(IcDevice::new(Timesync::new(self.timesync))),
            _ => return None,
        })
    }
}

/// How long [`Vmbus::control`] waits for the worker.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Posts VMBus messages on connection 1 or 4.
struct MessageConnection {
    connection: u32,
    tx: Mutex<Sender<Work>>,
    queued: Arc<AtomicUsize>,
}

impl MessageHandler for MessageConnection {
    fn post_message(
        &self,
        from_vp: u32,
        message_type: u32,
        payload: &[u8],
    ) -> Result<(), HvStatus> {
        if message_type != VMBUS_SYNIC_MESSAGE_TYPE {
            log::debug!("vmbus: VP {from_vp} posted SynIC message type {message_type}, not 1");
        }
        let len = payload.len().min(MAX_MESSAGE_SIZE);
        if self.queued.fetch_add(1, Ordering::SeqCst) >= MAX_QUEUED_MESSAGES {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(HvStatus::INSUFFICIENT_BUFFERS);
        }
        let bytes = payload[..len].to_vec();
        let work = Work::Message {
            vp: from_vp,
            connection: self.connection,
            bytes,
            queued_at: Instant::now(),
        };
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(work);
        if sent.is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(HvStatus::INSUFFICIENT_BUFFERS);
        }
        Ok(())
    }
}

/// One channel's event connection.
struct ChannelEvent {
    tx: Mutex<Sender<Work>>,
    relid: u32,
    pending: Arc<AtomicBool>,
}

impl EventHandler for ChannelEvent {
    fn signal_event(&self, _from_vp: u32, _flag_number: u16) -> Result<(), HvStatus> {
        if !self.pending.swap(true, Ordering::SeqCst) {
            let work = Work::Signal {
                relid: self.relid,
                pending: self.pending.clone(),
            };
            let _ = self
                .tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .send(work);
        }
        Ok(())
    }
}

/// The server's view of the partition.
struct PartitionPort {
    partition: Arc<Partition>,
    tx: Mutex<Sender<Work>>,
    activity: Option<Arc<dyn GuestActivity>>,
}

impl GuestPort for PartitionPort {
    fn vp_count(&self) -> u32 {
        self.partition.vp_count()
    }

    fn memory(&self) -> &Arc<dyn GuestPages> {
        self.partition.memory()
    }

    fn post_message(&self, vp: u32, message: &[u8]) -> Result<(), HvStatus> {
        let msg = HvMessage::new(MessageType(VMBUS_SYNIC_MESSAGE_TYPE), message)
            .ok_or(HvStatus::INVALID_PARAMETER)?;
        self.partition
            .synic(vp)
            .ok_or(HvStatus::INVALID_VP_INDEX)?
            .post_message(VMBUS_SINT, &msg)
    }

    fn vcpu_sample(&self, vp: u32) -> Option<VcpuSample> {
        self.activity.as_ref()?.sample(vp)
    }

    fn wake_channel(&self, relid: u32) {
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(Work::Poll { relid });
    }

    fn signal_channel(&self, vp: u32, relid: u32) {
        if let Some(synic) = self.partition.synic(vp) {
            if let Err(e) = synic.signal_event(VMBUS_SINT, relid as usize) {
                log::warn!("vmbus: cannot set event flag {relid} on VP {vp}: {e}");
            }
        }
    }

    fn register_channel_event(
        &self,
        connection_id: u32,
        relid: u32,
    ) -> Result<(), ConnectionError> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let handler = Arc::new(ChannelEvent {
            tx: Mutex::new(tx),
            relid,
            pending: Arc::new(AtomicBool::new(false)),
        });
        self.partition
            .connections()
            .register_event(connection_id, handler)
    }

    fn unregister_channel_event(&self, connection_id: u32) {
        self.partition.connections().unregister_event(connection_id);
    }

    fn reference_time(&self) -> u64 {
        self.partition.clock().now()
    }
}

/// Why VMBus could not start.
#[derive(Debug, thiserror::Error)]
pub enum VmbusError {
    /// A message connection was taken.
    #[error("cannot register the VMBus message connection: {0}")]
    Connection(#[from] ConnectionError),
    /// The thread did not start.
    #[error("cannot start the VMBus thread: {0}")]
    Thread(#[from] std::io::Error),
    /// A disk could not be set up.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Sockets could not be set up.
    #[error(transparent)]
    Vsock(#[from] VsockError),
}

/// The running VMBus of a VM.
pub struct Vmbus {
    tx: Sender<Work>,
    thread: Option<JoinHandle<(Stats, String)>>,
    partition: Arc<Partition>,
    shutdown_ready: Arc<AtomicBool>,
    heartbeats: Arc<AtomicU64>,
    /// `--vsock PATH`: removed at stop, after the thread (whose filter has no
    /// `unlink`) has closed it.
    vsock_path: Option<std::path::PathBuf>,
}

impl Vmbus {
    /// Starts the server with the utility devices (heartbeat, shutdown,
    /// timesync), and the benchmark sink if configured, on `partition`;
    /// `activity` reads the VPs' progress (without it, drains do not look
    /// for the guest's next packet: `super::channel`).
    pub fn start(
        partition: &Arc<Partition>,
        config: VmbusConfig,
        activity: Option<Arc<dyn GuestActivity>>,
    ) -> Result<Self, VmbusError> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let connections = partition.connections();
        for id in [MESSAGE_CONNECTION_ID, MESSAGE_CONNECTION_ID_4] {
            let handler = Arc::new(MessageConnection {
                connection: id,
                tx: Mutex::new(tx.clone()),
                queued: queued.clone(),
            });
            connections.register_message(id, handler)?;
        }
        let port = Arc::new(PartitionPort {
            partition: partition.clone(),
            tx: Mutex::new(tx.clone()),
            activity,
        });
        log::info!(
            "vmbus: serving version(s) {}",
            config
                .versions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut server = Server::new(port, config.versions.clone(), config.faults);
        server.set_shared_interrupts(config.shared_interrupts);
        let shutdown_ready = Arc::new(AtomicBool::new(false));
        let heartbeats = Arc::new(AtomicU64::new(0));
        let factory = DeviceFactory {
            heartbeat: config.heartbeat,
            timesync: config.timesync,
            heartbeats: heartbeats.clone(),
            shutdown_ready: shutdown_ready.clone(),
        };
        for device in DeviceFactory::NAMES.iter().filter_map(|n| factory.make(n)) {
            server.add_device(device);
        }
        if config.perf {
            server.add_device(Box::new(super::perf::PerfSink::new()));
        }
        if !config.disks.is_empty() {
            let controller = Controller::new(&config.disks)?;
            for lun in controller.luns() {
                if let Some(d) = controller.disk(lun) {
                    let img = d.image();
                    log::info!(
                        "vmbus: scsi: LUN {lun}: {} ({} bytes{})",
                        img.path().display(),
                        img.size(),
                        if img.read_only() { ", read-only" } else { "" }
                    );
                }
            }
            // One channel per vCPU at most: Linux asks for one fewer
            // sub-channels than it has CPUs.
            let max_sub_channels = u16::try_from(partition.vp_count().saturating_sub(1))
                .unwrap_or(u16::MAX)
                .min(64);
            server.add_device(Box::new(super::storvsp::Storvsp::new(
                controller,
                max_sub_channels,
            )));
        }
        if let Some(vsock) = &config.vsock {
            let tx = Mutex::new(tx.clone());
            let offer = Box::new(move |device| {
                let _ = tx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .send(Work::AddSocket(device));
            });
            server.set_socket_service(Box::new(Sockets::start(vsock, offer)?));
        }
        let shutdown_after = config.shutdown_after;
        let thread = std::thread::Builder::new().name("vmbus".into()).spawn({
            let heartbeats = heartbeats.clone();
            move || {
                seccomp::enter_or_exit(ThreadClass::Vmbus);
                run(server, factory, rx, queued, shutdown_after, heartbeats)
            }
        })?;
        Ok(Self {
            tx,
            thread: Some(thread),
            partition: partition.clone(),
            shutdown_ready,
            heartbeats,
            vsock_path: config.vsock.as_ref().map(|v| v.path.clone()),
        })
    }

    /// Asks the guest to shut down if it can be asked now (its shutdown
    /// channel is open); whether the request went out.
    pub fn request_shutdown(&self) -> bool {
        if !self.shutdown_ready.load(Ordering::SeqCst) {
            return false;
        }
        self.tx.send(Work::Command(DeviceCommand::Shutdown)).is_ok()
    }

    /// Runs a control socket request on the VMBus thread and returns its
    /// answer.
    pub fn control(&self, request: Request) -> Result<String, String> {
        self.ask(|reply| Work::Control { request, reply })
    }

    /// `hvctl disk-add SPEC`: opens the image here, on the caller's thread
    /// (the control socket's), and has the VMBus thread add it.
    pub fn attach_disk(&self, spec: &str) -> Result<String, String> {
        let spec: DiskSpec = spec.parse()?;
        let image = DiskImage::open(&spec.path, spec.read_only).map_err(|e| e.to_string())?;
        self.ask(|reply| Work::AttachDisk {
            lun: spec.lun,
            image,
            reply,
        })
    }

    /// Sends the work `make` builds around a reply channel and waits for
    /// the VMBus thread's answer (at most [`CONTROL_TIMEOUT`]).
    fn ask(
        &self,
        make: impl FnOnce(Sender<Result<String, String>>) -> Work,
    ) -> Result<String, String> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| "VMBus is stopping".to_string())?;
        answer
            .recv_timeout(CONTROL_TIMEOUT)
            .map_err(|_| "VMBus did not answer".to_string())?
    }

    /// Heartbeats the guest answered.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats.load(Ordering::Relaxed)
    }

    /// Stops the thread (after the vCPUs stopped) and returns its counters
    /// and its report ([`Server::report`]).
    pub fn stop(mut self) -> Option<(Stats, String)> {
        let connections = self.partition.connections();
        connections.unregister_message(MESSAGE_CONNECTION_ID);
        connections.unregister_message(MESSAGE_CONNECTION_ID_4);
        let _ = self.tx.send(Work::Stop);
        let stats = self.thread.take().and_then(|t| t.join().ok());
        if let Some(path) = &self.vsock_path {
            if let Err(e) = std::fs::remove_file(path) {
                log::warn!("vsock: cannot remove {}: {e}", path.display());
            }
        }
        stats
    }
}

/// Executes a control socket request.
fn control(
    server: &mut Server,
    factory: &DeviceFactory,
    heartbeats: &AtomicU64,
    request: Request,
    now: Instant,
) -> Result<String, String> {
    match request {
        Request::Devices => Ok(server
            .devices()
            .iter()
            .map(|d| format!("{} {} {}", d.relid, d.name, d.state))
            .collect::<Vec<_>>()
            .join("\n")),
        Request::Add(name) => {
            let device = factory.make(&name).ok_or_else(|| {
                format!(
                    "no device kind {name:?} (one of: {})",
                    DeviceFactory::NAMES.join(", ")
                )
            })?;
            let relid = server
                .add_device(device)
                .ok_or_else(|| "no relid left".to_string())?;
            log::info!("vmbus: device {name} added as relid {relid}");
            // What the guest sees of it: an offer now, or one when it
            // connects.
            Ok(if server.is_connected() {
                format!("relid {relid} offered")
            } else {
                format!("relid {relid} added; offered when the guest connects")
            })
        }
        Request::Remove(which) => {
            let relid = match which {
                DeviceRef::Relid(r) => r,
                DeviceRef::Name(n) => server
                    .find_device(&n)
                    .ok_or_else(|| format!("no device {n:?}"))?,
            };
            Ok(match server.remove_device(relid).map_err(|e| e.to_string())? {
                Removal::Removed => format!("relid {relid} removed (never offered to the guest)"),
                Removal::Rescinded => {
                    format!("relid {relid} rescinded; free once the guest releases it")
                }
            })
        }
        Request::Shutdown => match server.command(DeviceCommand::Shutdown, now) {
            Ok(CommandState::Ready) => Ok("delivered: the shutdown request is on its way to the guest".into()),
            Ok(CommandState::Queued) => Ok(
                "queued: the guest has not opened the shutdown channel; it gets the request when it does"
                    .into(),
            ),
            Ok(CommandState::Refused) => {
                Err("impossible: the guest shares no shutdown protocol version with hvhost".into())
            }
            Err(e) => Err(format!("impossible: {e}")),
        },
        Request::Stats => Ok(format!(
            "{}process open_fds={}",
            server.report(&format!("heartbeats={}", heartbeats.load(Ordering::Relaxed))),
            open_fds().map_or("unknown".into(), |n| n.to_string())
        )),
        // The builder's handler serves these; they never come here.
        Request::Debugcon(_) => Err("the VMBus worker has no debug console".into()),
        Request::Serial => Err("the VMBus worker has no UART".into()),
        // The control thread opens the image and sends Work::AttachDisk.
        Request::DiskAdd(_) => Err("a disk is added through Vmbus::attach_disk".into()),
        Request::DiskRemove(lun) => server
            .with_disks(now, |d| d.remove_disk(lun))
            .ok_or("no disk controller (hvhost started without --disk)")?
            .map(|()| format!("LUN {lun} removed; the guest is told to rescan")),
        Request::StorageFault(fault) => server
            .with_disks(now, |d| d.arm_fault(fault))
            .ok_or_else(|| "no disk controller (hvhost started without --disk)".to_string())
            .map(|()| format!("fault {fault} armed for the next completion")),
        Request::VsockFault(fault) => server.socket_fault(fault),
    }
}

/// The descriptors hvhost has open (each Unix stream of a socket
/// connection is one): what a test compares before and after.
fn open_fds() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// The next piece of work: the oldest that is not ring traffic (a guest
/// message, a host request, a new socket) ahead of channel signals and
/// polls. Ring traffic can queue up by the hundred while guests stream, and
/// each drain may look for the guest's next packet; a connect, open or
/// GPADL behind it would wait for all of them, and Linux gives a socket
/// connect 2 s. Only control moves ahead: the rings' contents stay in
/// order, and a drain reads whatever the ring holds when it runs.
fn next_work(pending: &mut VecDeque<Work>) -> Option<Work> {
    let control = pending
        .iter()
        .position(|w| !matches!(w, Work::Signal { .. } | Work::Poll { .. }))
        .unwrap_or(0);
    pending.remove(control)
}

fn run(
    mut server: Server,
    factory: DeviceFactory,
    rx: Receiver<Work>,
    queued: Arc<AtomicUsize>,
    shutdown_after: Option<Duration>,
    heartbeats: Arc<AtomicU64>,
) -> (Stats, String) {
    let mut shutdown_at = shutdown_after.map(|d| Instant::now() + d);
    let mut deferred: Option<DeviceCommand> = None;
    let mut pending = VecDeque::new();
    loop {
        let now = Instant::now();
        if shutdown_at.is_some_and(|t| t <= now) {
            shutdown_at = None;
            log::info!("vmbus: --shutdown-after expired");
            deferred = Some(DeviceCommand::Shutdown);
        }
        // A command waits for the guest's VMBus connection (--shutdown-after
        // may expire before the guest connects); once connected, the device
        // keeps it until its channel is ready.
        if let Some(cmd) = deferred.filter(|_| server.is_connected()) {
            deferred = None;
            match server.command(cmd, now) {
                Ok(state) => log::info!("vmbus: {cmd:?} request: {state:?}"),
                Err(e) => log::warn!("vmbus: cannot ask the guest ({cmd:?}): {e}"),
            }
        }
        let deadline = [server.poll(now), shutdown_at].into_iter().flatten().min();
        if pending.is_empty() {
            let work = match deadline {
                Some(t) => match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                    Ok(w) => w,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(w) => w,
                    Err(_) => break,
                },
            };
            pending.push_back(work);
        }
        pending.extend(rx.try_iter());
        let Some(work) = next_work(&mut pending) else {
            continue;
        };
        let now = Instant::now();
        match work {
            Work::Message {
                vp,
                connection,
                bytes,
                queued_at,
            } => {
                queued.fetch_sub(1, Ordering::SeqCst);
                server.note_message_wait(now.saturating_duration_since(queued_at));
                server.handle_message(vp, connection, &bytes, now);
            }
            Work::Signal { relid, pending } => {
                pending.store(false, Ordering::SeqCst);
                server.handle_signal(relid, now);
            }
            Work::Poll { relid } => server.poll_channel(relid, now),
            Work::Command(cmd) => {
                if let Err(e) = server.command(cmd, now) {
                    log::warn!("vmbus: cannot ask the guest ({cmd:?}): {e}");
                }
            }
            Work::AddSocket(device) => {
                if let Err(why) = server.add_socket(device) {
                    log::warn!("vsock: host connection refused: {why}");
                }
            }
            Work::Control { request, reply } => {
                let _ = reply.send(control(&mut server, &factory, &heartbeats, request, now));
            }
            Work::AttachDisk { lun, image, reply } => {
                let answer = server
                    .with_disks(now, |d| d.add_disk(lun, image))
                    .ok_or("no disk controller (hvhost started without --disk)")
                    .map_err(str::to_string)
                    .and_then(|added| added)
                    .map(|lun| format!("LUN {lun} added; the guest is told to rescan"));
                let _ = reply.send(answer);
            }
            Work::Stop => break,
        }
    }
    (
        server.stats(),
        server.report(&format!(
            "heartbeats={}",
            heartbeats.load(Ordering::Relaxed)
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8) -> Work {
        Work::Message {
            vp: 0,
            connection: 1,
            bytes: vec![tag],
            queued_at: Instant::now(),
        }
    }

    fn signal(relid: u32) -> Work {
        Work::Signal {
            relid,
            pending: Arc::new(AtomicBool::new(true)),
        }
    }

    fn tag(w: &Work) -> String {
        match w {
            Work::Message { bytes, .. } => format!("m{}", bytes[0]),
            Work::Signal { relid, .. } => format!("s{relid}"),
            Work::Poll { relid } => format!("p{relid}"),
            _ => "other".into(),
        }
    }

    /// Guest messages go ahead of ring traffic queued before them, each
    /// kind in its own order.
    #[test]
    fn control_goes_ahead_of_ring_traffic() {
        let mut q: VecDeque<Work> = [
            signal(4),
            Work::Poll { relid: 5 },
            message(1),
            signal(6),
            message(2),
        ]
        .into_iter()
        .collect();
        let order: Vec<String> = std::iter::from_fn(|| next_work(&mut q))
            .map(|w| tag(&w))
            .collect();
        assert_eq!(order, ["m1", "m2", "s4", "p5", "s6"]);
        assert!(next_work(&mut q).is_none());
    }
}
