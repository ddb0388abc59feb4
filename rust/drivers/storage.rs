// SPDX-License-Identifier: GPL-2.0

//! The VMBus SCSI controller driver: hv_guest's own disk driver, for the
//! class storvsc drives (`vmbus::guid::SCSI_CLASS`), speaking the same
//! VSTOR protocol (`vmbus::vstor`) with SCSI commands (`vmbus::scsi`)
//! under a blk-mq front instead of Linux's SCSI midlayer.
//!
//! Probe, on the controller's primary channel:
//!
//! 1. BEGIN_INITIALIZATION, QUERY_PROTOCOL_VERSION (6.2, then 6.0),
//!    QUERY_PROPERTIES, END_INITIALIZATION, each a request that waits for
//!    its completion;
//! 2. if the host offers sub-channels, CREATE_SUB_CHANNELS for one channel
//!    per online CPU (at most what the host allows), and each sub-channel
//!    opened as its offer comes;
//! 3. one blk-mq tag set with a hardware queue per channel
//!    ([`queue::Queue`]), shared by every disk of the controller, as a SCSI
//!    host's tags are;
//! 4. REPORT LUNS, and for each LUN with a disk: INQUIRY, READ CAPACITY
//!    (16), the Block Limits VPD page and MODE SENSE's caching page, then a
//!    disk `hvdX` with that geometry, transfer limit, write cache, FUA,
//!    discard and write protection ([`lun`]).
//!
//! The host's ENUMERATE_BUS (a LUN added or removed) reruns step 4 in a
//! work item. A watchdog fails requests the host leaves unanswered for
//! longer than the I/O timeout (`ETIMEDOUT`). Unbinding (rescind, unload,
//! sysfs) marks the controller dead (new requests fail with `EIO`), closes
//! its channels, fails every request in flight, and deletes the disks:
//! a mounted disk gets I/O errors, never a hang.
//!
//! debugfs: the file `storage` in the device's directory shows the
//! controller, each queue and each disk as `key=value` lines; writing
//! `timeout_ms N` sets the I/O timeout.

mod lun;
#[cfg(hv_guest_selftest)]
mod misbehave;
mod queue;


use kernel::auxiliary;
use kernel::block::mq::{Operations, Request};
use kernel::debugfs::File;
use kernel::device::Core as DeviceCore;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Relaxed, Release};
use kernel::sync::aref::ARef;
use kernel::sync::{new_mutex, new_spinlock, Arc, ArcBorrow, Mutex, SpinLock};
use kernel::time::msecs_to_jiffies;
use kernel::types::ScopeGuard;
use kernel::uaccess::UserSliceReader;
use kernel::workqueue::{self, impl_has_delayed_work, impl_has_work, new_delayed_work, new_work};
use kernel::workqueue::{DelayedWork, Work, WorkItem};

use crate::block::SharedTagSet;
use crate::bus::channel::{Channel, ChannelHandler};
use crate::bus::device::{channel_of, debugfs_of, Binding, MODULE_NAME};
use crate::control::read_command;
use crate::shim;
use crate::vmbus::guid::SCSI_CLASS;
use crate::vmbus::packet::Packet;
use crate::vmbus::vstor::{
    self, operation, ChannelProperties, VstorPacket, VstorVersion, PROPERTY_MULTI_CHANNEL,
    VSTOR_PACKET_SIZE,
};
use lun::LunDisk;
use queue::Queue;

/// Ring pages per direction, header included: 128 KiB of data, as storvsc.
const RING_PAGES: usize = 33;
/// Tags per hardware queue.
const DEPTH: u16 = 128;
/// Largest request this driver sends, whatever the host allows.
const MAX_TRANSFER: u32 = 1 << 20;
/// PFNs of the largest request (it may start inside a page).
const MAX_PFNS: usize = MAX_TRANSFER as usize / 4096 + 1;
/// How long a protocol or probe request waits for its completion.
const INIT_TIMEOUT_MS: u32 = 30_000;
/// How long probe waits for the sub-channels it asked for.
const SUB_CHANNEL_WAIT_MS: u32 = 10_000;
/// Default I/O timeout (Linux's SCSI default).
const DEFAULT_IO_TIMEOUT_MS: u32 = 30_000;
/// Watchdog period.
const WATCHDOG_MS: u32 = 1_000;

