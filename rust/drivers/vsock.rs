// SPDX-License-Identifier: GPL-2.0

//! Hyper-V sockets: hv_guest as the kernel's guest-to-host AF_VSOCK
//! transport, speaking the wire protocol of Linux's `hv_sock`
//! ([`crate::vmbus::hvsock`]), so that unmodified programs
//! (`socat VSOCK-CONNECT:2:PORT`, `VSOCK-LISTEN:PORT`) reach host programs.
//!
//! * **Connect.** A socket connecting from guest port `L` to host port `R`
//!   asks the host with TL_CONNECT_REQUEST (endpoint `L`, service `R` as
//!   service GUIDs, [`Sock::connect`]). The host answers with an offer for
//!   that one connection; its channel device (`hv_guest.hvsock.<relid>`)
//!   binds [`HvSockDriver`], which finds the socket waiting on `L` and opens
//!   the channel, and the connect returns. A refusal (TL_CONNECT_RESULT,
//!   from VMBus 4.1) fails the connect at once with `ECONNREFUSED`; a host
//!   that says nothing leaves it to the connect timeout.
//! * **Accept.** An offer with is-for-guest-accept set is a host program
//!   connecting to the guest's listener on the offer's service port: a new
//!   socket joins the listener's accept queue once the channel is open.
//! * **An offer nobody asked for** (no socket waiting, no listener, a full
//!   backlog, a GUID that names no port) binds nothing and is counted; the
//!   host withdraws it.
//! * **Stream.** The socket reads the ring itself
//!   ([`ChannelHandler::reads_ring`]): a packet leaves the ring only when a
//!   program reads it, so a slow reader fills the ring and holds the host
//!   back, as with `hv_sock`. Each packet is checked
//!   ([`hvsock::parse_data`]); a bad one resets the connection
//!   (`ECONNRESET`) and closes its channel. Writes go out in packets of at
//!   most [`hvsock::GUEST_SEND_MAX`] bytes while the ring has room
//!   ([`hvsock::writable_bytes`], which always keeps room for the FIN); the
//!   host signals once a full packet fits again (`pending_send_sz`).
//! * **Rings.** Each way, from the socket's buffer (`SO_SNDBUF` for the
//!   ring to the host, `SO_RCVBUF` for the other), by
//!   [`hvsock::ring_data_bytes`] (24 KiB to 252 KiB): the connecting
//!   socket's, or for a host's connection the listener's. Linux's
//!   `hv_sock` sizes a host's connection so; its connects always get
//!   24 KiB, which moves about half of what the 204 KiB of the kernel's
//!   default buffers moves (`bench/README.md`, bench_stream).
//! * **Close.** `shutdown(SHUT_WR)` and close send the FIN (an empty
//!   packet). The host rescinds the channel after both FINs; what the ring
//!   still held stays readable. A rescind before the host's FIN is a reset.
//!   A closed socket waits up to 8 s for the rescind, then closes the
//!   channel itself (`hv_shim_vsock.c`).
//!
//! Every socket of this transport holds a reference to the module, so the
//! module cannot be unloaded while a connection lives: `rmmod` says it is
//! in use, and works once the programs closed their sockets and the host
//! rescinded their channels.
//!
//! `/sys/kernel/debug/hv_guest/vmbus/hvsock` shows the counters, one
//! `key=value` record.

use kernel::auxiliary;
use kernel::debugfs::{Dir, File};
use kernel::device::Core as DeviceCore;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_spinlock, Arc, SpinLock};
use kernel::time::{Instant, Monotonic};
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

use crate::bus::channel::{Channel, ChannelHandler};
use crate::bus::device::{channel_of, Binding, MODULE_NAME};
use crate::bus::{Bus, SocketEvents};
use crate::vmbus::hvsock::{self, Data, DataHeader, DATA_HEADER_SIZE};
use crate::vmbus::message::TlConnectResult;
use crate::vmbus::packet::{Packet, PacketFlags, PacketType};
use crate::vsock::{Claim, Locked, Msg, SockRef};

