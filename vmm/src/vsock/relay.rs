// SPDX-License-Identifier: GPL-2.0

//! One Hyper-V socket connection: a VMBus channel of its own, relayed to a
//! host Unix stream.
//!
//! - **Guest to host:** each data packet ([`vmbus::hvsock::parse_data`],
//!   at most [`GUEST_SEND_MAX`] bytes) goes to a buffer, written to the
//!   stream 32 KiB at a time and when the drain ends. What the stream does
//!   not take waits there; past [`TO_HOST_LIMIT`] bytes the connection
//!   takes no more packets ([`VmbusDevice::takes_packets`]) and the rest
//!   stays in the guest's ring, which holds the guest program back.
//! - **Host to guest:** the stream is read into packets of at most a
//!   quarter of the guest's ring (and [`HOST_SEND_MAX`]), as much as the
//!   ring has room for; when it is full the connection asks the guest to
//!   signal once half of it is free (`pending_send_sz`) and stops reading
//!   the stream, which holds the host program back.
//! - **FIN both ways:** an empty packet from the guest shuts the stream's
//!   write half once the buffer is written; end of file from the stream
//!   sends the guest an empty packet. Either direction goes on alone
//!   (half-close). With both done the connection asks for its channel to
//!   be rescinded, which Linux's close waits for.
//! - **Resets:** a packet that breaks the stream protocol, or a stream
//!   error, ends the connection at once (the channel is rescinded); only
//!   this connection is affected.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use vmbus::guid::Guid;
use vmbus::hvsock::{self, Data, DataHeader, DATA_HEADER_SIZE, GUEST_SEND_MAX, HOST_SEND_MAX};
use vmbus::packet::{Packet, PacketType};
use zerocopy::IntoBytes;

use super::fault::Fault;
use super::hybrid::{ok_reply, HostPorts};
use super::poller::{Poller, Registration};
use crate::vmbus::channel::ChannelIo;
use crate::vmbus::device::{DeviceError, SocketOffer, VmbusDevice};

/// Most bytes from the guest that wait for a slow host stream before the
/// connection stops taking packets.
pub const TO_HOST_LIMIT: usize = 64 * 1024;

/// Guest bytes gathered before they are written to the host stream in
/// one call (the rest is written when the drain ends).
const FLUSH_AT: usize = 32 * 1024;

/// Who opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A guest program connected to host port `port` (`PATH_port`).
    Guest {
        /// The host port.
        port: u32,
    },
    /// A host program connected to guest port `guest_port` (`CONNECT`)
    /// and got host port `host_port`.
    Host {
        /// The guest's listening port.
        guest_port: u32,
        /// The host end's port.
        host_port: u32,
    },
}

/// What the connections share: the stream watcher, the count of live
/// connections and the host ports in use.
#[derive(Clone)]
pub struct Shared {
    /// Watches the streams.
    pub poller: Arc<Poller>,
    /// Connections that exist (offered, open or being rescinded).
    pub live: Arc<AtomicUsize>,
    /// Most connections at once (`--vsock-max-conns`).
    pub max: usize,
    /// Host ports of host-initiated connections.
    pub host_ports: Arc<Mutex<HostPorts>>,
    /// The packet fault armed by `hvctl vsock-fault` (an index into
    /// [`Fault::ALL`] plus one; 0: none).
    pub fault: Arc<AtomicU8>,
}

impl Shared {
    /// Arms `fault` for the next data packet to the guest.
    pub fn arm(&self, fault: Fault) {
        if let Some(i) = Fault::ALL.iter().position(|(_, f)| *f == fault) {
            self.fault.store(i as u8 + 1, Ordering::SeqCst);
        }
    }

    /// The armed packet fault, disarmed.
    fn take_fault(&self) -> Option<Fault> {
        if self.fault.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let i = self.fault.swap(0, Ordering::SeqCst);
        Fault::ALL
            .get(usize::from(i).checked_sub(1)?)
            .map(|(_, f)| *f)
    }

    /// A place for one more connection, unless `max` exist.
    pub fn reserve(&self) -> Option<Slot> {
        self.live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        // INVARIANT: the count includes this slot until it is dropped.
        Some(Slot {
            live: self.live.clone(),
        })
    }
}