/// The blk-mq operations of every disk: requests go to the LUN's
/// [`lun::Lun`], which sends them on the queue blk-mq chose.
pub(crate) struct DiskOps;

#[vtable]
impl Operations for DiskOps {
    type QueueData = Arc<lun::Lun>;

    fn queue_rq(lun: ArcBorrow<'_, lun::Lun>, rq: ARef<Request<Self>>, _is_last: bool) -> Result {
        lun.submit(rq)
    }

    fn commit_rqs(_lun: ArcBorrow<'_, lun::Lun>) {}

    fn complete(rq: ARef<Request<Self>>) {
        // Requests are ended where their completion is read, never
        // through `Request::complete`; should one come here, end it.
        crate::block::end(rq, Ok(()));
    }
}

/// What debugfs shows of the controller.
struct ControllerCounters {
    /// Host messages that were not completions (ENUMERATE_BUS and others).
    unsolicited: Atomic<u64>,
    rescans: Atomic<u64>,
}

impl ControllerCounters {
    const fn new() -> Self {
        Self {
            unsolicited: Atomic::new(0),
            rescans: Atomic::new(0),
        }
    }
}

/// A bound controller.
#[pin_data]
pub(crate) struct Controller {
    primary: Arc<Channel>,
    /// Hardware queue `i` is `queues[i]`; queue 0 is the primary channel.
    queues: KVec<Arc<Queue>>,
    tagset: SharedTagSet<DiskOps>,
    version: VstorVersion,
    props: ChannelProperties,
    /// Largest request, in bytes (the host's limit and ours).
    max_transfer: u32,
    /// Set once when unbinding starts: no new request, no rescan.
    dead: Atomic<bool>,
    io_timeout_ms: Atomic<u32>,
    #[pin]
    disks: Mutex<KVec<LunDisk>>,
    /// Whether the watchdog may re-arm (cleared, under the lock, when the
    /// controller goes away).
    #[pin]
    watchdog_on: SpinLock<bool>,
    #[pin]
    rescan_work: Work<Controller, 1>,
    #[pin]
    watchdog: DelayedWork<Controller, 2>,
    counters: ControllerCounters,
}

impl_has_work! {
    impl HasWork<Self, 1> for Controller { self.rescan_work }
}
impl_has_delayed_work! {
    impl HasDelayedWork<Self, 2> for Controller { self.watchdog }
}

impl WorkItem<1> for Controller {
    type Pointer = Arc<Controller>;

    fn run(this: Arc<Controller>) {
        this.counters.rescans.add(1, Relaxed);
        this.scan();
    }
}

impl WorkItem<2> for Controller {
    type Pointer = Arc<Controller>;

    fn run(this: Arc<Controller>) {
        let timeout = i64::from(this.io_timeout_ms.load(Relaxed));
        for q in this.queues.iter() {
            q.expire(timeout);
        }
        let on = this.watchdog_on.lock();
        if *on {
            let _ = workqueue::system().enqueue_delayed(this.clone(), msecs_to_jiffies(WATCHDOG_MS));
        }
    }
}

impl ChannelHandler for Controller {
    fn on_packet(&self, _ch: &Arc<Channel>, pkt: &Packet<'_>) {
        let id = pkt.desc.trans_id;
        if id == 0 {
            return self.unsolicited(pkt.data());
        }
        let queue = queue::unique_tag(id).and_then(|t| self.queues.get((t >> 16) as usize));
        match queue {
            Some(q) => q.complete(id, pkt.data()),
            None => {
                // Counted on the primary's queue: the ID names no queue.
                if let Some(q) = self.queues.first() {
                    q.counters.unknown_id.add(1, Relaxed);
                }
            }
        }
    }
}

impl Controller {
    /// A packet the host sent of its own accord.
    fn unsolicited(&self, data: &[u8]) {
        self.counters.unsolicited.add(1, Relaxed);
        match VstorPacket::from_data(data).map(|p| p.operation) {
            Some(operation::ENUMERATE_BUS | operation::REMOVE_DEVICE) => {
                if !self.dead.load(Acquire) {
                    let _ = workqueue::system().enqueue::<Arc<Controller>, 1>(self.self_arc());
                }
            }
            op => pr_err!("storage: unexpected host message {:?}; ignored\n", op),
        }
    }