/// Pages of a ring, header page included, for a socket buffer of `bytes`
/// ([`hvsock::ring_data_bytes`]: the kernel's default buffers, 208 KiB,
/// give 52).
fn ring_pages(bytes: usize) -> usize {
    hvsock::ring_data_bytes(bytes) / kernel::page::PAGE_SIZE + 1
}

/// The longest packet a socket takes from the host: its descriptor, the
/// pipe header and [`hvsock::HOST_SEND_MAX`] bytes, with room for a
/// descriptor that puts the data further in. Longer is a broken ring.
const RX_PACKET_MAX: usize = hvsock::HOST_SEND_MAX + 256;

/// The counters (one transport per module).
struct Counters {
    /// Sockets of this transport that exist.
    sockets: Atomic<u64>,
    /// Connects asked of the host.
    connects: Atomic<u64>,
    /// Connects the host refused (TL_CONNECT_RESULT for a waiting socket).
    refused: Atomic<u64>,
    /// Connections established: the guest's connects, host programs'.
    connected: Atomic<u64>,
    accepted: Atomic<u64>,
    /// Offers no socket asked for or could take.
    offers_refused: Atomic<u64>,
    /// Connections reset: a bad packet or a broken ring from the host, or
    /// a rescind before its FIN.
    resets: Atomic<u64>,
    /// Channels rescinded while their socket lived.
    rescinds: Atomic<u64>,
    /// Channels the guest closed because the host did not rescind them
    /// within 8 s of the close.
    abandoned: Atomic<u64>,
    bytes_in: Atomic<u64>,
    bytes_out: Atomic<u64>,
    /// The longest a guest's connect waited for its channel to open, in
    /// milliseconds (from the request to the end of the probe).
    connect_ms_max: Atomic<u64>,
}

static COUNTERS: Counters = Counters {
    sockets: Atomic::new(0),
    connects: Atomic::new(0),
    refused: Atomic::new(0),
    connected: Atomic::new(0),
    accepted: Atomic::new(0),
    offers_refused: Atomic::new(0),
    resets: Atomic::new(0),
    rescinds: Atomic::new(0),
    abandoned: Atomic::new(0),
    bytes_in: Atomic::new(0),
    bytes_out: Atomic::new(0),
    connect_ms_max: Atomic::new(0),
};

/// Raises `max` to `v` if `v` is larger.
fn note_max(max: &Atomic<u64>, v: i64) {
    let v = u64::try_from(v).unwrap_or(0);
    let mut cur = max.load(Relaxed);
    while v > cur {
        match max.cmpxchg(cur, v, Relaxed) {
            Ok(_) => return,
            Err(seen) => cur = seen,
        }
    }
}

/// Refusals waiting for the transport's work; more are dropped (the
/// connects they were for time out instead).
const MAX_REFUSALS: usize = 64;

/// What every socket of the transport shares: the bus it asks for
/// connections on, and the host's refusals on their way to the sockets.
#[pin_data]
pub(crate) struct Transport {
    bus: Arc<Bus>,
    /// (guest port, host port) of connects the host refused.
    #[pin]
    refusals: SpinLock<KVec<(u32, u32)>>,
    #[pin]
    work: Work<Transport>,
}

impl_has_work! {
    impl HasWork<Self> for Transport { self.work }
}

impl WorkItem for Transport {
    type Pointer = Arc<Transport>;

    /// Fails the refused connects. Not on the bus's message work: this
    /// locks sockets, and a socket's lock may be held by an offer's probe
    /// that waits for that work to deliver the channel's open result.
    fn run(this: Arc<Transport>) {
        let refusals = core::mem::take(&mut *this.refusals.lock());
        for (local, remote) in refusals.iter().copied() {
            if crate::vsock::refuse(local, remote) {
                COUNTERS.refused.add(1, Relaxed);
                pr_debug!("hvsock: host refused {} -> {}\n", local, remote);
            }
        }
    }
}