/// One connection's share of [`Shared::live`], given back when dropped.
pub struct Slot {
    live: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Per-connection counters (`hvctl stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Stream bytes written to the host, and sent to the guest.
    pub to_host: u64,
    pub to_guest: u64,
    /// Data packets from the guest (FIN included), and to it.
    pub packets_in: u64,
    pub packets_out: u64,
    /// Times the guest's ring was full for host data, and times the host
    /// stream was full for guest data.
    pub guest_full: u64,
    pub host_full: u64,
}

/// One connection ([`VmbusDevice`] `hvsock`).
pub struct HvSock {
    stream: UnixStream,
    shared: Shared,
    _slot: Slot,
    registration: Option<Registration>,
    origin: Origin,
    /// The offer's `if_type` and `if_instance`.
    class: Guid,
    instance: Guid,
    open_by: Instant,
    /// Guest bytes the stream has not taken yet.
    to_host: VecDeque<u8>,
    /// Host bytes read before the connection opened (after `CONNECT`).
    early: Vec<u8>,
    /// The guest sent its FIN; the stream's write half is shut once
    /// `to_host` is empty.
    guest_fin: bool,
    write_shut: bool,
    /// The stream reached end of file; the guest gets a FIN.
    host_eof: bool,
    fin_sent: bool,
    /// Waiting for the guest to free ring space (pending_send_sz is set).
    waiting_room: bool,
    /// The connection broke; why.
    reset: Option<String>,
    rescind_asked: bool,
    counters: Counters,
    /// One packet: header and data.
    buf: Vec<u8>,
}

impl HvSock {
    /// A connection a guest program asked for: `endpoint` (the guest's end)
    /// to host service `service` (port `port`), already connected to the
    /// host program's `stream`.
    pub fn guest_initiated(
        stream: UnixStream,
        (shared, slot): (Shared, Slot),
        endpoint: Guid,
        service: Guid,
        port: u32,
        open_by: Instant,
    ) -> io::Result<Self> {
        let origin = Origin::Guest { port };
        Self::new(
            stream,
            (shared, slot),
            origin,
            (service, endpoint),
            open_by,
            Vec::new(),
        )
    }

    /// A connection a host program asked for with `CONNECT guest_port`; it
    /// got `host_port` and sent `early` after the command.
    /// The host port is given back when the connection is dropped.
    pub fn host_initiated(
        stream: UnixStream,
        (shared, slot): (Shared, Slot),
        guest_port: u32,
        host_port: u32,
        early: Vec<u8>,
        open_by: Instant,
    ) -> io::Result<Self> {
        let origin = Origin::Host {
            guest_port,
            host_port,
        };
        let ids = (
            hvsock::service_id(guest_port),
            hvsock::service_id(host_port),
        );
        Self::new(stream, (shared, slot), origin, ids, open_by, early)
    }

    fn new(
        stream: UnixStream,
        (shared, slot): (Shared, Slot),
        origin: Origin,
        (class, instance): (Guid, Guid),
        open_by: Instant,
        early: Vec<u8>,
    ) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            shared,
            _slot: slot,
            registration: None,
            origin,
            class,
            instance,
            open_by,
            to_host: VecDeque::new(),
            early,
            guest_fin: false,
            write_shut: false,
            host_eof: false,
            fin_sent: false,
            waiting_room: false,
            reset: None,
            rescind_asked: false,
            counters: Counters::default(),
            buf: vec![0; DATA_HEADER_SIZE + HOST_SEND_MAX],
        })
    }

    /// The connection's state, for the report.
    fn state(&self) -> &'static str {
        if self.reset.is_some() {
            "reset"
        } else if self.registration.is_none() {
            "offered"
        } else if self.guest_fin && self.fin_sent {
            "closing"
        } else if self.guest_fin {
            "guest_fin"
        } else if self.fin_sent {
            "host_fin"
        } else {
            "open"
        }
    }

    /// Ends the connection: it sends nothing more and asks for the
    /// rescind.
    fn reset(&mut self, why: String) {
        if self.reset.is_none() {
            log::warn!("vsock: {}: reset: {why}", self.describe());
            self.reset = Some(why);
            self.to_host.clear();
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }

    fn describe(&self) -> String {
        match self.origin {
            Origin::Guest { port } => format!("guest connection to host port {port}"),
            Origin::Host {
                guest_port,
                host_port,
            } => format!("host port {host_port}'s connection to guest port {guest_port}"),
        }
    }

    /// Writes what waits for the host stream; shuts its write half after
    /// the guest's FIN.
    fn flush_to_host(&mut self) {
        while !self.to_host.is_empty() && self.reset.is_none() {
            let (front, _) = self.to_host.as_slices();
            match self.stream.write(front) {
                Ok(0) => {
                    self.reset("the host stream takes no more bytes".into());
                }
                Ok(n) => {
                    self.counters.to_host += n as u64;
                    self.to_host.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.counters.host_full += 1;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.reset(format!("writing to the host stream: {e}")),
            }
        }
        if self.guest_fin && !self.write_shut && self.to_host.is_empty() && self.reset.is_none() {
            self.write_shut = true;
            if let Err(e) = self.stream.shutdown(Shutdown::Write) {
                self.reset(format!("shutting the host stream's write half: {e}"));
            }
        }
    }

    /// Sends `len` bytes at `self.buf[DATA_HEADER_SIZE..]` (0: the FIN).
    fn send(&mut self, io: &mut ChannelIo<'_>, len: usize) -> Result<(), DeviceError> {
        let fault = if len > 0 {
            self.shared.take_fault()
        } else {
            None
        };
        let header = match fault.and_then(|f| f.header(len)) {
            Some(bad) => {
                log::warn!(
                    "vsock: {}: committing fault {} (hvctl vsock-fault)",
                    self.describe(),
                    fault.map_or_else(String::new, |f| f.to_string())
                );
                bad
            }
            None => DataHeader::data(len as u32),
        };
        self.buf[..DATA_HEADER_SIZE].copy_from_slice(header.as_bytes());
        io.send_inband(0, &self.buf[..DATA_HEADER_SIZE + len])?;
        self.counters.packets_out += 1;
        self.counters.to_guest += len as u64;
        Ok(())
    }

    /// Data bytes one packet can carry in the room the guest's ring has
    /// (a write needs more than its length free: the ring is never full).
    fn room(io: &ChannelIo<'_>) -> Result<usize, DeviceError> {
        let free = io.outbound_free()?;
        Ok(free.saturating_sub(hvsock::ring_len(0) + 1) & !7)
    }

    /// Asks the guest to signal once a good packet fits; whether it does
    /// already.
    fn wait_for_room(
        &mut self,
        io: &mut ChannelIo<'_>,
        need: usize,
        batch: usize,
    ) -> Result<bool, DeviceError> {
        self.waiting_room = true;
        self.counters.guest_full += 1;
        Ok(io.wait_for_room_batched(hvsock::ring_len(need), hvsock::ring_len(batch))?)
    }

    /// Moves host bytes (the early ones, then the stream's) into packets
    /// for the guest while its ring has room, then the FIN after end of
    /// file. Packets are at most a quarter of the ring, so that the guest
    /// reads one while the next is written; when the ring is full the
    /// connection asks the guest to signal once half of it is free, so
    /// that a wake-up moves several packets, and hvhost's look for room
    /// polls it again as soon as one packet fits.
    fn pump_to_guest(&mut self, io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        if self.waiting_room {
            self.waiting_room = false;
            io.room_is_enough();
        }
        let ring = io.outbound_len();
        let packet_max = ((ring / 4) & !7).clamp(64, HOST_SEND_MAX);
        let min_room = packet_max.min(ring / 8).max(8);
        while self.reset.is_none() && !self.fin_sent {
            let room = Self::room(io)?.min(packet_max);
            if self.host_eof {
                if io.outbound_free()? > hvsock::ring_len(0) {
                    self.send(io, 0)?;
                    self.fin_sent = true;
                    log::debug!("vsock: {}: host end of file; FIN sent", self.describe());
                } else if !self.wait_for_room(io, 0, 0)? {
                    return Ok(());
                }
                continue;
            }
            if room < min_room {
                if self.wait_for_room(io, min_room, ring / 2)? {
                    continue;
                }
                return Ok(());
            }
            if !self.early.is_empty() {
                let n = self.early.len().min(room);
                self.buf[DATA_HEADER_SIZE..DATA_HEADER_SIZE + n].copy_from_slice(&self.early[..n]);
                self.early.drain(..n);
                self.send(io, n)?;
                continue;
            }
            match self
                .stream
                .read(&mut self.buf[DATA_HEADER_SIZE..DATA_HEADER_SIZE + room])
            {
                Ok(0) => self.host_eof = true,
                Ok(n) => self.send(io, n)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.reset(format!("reading the host stream: {e}")),
            }
        }
        Ok(())
    }

    /// Asks for the rescind once the connection is over.
    fn finish(&mut self, io: &mut ChannelIo<'_>) {
        let done = self.reset.is_some() || (self.guest_fin && self.write_shut && self.fin_sent);
        if done && !self.rescind_asked {
            self.rescind_asked = true;
            log::info!(
                "vsock: {}: over ({}), {} bytes to the host, {} to the guest",
                self.describe(),
                self.reset.as_deref().unwrap_or("both sides finished"),
                self.counters.to_host,
                self.counters.to_guest
            );
            io.rescind();
        }
    }

    /// Takes one guest packet's payload.
    fn take(&mut self, packet: &Packet<'_>) -> Result<(), String> {
        if packet.desc.ty != PacketType::DATA_INBAND {
            return Err(format!(
                "packet type {} is not in-band data",
                packet.desc.ty.0
            ));
        }
        if self.guest_fin {
            return Err("data after the guest's FIN".into());
        }
        match hvsock::parse_data(packet.data(), GUEST_SEND_MAX).map_err(|e| e.to_string())? {
            Data::Fin => {
                self.guest_fin = true;
                log::debug!("vsock: {}: guest FIN", self.describe());
            }
            Data::Bytes(bytes) => self.to_host.extend(bytes),
        }
        Ok(())
    }
}

impl VmbusDevice for HvSock {
    fn name(&self) -> &'static str {
        "hvsock"
    }

    fn class_id(&self) -> Guid {
        self.class
    }

    fn instance_id(&self) -> Guid {
        self.instance
    }

    fn socket(&self) -> Option<SocketOffer> {
        Some(SocketOffer {
            for_guest_accept: matches!(self.origin, Origin::Host { .. }),
            open_by: self.open_by,
        })
    }

    fn open(&mut self, io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        if self.registration.is_some() {
            return Err(DeviceError::Protocol(
                "the connection's channel opened twice".into(),
            ));
        }
        match self.shared.poller.register(&self.stream, io.waker()) {
            Ok(r) => self.registration = Some(r),
            Err(e) => self.reset(format!("cannot watch the host stream: {e}")),
        }
        if let Origin::Host { host_port, .. } = self.origin {
            // The guest accepted: the host program learns its port before
            // any of the guest's bytes.
            self.to_host.extend(ok_reply(host_port).as_bytes());
        }
        log::info!("vsock: {}: open", self.describe());
        Ok(())
    }

    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError> {
        if self.reset.is_some() {
            return Ok(());
        }
        self.counters.packets_in += 1;
        if let Err(why) = self.take(packet) {
            self.reset(format!("the guest broke the stream: {why}"));
            self.finish(io);
            return Ok(());
        }
        // One write for many packets: the drain's closing poll writes
        // the rest.
        if self.to_host.len() >= FLUSH_AT || self.guest_fin {
            self.flush_to_host();
        }
        Ok(())
    }

    fn poll(&mut self, io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        if let Some(r) = &self.registration {
            r.rearm();
        }
        self.flush_to_host();
        self.pump_to_guest(io)?;
        self.finish(io);
        Ok(None)
    }

    fn close(&mut self) {
        self.registration = None;
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn takes_packets(&self) -> bool {
        self.to_host.len() < TO_HOST_LIMIT && self.reset.is_none()
    }

    fn counters(&self) -> String {
        let (peer, port, host_port) = match self.origin {
            // The guest's end is named by the offer's instance.
            Origin::Guest { port } => (
                "guest",
                hvsock::port_of(&self.instance).unwrap_or(u32::MAX),
                port,
            ),
            Origin::Host {
                guest_port,
                host_port,
            } => ("host", guest_port, host_port),
        };
        let c = &self.counters;
        format!(
            "connected_by={peer} guest_port={port} host_port={host_port} conn_state={} \
             bytes_to_host={} bytes_to_guest={} packets_in={} packets_out={} guest_ring_full={} \
             host_stream_full={} pending_to_host={}",
            self.state(),
            c.to_host,
            c.to_guest,
            c.packets_in,
            c.packets_out,
            c.guest_full,
            c.host_full,
            self.to_host.len()
        )
    }
}

impl Drop for HvSock {
    fn drop(&mut self) {
        self.registration = None;
        if let Origin::Host { host_port, .. } = self.origin {
            self.shared
                .host_ports
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .release(host_port);
        }
    }
}