    fn self_arc(&self) -> Arc<Controller> {
        // SAFETY: every `Controller` is made by `Controller::new` inside an
        // `Arc`, alive while `self` is borrowed; `into` takes a new count.
        unsafe { kernel::sync::ArcBorrow::from_raw(core::ptr::from_ref(self)) }.into()
    }

    /// Brings up the controller on `primary` (opened, with a handler that
    /// takes nothing but request completions): protocol, sub-channels,
    /// tag set, and the disks found.
    fn new(primary: Arc<Channel>) -> Result<Arc<Self>> {
        let (version, props) = negotiate(&primary)?;
        let subs = if props.flags & PROPERTY_MULTI_CHANNEL != 0 {
            open_sub_channels(&primary, props.max_channel_cnt)?
        } else {
            KVec::new()
        };
        // Until the controller owns them, a failure closes the sub-channels
        // (the binding closes the primary).
        let close_subs = ScopeGuard::new_with_data(subs, |subs| {
            for ch in subs.iter() {
                ch.close();
            }
        });
        let mut channels = KVec::with_capacity(1 + close_subs.len(), GFP_KERNEL)?;
        channels.push(primary.clone(), GFP_KERNEL)?;
        for ch in close_subs.iter() {
            channels.push(ch.clone(), GFP_KERNEL)?;
        }
        let mut queues = KVec::with_capacity(channels.len(), GFP_KERNEL)?;
        for ch in channels.into_iter() {
            queues.push(Queue::new(ch)?, GFP_KERNEL)?;
        }
        let nr = u32::try_from(queues.len()).map_err(|_| EINVAL)?;
        let tagset = SharedTagSet::new(nr, DEPTH.into())?;
        let max_transfer = props
            .max_transfer_bytes
            .min(MAX_TRANSFER)
            // Whole pages: a request's middle segments are.
            & !4095;
        if max_transfer < 4096 {
            pr_err!(
                "storage: host allows transfers of {} bytes; at least a page is needed\n",
                props.max_transfer_bytes
            );
            return Err(EIO);
        }
        let ctl = Arc::pin_init(
            try_pin_init!(Self {
                primary,
                queues,
                tagset,
                version,
                props,
                max_transfer,
                dead: Atomic::new(false),
                io_timeout_ms: Atomic::new(DEFAULT_IO_TIMEOUT_MS),
                disks <- new_mutex!(KVec::new(), "hv_guest_storage_disks"),
                watchdog_on <- new_spinlock!(true, "hv_guest_storage_watchdog"),
                rescan_work <- new_work!("hv_guest_storage_rescan"),
                watchdog <- new_delayed_work!("hv_guest_storage_watchdog"),
                counters: ControllerCounters::new(),
            }? Error),
            GFP_KERNEL,
        )?;
        close_subs.dismiss();
        for q in ctl.queues.iter() {
            if let Err(e) = q.ch.set_handler(ctl.clone()) {
                ctl.shutdown();
                return Err(e);
            }
        }
        let _ = workqueue::system().enqueue_delayed(ctl.clone(), msecs_to_jiffies(WATCHDOG_MS));
        Ok(ctl)
    }