impl Transport {
    fn new(bus: Arc<Bus>) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Transport {
                bus,
                refusals <- new_spinlock!(KVec::new(), "hv_guest_hvsock_refusals"),
                work <- new_work!("hv_guest_hvsock_refusals"),
            }),
            GFP_KERNEL,
        )
    }

    fn self_arc(&self) -> Arc<Transport> {
        // SAFETY: every `Transport` is made by `Transport::new` inside an
        // `Arc`, alive while `self` is borrowed; `into` takes a new count.
        unsafe { kernel::sync::ArcBorrow::from_raw(core::ptr::from_ref(self)) }.into()
    }
}

impl SocketEvents for Transport {
    fn on_connect_result(&self, r: &TlConnectResult) {
        if r.status == 0 {
            return;
        }
        let (Some(local), Some(remote)) = (
            hvsock::port_of(&r.guest_endpoint_id),
            hvsock::port_of(&r.host_service_id),
        ) else {
            return;
        };
        {
            let mut q = self.refusals.lock();
            if q.len() >= MAX_REFUSALS || q.push((local, remote), GFP_ATOMIC).is_err() {
                return;
            }
        }
        let _ = workqueue::system().enqueue(self.self_arc());
    }
}

/// The transport while registered: dropping it unregisters (the module
/// is unloaded only when no socket uses it).
pub(crate) struct VsockTransport {
    transport: Arc<Transport>,
    _file: Pin<KBox<File<()>>>,
    _registration: crate::vsock::Registration,
}

impl VsockTransport {
    /// Registers the transport for `bus`, with its counters in `dir`.
    /// `None` (and why, logged) when the bus predates sockets (VMBus 4.0)
    /// or another transport is registered (virtio-vsock, Linux's
    /// `hv_sock`): the module works on without sockets.
    pub(crate) fn register(bus: &Arc<Bus>, dir: &Dir) -> Result<Option<Self>> {
        if !bus.has_sockets() {
            pr_info!("hvsock: VMBus {} has no sockets (from 4.0)\n", bus.connection().version);
            return Ok(None);
        }
        let transport = Transport::new(bus.clone())?;
        let file = KBox::pin_init(dir.read_callback_file(c"hvsock", (), &show), GFP_KERNEL)?;
        let registration = match crate::vsock::Registration::new(transport.clone()) {
            Ok(r) => r,
            Err(e) if e == EBUSY => {
                pr_warn!("hvsock: another guest-to-host vsock transport is registered; no sockets\n");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        bus.set_socket_events(Some(transport.clone()));
        pr_info!("hvsock: registered as the guest-to-host vsock transport\n");
        Ok(Some(Self {
            transport,
            _file: file,
            _registration: registration,
        }))
    }
}

impl Drop for VsockTransport {
    fn drop(&mut self) {
        self.transport.bus.set_socket_events(None);
        // No refusal is queued after this; none runs after the flush.
        crate::shim::flush_work(&self.transport.work);
    }
}

fn show(_: &(), f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let c = &COUNTERS;
    writeln!(
        f,
        "hvsock sockets={} connects={} refused={} connected={} accepted={} offers_refused={} resets={} rescinds={} abandoned={} bytes_in={} bytes_out={} connect_ms_max={}",
        c.sockets.load(Relaxed),
        c.connects.load(Relaxed),
        c.refused.load(Relaxed),
        c.connected.load(Relaxed),
        c.accepted.load(Relaxed),
        c.offers_refused.load(Relaxed),
        c.resets.load(Relaxed),
        c.rescinds.load(Relaxed),
        c.abandoned.load(Relaxed),
        c.bytes_in.load(Relaxed),
        c.bytes_out.load(Relaxed),
        c.connect_ms_max.load(Relaxed),
    )
}

/// A socket's protocol state (`vsk->trans`); used with the socket locked
/// (see [`crate::vsock`]).
pub(crate) struct Sock {
    transport: Arc<Transport>,
    /// The connection's channel while open.
    chan: Option<Arc<Channel>>,
    /// Bytes from the host not read yet, `rx[rx_off..rx_end]`: the rest
    /// of the packet being read (the whole packet is copied here from the
    /// ring, descriptor and header included), or what the ring held at
    /// the rescind.
    rx: KVec<u8>,
    rx_off: usize,
    rx_end: usize,
    /// The host's FIN was read.
    fin_read: bool,
    /// This side's FIN was sent (or can no longer be).
    fin_sent: bool,
    /// The connection was reset.
    reset: bool,
    /// A broken packet or ring found where a reset cannot be made (it
    /// sleeps): the next read makes it.
    deferred: Option<Broken>,
    /// One packet being written: header and data.
    tx: KVec<u8>,
    /// When this socket asked the host for a connection.
    asked: Option<Instant<Monotonic>>,
}

impl Sock {
    /// A new socket's state.
    pub(crate) fn new(transport: Arc<Transport>) -> Result<KBox<Self>> {
        let mut rx = KVec::new();
        rx.resize(RX_PACKET_MAX, 0, GFP_KERNEL)?;
        let mut tx = KVec::with_capacity(DATA_HEADER_SIZE + hvsock::GUEST_SEND_MAX, GFP_KERNEL)?;
        tx.resize(DATA_HEADER_SIZE + hvsock::GUEST_SEND_MAX, 0, GFP_KERNEL)?;
        let s = KBox::new(
            Self {
                transport,
                chan: None,
                rx,
                rx_off: 0,
                rx_end: 0,
                fin_read: false,
                fin_sent: false,
                reset: false,
                deferred: None,
                tx,
                asked: None,
            },
            GFP_KERNEL,
        )?;
        COUNTERS.sockets.add(1, Relaxed);
        Ok(s)
    }

    /// Asks the host for a connection from `local_port` to `remote_port`.
    pub(crate) fn connect(&mut self, local_port: u32, remote_port: u32) -> Result {
        self.transport
            .bus
            .request_connection(hvsock::service_id(local_port), hvsock::service_id(remote_port))?;
        COUNTERS.connects.add(1, Relaxed);
        self.asked = Some(Instant::now());
        Ok(())
    }

    /// Sends this side's FIN, once. It always fits: writes keep room for
    /// it ([`hvsock::writable_bytes`]).
    pub(crate) fn fin(&mut self) {
        if self.fin_sent {
            return;
        }
        let Some(ch) = &self.chan else {
            return;
        };
        self.fin_sent = true;
        let fin = DataHeader::data(0);
        if let Err(e) = ch.send_inband(0, PacketFlags::NONE, zerocopy::IntoBytes::as_bytes(&fin)) {
            pr_err!("hvsock: relid {}: FIN not sent: {:?}\n", ch.relid(), e);
        }
    }

    /// The host did not rescind the channel within 8 s of the close: the
    /// guest closes it (and the host, seeing that, rescinds it).
    pub(crate) fn abandon(&mut self) {
        if let Some(ch) = self.chan.take() {
            COUNTERS.abandoned.add(1, Relaxed);
            pr_warn!("hvsock: relid {} not rescinded 8 s after close; closing it\n", ch.relid());
            ch.close();
        }
    }

    /// Resets the connection: the program's calls fail with `ECONNRESET`,
    /// and the channel is closed (the host rescinds it).
    fn reset(&mut self, v: &Locked<'_>, why: core::fmt::Arguments<'_>) {
        if let Some(ch) = self.chan.take() {
            pr_err!("hvsock: relid {}: {}; connection reset\n", ch.relid(), why);
            ch.close();
        }
        self.rx_off = 0;
        self.rx_end = 0;
        self.fin_sent = true;
        if !self.reset {
            self.reset = true;
            COUNTERS.resets.add(1, Relaxed);
            v.reset();
        }
    }

    /// Bytes read from the host and not yet by the program.
    fn buffered(&self) -> usize {
        self.rx_end - self.rx_off
    }

    /// Moves one packet from the ring to `rx` (which must be empty), or
    /// notes the FIN. Returns whether anything came.
    fn fill(&mut self, v: &Locked<'_>, wait: Wait) -> bool {
        if self.fin_read || self.reset {
            return false;
        }
        let Some(ch) = self.chan.clone() else {
            return false;
        };
        self.rx_off = 0;
        self.rx_end = 0;
        let read = match wait {
            Wait::MaySleep => ch.read_one(&mut self.rx, check_packet),
            Wait::NoSleep => ch.try_read_one(&mut self.rx, check_packet),
        };
        match read {
            Ok(None) => false,
            // The ring is being opened or closed: nothing to read yet.
            Err(e) if e == EAGAIN => false,
            Ok(Some(Ok(Some(range)))) => {
                (self.rx_off, self.rx_end) = (range.start, range.end);
                true
            }
            Ok(Some(Ok(None))) => {
                self.fin_read = true;
                v.peer_fin();
                true
            }
            // A reset closes the channel, which sleeps: without sleeping, it
            // waits for the read that the socket layer makes next.
            Ok(Some(Err(why))) if wait == Wait::NoSleep => {
                self.deferred = Some(Broken::Packet(why));
                true
            }
            Err(e) if wait == Wait::NoSleep => {
                self.deferred = Some(Broken::Ring(e));
                true
            }
            Ok(Some(Err(why))) => {
                self.reset(v, format_args!("bad packet from the host: {}", why));
                true
            }
            Err(e) => {
                self.reset(v, format_args!("ring unreadable: {:?}", e));
                true
            }
        }
    }

    /// Resets the connection for a broken packet or ring that a read
    /// without sleeping found.
    fn reset_deferred(&mut self, v: &Locked<'_>) {
        match self.deferred.take() {
            Some(Broken::Packet(why)) => {
                self.reset(v, format_args!("bad packet from the host: {}", why))
            }
            Some(Broken::Ring(e)) => self.reset(v, format_args!("ring unreadable: {:?}", e)),
            None => {}
        }
    }

    /// Bytes the program can read now (what is buffered, else the next
    /// packet's); 0 at the end of the stream and when nothing came yet.
    pub(crate) fn has_data(&mut self, v: &Locked<'_>) -> usize {
        // The socket layer asks between prepare_to_wait() and schedule().
        if self.buffered() == 0 {
            self.fill(v, Wait::NoSleep);
        }
        if self.deferred.is_some() {
            // Not data, but a read to make: it resets the connection.
            return 1;
        }
        self.buffered()
    }

    /// Copies up to `len` bytes to the program, packet after packet while
    /// the ring has them; returns how many.
    pub(crate) fn dequeue(&mut self, v: &Locked<'_>, msg: &mut Msg<'_>, len: usize) -> Result<usize> {
        self.reset_deferred(v);
        let mut copied = 0;
        while copied < len {
            if self.buffered() == 0 && !(self.fill(v, Wait::MaySleep) && self.buffered() > 0) {
                break;
            }
            let n = (len - copied).min(self.buffered());
            msg.copy_to(&self.rx[self.rx_off..self.rx_off + n])?;
            self.rx_off += n;
            copied += n;
        }
        COUNTERS.bytes_in.add(copied as u64, Relaxed);
        Ok(copied)
    }

    /// Bytes the program may write now.
    pub(crate) fn has_space(&self) -> usize {
        match &self.chan {
            Some(ch) if !self.fin_sent => hvsock::writable_bytes(ch.send_space()),
            _ => 0,
        }
    }

    /// Sends up to `len` bytes of the program's, in packets, while the
    /// ring has room; returns how many.
    pub(crate) fn enqueue(&mut self, msg: &mut Msg<'_>, len: usize) -> Result<usize> {
        let Some(ch) = self.chan.clone() else {
            return Err(ENOTCONN);
        };
        let mut written = 0;
        while written < len {
            let n = (len - written)
                .min(self.has_space())
                .min(hvsock::GUEST_SEND_MAX);
            if n == 0 {
                break;
            }
            let header = DataHeader::data(n as u32);
            self.tx[..DATA_HEADER_SIZE].copy_from_slice(zerocopy::IntoBytes::as_bytes(&header));
            let sent = msg
                .copy_from(&mut self.tx[DATA_HEADER_SIZE..DATA_HEADER_SIZE + n])
                .and_then(|()| ch.send_inband(0, PacketFlags::NONE, &self.tx[..DATA_HEADER_SIZE + n]));
            if let Err(e) = sent {
                if written > 0 {
                    break;
                }
                return Err(e);
            }
            written += n;
        }
        COUNTERS.bytes_out.add(written as u64, Relaxed);
        Ok(written)
    }

    /// Whether the connection has its channel (what `poll` asks first).
    pub(crate) fn is_active(&self) -> bool {
        self.chan.is_some() || self.buffered() > 0
    }

    /// Whether a read would not wait: bytes, the FIN or a reset.
    pub(crate) fn readable(&self) -> bool {
        self.buffered() > 0
            || self.fin_read
            || self.reset
            || self.deferred.is_some()
            || self.chan.as_ref().is_some_and(|ch| ch.readable())
    }

    /// The host rescinded the channel: keeps what the ring still holds
    /// for the program to read. Returns whether this is a reset (the host
    /// had not sent its FIN).
    pub(crate) fn peer_gone(&mut self, v: &Locked<'_>) -> bool {
        COUNTERS.rescinds.add(1, Relaxed);
        if let Some(ch) = self.chan.take() {
            // Unread bytes first, then every packet's the ring holds (at
            // most the ring's size).
            let mut kept = KVec::new();
            let mut lost = kept
                .extend_from_slice(&self.rx[self.rx_off..self.rx_end], GFP_KERNEL)
                .is_err();
            while !self.fin_read && !lost {
                match ch.read_one(&mut self.rx, check_packet) {
                    Ok(Some(Ok(Some(r)))) => {
                        lost = kept.extend_from_slice(&self.rx[r], GFP_KERNEL).is_err();
                    }
                    Ok(Some(Ok(None))) => {
                        self.fin_read = true;
                        v.peer_fin();
                    }
                    Ok(None) => break,
                    Ok(Some(Err(_))) | Err(_) => lost = true,
                }
            }
            if lost {
                // A broken last packet, or no memory: what is kept would
                // not be the stream; the program learns of a reset.
                kept.clear();
                self.fin_read = false;
            }
            self.rx_off = 0;
            self.rx_end = kept.len();
            self.rx = kept;
        }
        self.fin_sent = true;
        let reset = !self.fin_read && !self.reset;
        if reset {
            self.reset = true;
            COUNTERS.resets.add(1, Relaxed);
        }
        reset
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        COUNTERS.sockets.fetch_sub(1, Relaxed);
    }
}

/// Checks a stream packet (copied whole): where its bytes are in the
/// copy, or `None` for the FIN.
fn check_packet(p: &Packet<'_>) -> Result<Option<core::ops::Range<usize>>, PacketError> {
    if p.desc.ty != PacketType::DATA_INBAND {
        return Err(PacketError::Type(p.desc.ty.0));
    }
    match hvsock::parse_data(p.data(), hvsock::HOST_SEND_MAX) {
        Ok(Data::Bytes(b)) => {
            let start = p.desc.data_offset() + DATA_HEADER_SIZE;
            Ok(Some(start..start + b.len()))
        }
        Ok(Data::Fin) => Ok(None),
        Err(e) => Err(PacketError::Pipe(e)),
    }
}

/// What ends a connection, found by a read that could not reset it.
enum Broken {
    /// A packet that breaks the protocol.
    Packet(PacketError),
    /// The ring itself.
    Ring(Error),
}

/// Why a packet from the host ends its connection.
enum PacketError {
    /// Not an in-band packet.
    Type(u16),
    Pipe(hvsock::PipeError),
}

impl core::fmt::Display for PacketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Type(t) => write!(f, "VMBus packet type {} is not in-band data", t),
            Self::Pipe(e) => write!(f, "{}", e),
        }
    }
}