    /// Finds the LUNs (REPORT LUNS) and makes the disks match: a disk for
    /// each new LUN with one, none for a LUN that is gone.
    fn scan(&self) {
        let mut disks = self.disks.lock();
        if self.dead.load(Acquire) {
            return;
        }
        let luns = match lun::report_luns(self) {
            Ok(l) => l,
            Err(e) => {
                pr_err!("storage: REPORT LUNS failed: {:?}\n", e);
                return;
            }
        };
        // Gone: deleted here (their requests are the host's to fail now).
        disks.retain(|d| luns.contains(&d.lun()));
        for &l in luns.iter() {
            if disks.iter().any(|d| d.lun() == l) {
                continue;
            }
            match LunDisk::probe(self, l) {
                Ok(Some(d)) => {
                    if disks.push(d, GFP_KERNEL).is_err() {
                        pr_err!("storage: no memory for LUN {}\n", l);
                    }
                }
                Ok(None) => {}
                Err(e) => pr_err!("storage: LUN {}: probe failed: {:?}\n", l, e),
            }
        }
    }

    /// Unbinding: no new request, nothing from the host, every request in
    /// flight failed, the disks deleted.
    fn shutdown(&self) {
        self.dead.store(true, Release);
        *self.watchdog_on.lock() = false;
        // Runs a pending watchdog now and waits for it; it cannot re-arm
        // (`watchdog_on` is false), so none is left holding `self`.
        shim::flush_delayed_work(&self.watchdog);
        // Sub-channels first, the primary last: a rescan waiting for an
        // answer on the primary gives up when it closes.
        for q in self.queues.iter().rev() {
            q.ch.close();
        }
        shim::flush_work(&self.rescan_work);
        for q in self.queues.iter() {
            q.abort_all();
        }
        let disks = core::mem::take(&mut *self.disks.lock());
        drop(disks);
    }