/// The channel's callbacks: wakes the socket when the host wrote or made
/// room. Holds the socket while the channel is open.
struct ConnHandler {
    sk: Arc<SockRef>,
}

impl ChannelHandler for ConnHandler {
    fn on_packet(&self, _ch: &Arc<Channel>, _pkt: &Packet<'_>) {}

    fn reads_ring(&self) -> bool {
        true
    }

    /// From the event interrupt: readers and writers both look again (a
    /// signal is for bytes written or room made; the ring is not read
    /// here, and the one who is not concerned sleeps again).
    fn on_signal(&self) {
        self.sk.wake();
    }
}

kernel::auxiliary_device_table!(
    HVSOCK_IDS,
    (),
    [(auxiliary::DeviceId::new(MODULE_NAME, hvsock::DEVICE_NAME), ())]
);

/// The auxiliary driver of socket channels (`hv_guest.hvsock.N`).
/// Registered by [`crate::drivers::Drivers`].
pub(crate) struct HvSockDriver;

/// A connection whose channel is open; dropped when the host rescinds the
/// channel (or at unload, or unbind): the socket learns, then the channel
/// closes.
pub(crate) struct Conn {
    sk: Arc<SockRef>,
    _binding: Binding,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Before `_binding` closes the channel: the socket keeps what the
        // ring holds.
        self.sk.peer_gone();
    }
}