    /// The debugfs report.
    fn show(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(
            f,
            "controller relid={} version={}.{} channels={} max_channel_cnt={} max_transfer={} depth={} timeout_ms={} dead={} unsolicited={} rescans={}",
            self.primary.relid(),
            self.version.major(),
            self.version.minor(),
            self.queues.len(),
            self.props.max_channel_cnt,
            self.max_transfer,
            DEPTH,
            self.io_timeout_ms.load(Relaxed),
            u8::from(self.dead.load(Relaxed)),
            self.counters.unsolicited.load(Relaxed),
            self.counters.rescans.load(Relaxed),
        )?;
        for (i, q) in self.queues.iter().enumerate() {
            let c = &q.counters;
            writeln!(
                f,
                "queue index={} relid={} submitted={} completed={} in_flight={} errors={} timeouts={} aborted={} unknown_id={} bad_packets={} ring_full={}",
                i,
                q.ch.relid(),
                c.submitted.load(Relaxed),
                c.completed.load(Relaxed),
                q.in_flight(),
                c.errors.load(Relaxed),
                c.timeouts.load(Relaxed),
                c.aborted.load(Relaxed),
                c.unknown_id.load(Relaxed),
                c.bad_packets.load(Relaxed),
                c.ring_full.load(Relaxed),
            )?;
        }
        for d in self.disks.lock().iter() {
            d.show(f)?;
        }
        Ok(())
    }
}

/// Sends a protocol request and returns the host's COMPLETE_IO packet;
/// `EIO` for anything else.
fn vstor_request(ch: &Channel, pkt: &VstorPacket) -> Result<VstorPacket> {
    use zerocopy::IntoBytes;
    let mut reply = [0u8; VSTOR_PACKET_SIZE];
    let n = ch.request(pkt.as_bytes(), &mut reply, INIT_TIMEOUT_MS)?;
    let r = VstorPacket::from_data(&reply[..n]).ok_or_else(|| {
        pr_err!("storage: completion of {} bytes, {} needed\n", n, VSTOR_PACKET_SIZE);
        EIO
    })?;
    if r.operation != operation::COMPLETE_IO {
        pr_err!("storage: completion with operation {}\n", r.operation);
        return Err(EIO);
    }
    Ok(r)
}

/// A request whose completion must have status success.
fn vstor_step(ch: &Channel, op: u32, what: &str) -> Result<VstorPacket> {
    let r = vstor_request(ch, &VstorPacket::request(op))?;
    if r.status != vstor::status::SUCCESS {
        pr_err!("storage: host refused {}: status {:#x}\n", what, r.status);
        return Err(EIO);
    }
    Ok(r)
}

/// The VSTOR initialization: the version and the host's properties.
fn negotiate(ch: &Channel) -> Result<(VstorVersion, ChannelProperties)> {
    vstor_step(ch, operation::BEGIN_INITIALIZATION, "BEGIN_INITIALIZATION")?;
    let mut version = None;
    for v in VstorVersion::SUPPORTED {
        let r = vstor_request(ch, &VstorPacket::query_version(v))?;
        if r.status == vstor::status::SUCCESS {
            version = Some(v);
            break;
        }
    }
    let Some(version) = version else {
        pr_err!("storage: host speaks none of the VSTOR versions 6.2, 6.0\n");
        return Err(ENODEV);
    };
    let r = vstor_step(ch, operation::QUERY_PROPERTIES, "QUERY_PROPERTIES")?;
    let props: ChannelProperties = r.body_as().ok_or(EIO)?;
    vstor_step(ch, operation::END_INITIALIZATION, "END_INITIALIZATION")?;
    Ok((version, props))
}

/// A handler for a channel whose controller does not exist yet: only
/// request completions are expected (the channel matches those itself);
/// anything else is logged. The controller replaces it.
struct InitHandler;

impl ChannelHandler for InitHandler {
    fn on_packet(&self, ch: &Arc<Channel>, pkt: &Packet<'_>) {
        pr_info!(
            "storage: relid {}: packet {:#x} before the controller is up; ignored (the first scan follows)\n",
            ch.relid(),
            pkt.desc.trans_id
        );
    }
}

/// Asks for one sub-channel per other online CPU (at most `max` of them)
/// and opens those the host offers.
fn open_sub_channels(primary: &Arc<Channel>, max: u16) -> Result<KVec<Arc<Channel>>> {
    let want = u16::try_from(shim::num_online_cpus().saturating_sub(1))
        .unwrap_or(u16::MAX)
        .min(max);
    let mut opened = KVec::new();
    if want == 0 {
        return Ok(opened);
    }
    let r = vstor_request(primary, &VstorPacket::create_sub_channels(want))?;
    if r.status != vstor::status::SUCCESS {
        pr_err!("storage: host refused {} sub-channels: status {:#x}; using one channel\n", want, r.status);
        return Ok(opened);
    }
    let subs = primary.wait_sub_channels(want.into(), SUB_CHANNEL_WAIT_MS);
    if subs.len() < usize::from(want) {
        pr_err!("storage: asked for {} sub-channels, {} offered\n", want, subs.len());
    }
    for ch in subs.into_iter().take(want.into()) {
        let handler: Arc<dyn ChannelHandler> = Arc::new(InitHandler, GFP_KERNEL)?;
        match ch.open(RING_PAGES, RING_PAGES, handler) {
            Ok(()) => {
                ch.set_driver(Some("storage"));
                opened.push(ch, GFP_KERNEL)?;
            }
            Err(e) => pr_err!("storage: sub-channel relid {} not opened: {:?}\n", ch.relid(), e),
        }
    }
    Ok(opened)
}

kernel::auxiliary_device_table!(
    STORAGE_IDS,
    (),
    [(auxiliary::DeviceId::new(MODULE_NAME, SCSI_CLASS.name), ())]
);

/// The auxiliary driver of SCSI controller channels (`hv_guest.scsi.N`).
/// Registered by [`crate::drivers::Drivers`].
pub(crate) struct StorageDriver;

/// The data of the `storage` file.
struct StorageFile {
    ctl: Arc<Controller>,
}

fn show_storage(file: &StorageFile, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    file.ctl.show(f)
}

/// Writing `timeout_ms N` sets the I/O timeout (at least 100 ms).
fn write_storage(file: &StorageFile, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 64];
    let cmd = read_command(reader, &mut buf)?;
    let mut words = cmd.split_ascii_whitespace();
    match (words.next(), words.next().map(str::parse::<u32>), words.next()) {
        (Some("timeout_ms"), Some(Ok(ms)), None) if ms >= 100 => {
            file.ctl.io_timeout_ms.store(ms, Relaxed);
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

/// The `misbehave` file (selftest build): the controller and the last
/// command's report, whose lock also serializes commands.
#[cfg(hv_guest_selftest)]
#[pin_data]
struct MisbehaveFile {
    ctl: Arc<Controller>,
    #[pin]
    report: Mutex<KVec<u8>>,
}

#[cfg(hv_guest_selftest)]
fn show_misbehave(file: &MisbehaveFile, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    crate::control::show_report(&file.report, f)
}

#[cfg(hv_guest_selftest)]
fn write_misbehave(file: &MisbehaveFile, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 64];
    let cmd = read_command(reader, &mut buf)?;
    let mut out = file.report.lock();
    misbehave::run(&file.ctl, cmd, &mut out)
}

/// What the driver holds while bound. Dropping it shuts the controller
/// down (see [`Controller::shutdown`]), then removes the files and closes
/// the primary channel (the binding).
pub(crate) struct StorageBound {
    ctl: Arc<Controller>,
    #[cfg(hv_guest_selftest)]
    _misbehave: Pin<KBox<File<MisbehaveFile>>>,
    _file: Pin<KBox<File<StorageFile>>>,
    _binding: Binding,
}

impl Drop for StorageBound {
    fn drop(&mut self) {
        self.ctl.shutdown();
    }
}

impl auxiliary::Driver for StorageDriver {
    type IdInfo = ();
    type Data<'bound> = StorageBound;

    const ID_TABLE: auxiliary::IdTable<()> = &STORAGE_IDS;

    fn probe<'bound>(
        adev: &'bound auxiliary::Device<DeviceCore<'_>>,
        _info: &'bound (),
    ) -> impl PinInit<StorageBound, Error> + 'bound {
        let ch = channel_of(adev)?;
        let dir = debugfs_of(adev)?;
        let handler: Arc<dyn ChannelHandler> = Arc::new(InitHandler, GFP_KERNEL)?;
        ch.open(RING_PAGES, RING_PAGES, handler)?;
        // Bound from here on: a failure below drops the binding, which
        // closes the primary channel.
        let binding = Binding::new(ch.clone(), "storage");
        let ctl = match Controller::new(ch) {
            Ok(c) => c,
            Err(e) => {
                pr_err!("storage: controller not brought up: {:?}\n", e);
                return Err(e);
            }
        };
        let file = KBox::pin_init(
            dir.read_write_callback_file(
                c"storage",
                StorageFile { ctl: ctl.clone() },
                &show_storage,
                &write_storage,
            ),
            GFP_KERNEL,
        );
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                ctl.shutdown();
                return Err(e);
            }
        };
        #[cfg(hv_guest_selftest)]
        let for_file = ctl.clone();
        #[cfg(hv_guest_selftest)]
        let misbehave = KBox::pin_init(
            dir.read_write_callback_file(
                c"misbehave",
                try_pin_init!(MisbehaveFile {
                    ctl: for_file,
                    report <- new_mutex!(KVec::new(), "hv_guest_storage_misbehave"),
                }? Error),
                &show_misbehave,
                &write_misbehave,
            ),
            GFP_KERNEL,
        );
        #[cfg(hv_guest_selftest)]
        let misbehave = match misbehave {
            Ok(f) => f,
            Err(e) => {
                ctl.shutdown();
                return Err(e);
            }
        };
        ctl.scan();
        Ok(StorageBound {
            ctl,
            #[cfg(hv_guest_selftest)]
            _misbehave: misbehave,
            _file: file,
            _binding: binding,
        })
    }
}