/// Why an offer binds no socket.
fn refuse_offer(relid: u32, why: &str) -> Error {
    COUNTERS.offers_refused.add(1, Relaxed);
    pr_info!("hvsock: offer of relid {} refused: {}\n", relid, why);
    ENODEV
}

impl auxiliary::Driver for HvSockDriver {
    type IdInfo = ();
    type Data<'bound> = Conn;

    const ID_TABLE: auxiliary::IdTable<()> = &HVSOCK_IDS;

    fn probe<'bound>(
        adev: &'bound auxiliary::Device<DeviceCore<'_>>,
        _info: &'bound (),
    ) -> impl PinInit<Conn, Error> + 'bound {
        let ch = channel_of(adev)?;
        let info = *ch.info();
        let relid = info.relid;
        let accept = hvsock::is_for_guest_accept(&info.user_def);
        // Guest connects: the service is the host's port, the instance the
        // guest's endpoint. Host connects: the service is the guest's
        // listening port, the instance the host program's endpoint.
        let Some(service) = hvsock::port_of(&info.class) else {
            return Err(refuse_offer(relid, "its service is no vsock port"));
        };
        let (local, remote) = if accept {
            (service, info.instance.data1())
        } else {
            match hvsock::port_of(&info.instance) {
                Some(endpoint) => (endpoint, service),
                None => return Err(refuse_offer(relid, "its endpoint is no vsock port")),
            }
        };
        let mut claim = match Claim::new(accept, local, remote) {
            Ok(c) => c,
            Err(e) if e == ENOENT => {
                return Err(refuse_offer(
                    relid,
                    if accept { "nobody listens" } else { "nobody asked for it" },
                ))
            }
            Err(e) if e == ECONNREFUSED => return Err(refuse_offer(relid, "backlog full")),
            Err(e) => return Err(e),
        };
        let sk = Arc::new(claim.sock_ref()?, GFP_KERNEL)?;
        let handler: Arc<dyn ChannelHandler> = Arc::new(ConnHandler { sk: sk.clone() }, GFP_KERNEL)?;
        let (sndbuf, rcvbuf) = claim.buffers();
        ch.open(ring_pages(sndbuf), ring_pages(rcvbuf), handler)?;
        // Open from here on: a failure closes it with the binding.
        let binding = Binding::new(ch.clone(), "hvsock");
        ch.keep_pending_send(hvsock::GUEST_PENDING_SEND as u32)?;
        let sock = claim.sock()?;
        sock.chan = Some(ch);
        if let Some(asked) = sock.asked.take() {
            note_max(&COUNTERS.connect_ms_max, asked.elapsed().as_millis());
        }
        claim.done();
        if accept {
            COUNTERS.accepted.add(1, Relaxed);
        } else {
            COUNTERS.connected.add(1, Relaxed);
        }
        pr_debug!("hvsock: relid {}: {} {} <-> host {}\n", relid, if accept { "accepted" } else { "connected" }, local, remote);
        Ok(Conn {
            sk,
            _binding: binding,
        })
    }
}

/// Whether reading the ring may take a sleeping lock.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Process context in the running state (a read).
    MaySleep,
    /// Between `prepare_to_wait()` and `schedule()` (`stream_has_data`).
    NoSleep,
}
