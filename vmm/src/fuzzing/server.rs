// SPDX-License-Identifier: GPL-2.0

//! The VMBus server as a state machine driven by a hostile guest: any
//! sequence of channel messages (well-formed ones with chosen fields, and
//! raw bytes), GPADLs over chosen pages with bodies dropped or reordered,
//! opens, closes, teardowns, unloads, packets written into the guest's
//! rings (and scribbles over their headers), signals, time passing, and
//! the host removing devices, against the three ICs, the benchmark sink,
//! the SCSI controller (a 1 MiB disk; VSTOR requests in-band and
//! GPA-direct, over pages the guest chose) and Hyper-V sockets (connect
//! requests, each connection's relay with a host program's end that the
//! input writes to, reads and half-closes) on 256 pages of fake RAM.
//!
//! What must hold: every message the server posts is one a guest can
//! parse and fits a SynIC message; a channel event connection is never
//! registered twice; nothing panics.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hvcall::hypercall::HvStatus;
use vmbus::gpadl::{GpadlRange, GpadlSplitter};
use vmbus::guid::Guid;
use vmbus::hvsock::{self, DataHeader};
use vmbus::message::{
    encode, encode_empty, CloseChannel, GpadlTeardown, InitiateContact, MessageType, ModifyChannel,
    OpenChannel, RelidReleased, TlConnectRequest, MAX_MESSAGE_SIZE, MESSAGE_CONNECTION_ID,
};
use vmbus::packet::PacketFlags;
use vmbus::parse::parse;
use vmbus::ring::{RingConsumer, RingProducer};
use vmbus::version::Version;
use vmbus::vstor::{operation, VmscsiRequest, VstorPacket, VstorVersion};
use zerocopy::IntoBytes;

use super::Choices;
use crate::hyperv::connections::ConnectionError;
use crate::hyperv::guest_mem::{FakeMemory, GuestPages};
use crate::storage::{Controller, DiskSpec};
use crate::vmbus::device::{DeviceCommand, SocketService, VmbusDevice};
use crate::vmbus::guest_ring::GuestRing;
use crate::vmbus::ic::heartbeat::Heartbeat;
use crate::vmbus::ic::shutdown::Shutdown;
use crate::vmbus::ic::timesync::Timesync;
use crate::vmbus::ic::IcDevice;
use crate::vmbus::perf::PerfSink;
use crate::vmbus::port::{GuestPort, VcpuSample};
use crate::vmbus::server::{Faults, Server, SHARED_SIGNAL};
use crate::vmbus::storvsp::Storvsp;
use crate::vsock::hybrid::HostPorts;
use crate::vsock::poller::Poller;
use crate::vsock::relay::{HvSock, Shared};

/// Fake RAM: 256 pages.
const PAGES: u64 = 256;
/// At most this many operations an input.
const MAX_OPS: usize = 128;

/// The partition as the server sees it, checking what the server does.
struct Port {
    mem: Arc<dyn GuestPages>,
    events: Mutex<HashSet<u32>>,
    /// Channels a device's own thread (the SCSI I/O thread) woke.
    wakes: Mutex<Vec<u32>>,
    full: AtomicBool,
    posted: AtomicU64,
    vcpu_asleep: bool,
}

impl GuestPort for Port {
    fn vp_count(&self) -> u32 {
        2
    }
    fn memory(&self) -> &Arc<dyn GuestPages> {
        &self.mem
    }
    fn post_message(&self, vp: u32, message: &[u8]) -> Result<(), HvStatus> {
        assert!(vp < 2, "message to VP {vp}");
        assert!(message.len() <= MAX_MESSAGE_SIZE);
        if let Err(e) = parse(message) {
            panic!("the server posted a message a guest cannot parse: {e:?}: {message:02x?}");
        }
        self.posted.fetch_add(1, Ordering::Relaxed);
        if self.full.load(Ordering::Relaxed) {
            Err(HvStatus::INSUFFICIENT_BUFFERS)
        } else {
            Ok(())
        }
    }
    fn signal_channel(&self, vp: u32, _relid: u32) {
        assert!(vp < 2, "signal to VP {vp}");
    }
    fn register_channel_event(&self, id: u32, _relid: u32) -> Result<(), ConnectionError> {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if !events.insert(id) {
            return Err(ConnectionError::InUse(id));
        }
        Ok(())
    }
    fn unregister_channel_event(&self, id: u32) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
    fn reference_time(&self) -> u64 {
        0x1234_5678
    }
    fn wake_channel(&self, relid: u32) {
        self.wakes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(relid);
    }
    fn vcpu_sample(&self, vp: u32) -> Option<VcpuSample> {
        // Asleep: a drain's look for the next packet ends at once.
        (self.vcpu_asleep && vp < 2).then_some(VcpuSample {
            asleep: true,
            run_ns: 0,
        })
    }
}

/// A GPADL the harness described: its channel, handle and pages.
#[derive(Clone, Copy)]
struct Gpadl {
    relid: u32,
    handle: u32,
    first: u64,
    pages: u64,
}

/// A channel the harness asked to open on a GPADL.
#[derive(Clone, Copy)]
struct Open {
    relid: u32,
    gpadl: Gpadl,
    downstream: u64,
}

fn message<M: vmbus::message::ChannelMessage>(m: &M) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    match encode(m, &mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

fn empty(t: MessageType) -> Vec<u8> {
    let mut buf = [0u8; 8];
    match encode_empty(t, &mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

/// A relid: mostly one the server offers (1..8), sometimes any.
fn relid(c: &mut Choices<'_>) -> u32 {
    if c.one_in(8) {
        c.u32()
    } else {
        1 + u32::from(c.u8() % 8)
    }
}

const VERSIONS: &[u32] = &[
    Version::WIN10.0,
    Version::V4_1.0,
    Version::V5_0.0,
    Version::V5_1.0,
    Version::V5_2.0,
    Version::V5_3.0,
    Version::V6_0.0,
    0x0003_0000,
    0x0007_0000,
];

/// The guest's rings of an open channel: what it sends on, what it reads.
fn rings(mem: &Arc<dyn GuestPages>, o: &Open) -> Option<(GuestRing, GuestRing)> {
    if o.downstream < 2 || o.downstream + 2 > o.gpadl.pages {
        return None;
    }
    let gpa = |p: u64| (o.gpadl.first + p) * 4096;
    let send = GuestRing::new(mem.clone(), gpa(0), (1..o.downstream).map(gpa).collect());
    let recv = GuestRing::new(
        mem.clone(),
        gpa(o.downstream),
        (o.downstream + 1..o.gpadl.pages).map(gpa).collect(),
    );
    Some((send, recv))
}

/// A 1 MiB scratch file for the disk, in memory where the machine has a
/// tmpfs; `None` if it cannot be made (the run goes on without a disk).
fn scratch_disk() -> Option<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("hvhost-fuzz-{}-{n}", std::process::id()));
    let file = std::fs::File::create(&path).ok()?;
    file.set_len(1 << 20).ok()?;
    Some(path)
}

/// SCSI commands a guest sends, before their fields are chosen.
const CDB_OPCODES: &[u8] = &[
    0x00, // TEST UNIT READY
    0x03, // REQUEST SENSE
    0x12, // INQUIRY
    0x1a, // MODE SENSE(6)
    0x25, // READ CAPACITY(10)
    0x28, // READ(10)
    0x2a, // WRITE(10)
    0x35, // SYNCHRONIZE CACHE(10)
    0x42, // UNMAP
    0x5a, // MODE SENSE(10)
    0x88, // READ(16)
    0x8a, // WRITE(16)
    0x9e, // SERVICE ACTION IN (READ CAPACITY(16))
    0xa0, // REPORT LUNS
];

const VSTOR_OPERATIONS: &[u32] = &[
    operation::BEGIN_INITIALIZATION,
    operation::QUERY_PROTOCOL_VERSION,
    operation::QUERY_PROPERTIES,
    operation::END_INITIALIZATION,
    operation::EXECUTE_SRB,
    operation::EXECUTE_SRB,
    operation::EXECUTE_SRB,
    operation::CREATE_SUB_CHANNELS,
    operation::RESET_BUS,
    operation::ENUMERATE_BUS,
];

/// Writes a VSTOR request, in-band or GPA-direct over chosen pages.
fn vstor_request(c: &mut Choices<'_>, p: &mut RingProducer<GuestRing>) {
    let op = if c.one_in(8) {
        c.u32()
    } else {
        c.pick(VSTOR_OPERATIONS)
    };
    let mut packet = VstorPacket::request(op);
    packet.status = c.u32() & 0x3;
    if op == operation::QUERY_PROTOCOL_VERSION {
        packet = VstorPacket::query_version(VstorVersion(c.u16()));
    }
    if op == operation::EXECUTE_SRB {
        let mut cdb = [0u8; 16];
        cdb[0] = c.pick(CDB_OPCODES);
        let rest = c.len(15);
        let bytes = c.bytes(rest);
        cdb[1..1 + bytes.len()].copy_from_slice(bytes);
        let dir = c.u8() % 3;
        let len = u32::from(c.u16()) * if c.bool() { 1 } else { 512 };
        let srb = VmscsiRequest::command(c.u8() % 3, &cdb, dir, len);
        packet = packet.with_body(&srb);
    }
    let mut bytes = packet.as_bytes().to_vec();
    if c.one_in(8) {
        bytes.truncate(c.len(bytes.len()));
    }
    let flags = PacketFlags::COMPLETION_REQUESTED;
    let id = c.u64();
    if c.bool() {
        let _ = p.write_inband(id, flags, &bytes);
    } else {
        let pages = 1 + u64::from(c.u8() % 4);
        let first = u64::from(c.u8()) % PAGES;
        let pfns: Vec<u64> = if c.one_in(8) {
            (0..pages).map(|_| c.u64()).collect()
        } else {
            (first..first + pages).collect()
        };
        let offset = u32::from(c.u16() % 4096);
        let count = if c.one_in(4) {
            c.u32()
        } else {
            (pages * 4096) as u32 - offset
        };
        let range = GpadlRange {
            byte_count: count,
            byte_offset: offset,
            pfns: &pfns,
        };
        let _ = p.write_gpa_direct(id, flags, &[range], &bytes);
    }
}

/// The socket relays' stream watcher: one thread for the whole process
/// (`None` if it cannot start: the run goes on without sockets).
fn poller() -> Option<Arc<Poller>> {
    static POLLER: OnceLock<Option<Arc<Poller>>> = OnceLock::new();
    POLLER.get_or_init(|| Poller::start().ok()).clone()
}

/// The host side of `--vsock` for one input: each guest connect gets a
/// relay over a socket pair, whose other end the input plays with.
struct FuzzSockets {
    shared: Shared,
    hosts: Arc<Mutex<Vec<UnixStream>>>,
}

impl SocketService for FuzzSockets {
    fn guest_connect(
        &mut self,
        endpoint: Guid,
        service: Guid,
    ) -> Result<Box<dyn VmbusDevice>, String> {
        let port = hvsock::port_of(&service).ok_or("not a vsock service")?;
        let slot = self.shared.reserve().ok_or("too many connections")?;
        let (relay_end, host_end) = UnixStream::pair().map_err(|e| e.to_string())?;
        host_end.set_nonblocking(true).map_err(|e| e.to_string())?;
        let dev = HvSock::guest_initiated(
            relay_end,
            (self.shared.clone(), slot),
            endpoint,
            service,
            port,
            Instant::now() + Duration::from_secs(30),
        )
        .map_err(|e| e.to_string())?;
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(host_end);
        Ok(Box::new(dev))
    }

    fn fault(
        &mut self,
        _fault: crate::vsock::fault::Fault,
    ) -> Result<Option<Box<dyn VmbusDevice>>, String> {
        Err("no faults here".into())
    }
}

/// Runs one input.
pub fn vmbus_server(data: &[u8]) {
    run(data);
}

/// Runs one input; the server's counters at the end.
fn run(data: &[u8]) -> crate::vmbus::server::Stats {
    let mut c = Choices::new(data);
    let fake = Arc::new(FakeMemory::new((PAGES * 4096) as usize));
    let mem: Arc<dyn GuestPages> = fake;
    let port = Arc::new(Port {
        mem: mem.clone(),
        events: Mutex::default(),
        wakes: Mutex::default(),
        full: AtomicBool::new(false),
        posted: AtomicU64::new(0),
        vcpu_asleep: c.bool(),
    });
    let versions = vec![
        Version::WIN10,
        Version::V4_1,
        Version::V5_0,
        Version::V5_1,
        Version::V5_2,
        Version::V5_3,
        Version::V6_0,
    ];
    let mut server = Server::new(port.clone(), versions, Faults::default());
    server.set_shared_interrupts(c.bool());
    server.add_device(Box::new(IcDevice::new(Heartbeat::new(
        Duration::from_secs(1),
        Arc::new(AtomicU64::new(0)),
    ))));
    server.add_device(Box::new(IcDevice::new(Shutdown::new(Arc::new(
        AtomicBool::new(false),
    )))));
    server.add_device(Box::new(IcDevice::new(Timesync::new(Duration::from_secs(
        5,
    )))));
    server.add_device(Box::new(PerfSink::new()));
    // The disk's file goes once the controller has it open.
    let disk = scratch_disk();
    if let Some(path) = &disk {
        let spec = DiskSpec {
            path: path.clone(),
            read_only: false,
            lun: None,
        };
        if let Ok(controller) = Controller::new(&[spec]) {
            server.add_device(Box::new(Storvsp::new(controller, 2)));
        }
        let _ = std::fs::remove_file(path);
    }
    let hosts: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
    if let Some(poller) = poller() {
        server.set_socket_service(Box::new(FuzzSockets {
            shared: Shared {
                poller,
                live: Arc::default(),
                max: 8,
                host_ports: Arc::new(Mutex::new(HostPorts::new(8))),
                fault: Arc::default(),
            },
            hosts: hosts.clone(),
        }));
    }

    let mut now = Instant::now();
    let mut gpadls: Vec<Gpadl> = Vec::new();
    let mut opens: Vec<Open> = Vec::new();
    let send = |server: &mut Server, c: &mut Choices<'_>, bytes: &[u8], now: Instant| {
        // The sending VP is the hypervisor's word (the vCPU that made the
        // hypercall), never the guest's: one of the two.
        let vp = u32::from(c.u8() % 2);
        server.handle_message(vp, MESSAGE_CONNECTION_ID, bytes, now);
    };

    for _ in 0..MAX_OPS {
        if c.is_empty() {
            break;
        }
        let woken = std::mem::take(&mut *port.wakes.lock().unwrap_or_else(PoisonError::into_inner));
        for relid in woken {
            server.poll_channel(relid, now);
        }
        match c.u8() % 21 {
            0 => {
                let version = c.pick(VERSIONS);
                let mut m = InitiateContact {
                    vmbus_version_requested: version,
                    target_vcpu: u32::from(c.u8() % 3),
                    msg_sint: c.u8() % 17,
                    msg_vtl: c.u8() % 2,
                    reserved: [0; 2],
                    feature_flags: u32::from(c.u8()),
                    monitor_page1: u64::from(c.u8()) << 12,
                    monitor_page2: u64::from(c.u8()) << 12,
                };
                if !Version(version).contact_names_sint() {
                    m.set_interrupt_page(u64::from(c.u8()) << 12);
                }
                let conn = if c.one_in(8) {
                    c.u32()
                } else {
                    Version(version).contact_connection()
                };
                server.handle_message(0, conn, &message(&m), now);
            }
            1 => {
                let bytes = empty(MessageType::REQUESTOFFERS);
                send(&mut server, &mut c, &bytes, now);
            }
            // A GPADL as Linux describes one, some messages dropped or
            // replayed.
            2 | 3 => {
                let g = Gpadl {
                    relid: relid(&mut c),
                    handle: if c.bool() {
                        u32::from(c.u8() % 4) + 1
                    } else {
                        c.u32()
                    },
                    first: u64::from(c.u8()) % PAGES,
                    pages: 1 + u64::from(c.u8() % 40),
                };
                let pfns: Vec<u64> = (g.first..g.first + g.pages).collect();
                let offset = if c.one_in(8) { u32::from(c.u16()) } else { 0 };
                let count = if c.one_in(8) {
                    c.u32()
                } else {
                    (g.pages * 4096) as u32 - offset.min(4095)
                };
                let ranges = [GpadlRange {
                    byte_count: count,
                    byte_offset: offset,
                    pfns: &pfns,
                }];
                let drop_mask = if c.one_in(4) { c.u8() } else { 0 };
                if let Ok(mut split) = GpadlSplitter::new(g.relid, g.handle, &ranges) {
                    let mut buf = [0u8; MAX_MESSAGE_SIZE];
                    let mut i = 0;
                    while let Some(Ok(n)) = split.next_message(&mut buf) {
                        if drop_mask & (1 << (i % 8)) == 0 {
                            send(&mut server, &mut c, &buf[..n], now);
                        }
                        i += 1;
                    }
                    gpadls.push(g);
                }
            }
            4 | 5 => {
                let gpadl = match gpadls.len() {
                    0 => continue,
                    n => gpadls[usize::from(c.u8()) % n],
                };
                let relid = if c.one_in(4) {
                    relid(&mut c)
                } else {
                    gpadl.relid
                };
                let downstream = if c.one_in(4) {
                    u64::from(c.u32())
                } else {
                    gpadl.pages / 2
                };
                let mut userdata = [0u8; 120];
                let len = c.len(120);
                let bytes = c.bytes(len);
                userdata[..bytes.len()].copy_from_slice(bytes);
                let m = OpenChannel {
                    child_relid: relid,
                    openid: c.u32(),
                    ringbuffer_gpadlhandle: gpadl.handle,
                    target_vp: u32::from(c.u8() % 3),
                    downstream_ringbuffer_pageoffset: downstream as u32,
                    userdata,
                };
                send(&mut server, &mut c, &message(&m), now);
                opens.push(Open {
                    relid,
                    gpadl,
                    downstream,
                });
            }
            6 => {
                let m = CloseChannel {
                    child_relid: relid(&mut c),
                };
                send(&mut server, &mut c, &message(&m), now);
            }
            7 => {
                let (relid, gpadl) = match gpadls.len() {
                    0 => (relid(&mut c), c.u32()),
                    n => {
                        let g = gpadls[usize::from(c.u8()) % n];
                        (g.relid, g.handle)
                    }
                };
                let m = GpadlTeardown {
                    child_relid: relid,
                    gpadl,
                };
                send(&mut server, &mut c, &message(&m), now);
            }
            8 => {
                let m = RelidReleased {
                    child_relid: relid(&mut c),
                };
                send(&mut server, &mut c, &message(&m), now);
            }
            9 => {
                let bytes = empty(MessageType::UNLOAD);
                send(&mut server, &mut c, &bytes, now);
            }
            10 => {
                let m = ModifyChannel {
                    child_relid: relid(&mut c),
                    target_vp: u32::from(c.u8() % 4),
                };
                send(&mut server, &mut c, &message(&m), now);
            }
            // Raw bytes: a chosen type, then anything.
            11 => {
                let mut bytes = c.u32().to_le_bytes().to_vec();
                bytes[0] %= 26;
                let len = c.len(MAX_MESSAGE_SIZE + 8);
                bytes.extend_from_slice(c.bytes(len));
                let conn = match c.u8() % 4 {
                    0 => c.u32(),
                    1 => vmbus::message::MESSAGE_CONNECTION_ID_4,
                    _ => MESSAGE_CONNECTION_ID,
                };
                server.handle_message(u32::from(c.u8() % 2), conn, &bytes, now);
            }
            // The guest writes a packet in an open channel's ring and
            // signals (or not).
            12 | 13 => {
                let Some(o) = (!opens.is_empty()).then(|| opens[usize::from(c.u8()) % opens.len()])
                else {
                    continue;
                };
                if let Some((send_ring, _)) = rings(&mem, &o) {
                    if let Ok(mut p) = RingProducer::new(send_ring) {
                        let len = c.len(255) * 4;
                        let flags = if c.bool() {
                            PacketFlags::COMPLETION_REQUESTED
                        } else {
                            PacketFlags::NONE
                        };
                        let _ = p.write_inband(c.u64(), flags, c.bytes(len));
                    }
                }
                if c.bool() {
                    server.handle_signal(o.relid, now);
                }
            }
            // The guest reads what the host wrote, making room.
            14 => {
                let Some(o) = (!opens.is_empty()).then(|| opens[usize::from(c.u8()) % opens.len()])
                else {
                    continue;
                };
                if let Some((_, recv_ring)) = rings(&mem, &o) {
                    if let Ok(mut r) = RingConsumer::new(recv_ring) {
                        let mut buf = vec![0u8; 4096];
                        for _ in 0..16 {
                            match r.read_and_commit(&mut buf) {
                                Ok(Some(_)) => {}
                                _ => break,
                            }
                        }
                    }
                }
            }
            // Scribbles: anywhere, or over a ring header.
            15 => {
                let gpa = match (c.bool(), gpadls.len()) {
                    (true, n) if n > 0 => gpadls[usize::from(c.u8()) % n].first * 4096,
                    _ => u64::from(c.u32()) % (PAGES * 4096),
                } + u64::from(c.u8()) * 4;
                let len = c.len(32);
                let _ = mem.write(gpa, c.bytes(len));
            }
            16 => {
                let relid = if c.bool() {
                    SHARED_SIGNAL
                } else {
                    relid(&mut c)
                };
                server.handle_signal(relid, now);
            }
            // A VSTOR request in an open channel's ring, signalled.
            17 => {
                let Some(o) = (!opens.is_empty()).then(|| opens[usize::from(c.u8()) % opens.len()])
                else {
                    continue;
                };
                if let Some((send_ring, _)) = rings(&mem, &o) {
                    if let Ok(mut p) = RingProducer::new(send_ring) {
                        vstor_request(&mut c, &mut p);
                    }
                }
                server.handle_signal(o.relid, now);
            }
            // A guest program connects to a host service.
            18 => {
                let m = TlConnectRequest {
                    guest_endpoint_id: if c.one_in(8) {
                        Guid(c.bytes(16).try_into().unwrap_or_default())
                    } else {
                        hvsock::service_id(c.u32())
                    },
                    host_service_id: if c.one_in(8) {
                        Guid(c.bytes(16).try_into().unwrap_or_default())
                    } else {
                        hvsock::service_id(u32::from(c.u16()))
                    },
                };
                send(&mut server, &mut c, &message(&m), now);
            }
            // A host program writes, reads or half-closes its end.
            19 => {
                let mut hosts = hosts.lock().unwrap_or_else(PoisonError::into_inner);
                let n = hosts.len();
                if n > 0 {
                    let host = &mut hosts[usize::from(c.u8()) % n];
                    match c.u8() % 3 {
                        0 => {
                            let len = c.len(255) * 64;
                            let _ = host.write(&vec![0x42; len]);
                        }
                        1 => {
                            let mut buf = [0u8; 16384];
                            let _ = host.read(&mut buf);
                        }
                        _ => {
                            let _ = host.shutdown(std::net::Shutdown::Write);
                        }
                    }
                }
            }
            // A pipe data packet (or FIN) in an open channel's ring.
            20 => {
                let Some(o) = (!opens.is_empty()).then(|| opens[usize::from(c.u8()) % opens.len()])
                else {
                    continue;
                };
                if let Some((send_ring, _)) = rings(&mem, &o) {
                    if let Ok(mut p) = RingProducer::new(send_ring) {
                        let len = c.len(255) * if c.bool() { 17 } else { 1 };
                        let claimed = if c.one_in(8) { c.u32() } else { len as u32 };
                        let header = DataHeader {
                            pkt_type: if c.one_in(8) { c.u32() } else { 1 },
                            data_size: claimed,
                        };
                        let mut bytes = header.as_bytes().to_vec();
                        bytes.resize(bytes.len() + len, 0x61);
                        let _ = p.write_inband(0, PacketFlags::NONE, &bytes);
                    }
                }
                server.handle_signal(o.relid, now);
            }
            _ => match c.u8() % 5 {
                0 => {
                    let _ = server.remove_device(relid(&mut c));
                }
                1 => {
                    let _ = server.command(DeviceCommand::Shutdown, now);
                }
                2 => port.full.store(c.bool(), Ordering::Relaxed),
                _ => {
                    now += Duration::from_millis(u64::from(c.u16()));
                    server.poll(now);
                }
            },
        }
    }
    server.stats()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Builds an input choice by choice, in the order [`run`] takes them.
    #[derive(Default)]
    pub struct Script(pub Vec<u8>);

    impl Script {
        pub fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        pub fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        pub fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        pub fn bytes(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
    }

    /// A guest as Linux's: contact at 6.0, offers, a 16-page GPADL for
    /// relid `relid`, the open, one packet in its ring and the signal.
    pub fn linux_session(relid: u8) -> Vec<u8> {
        let s = Script::default()
            .u8(1) // VPs asleep: looks end at once
            .u8(0) // no shared interrupts
            // INITIATE_CONTACT: 6.0, VP 0, SINT 2, VTL 0, no flags, monitor pages 1 and 2
            .bytes(&[0, 6, 0, 2, 0, 0, 1, 2])
            .u8(1) // its own contact connection
            .bytes(&[1, 0]) // REQUESTOFFERS from VP 0
            // GPADL: relid (not raw), handle 1, pages 16..32, whole pages, all sent
            .bytes(&[2, 1, relid - 1, 1, 0, 16, 15, 1, 1, 1])
            .u8(0) // the GPADL header (16 PFNs fit in it) from VP 0
            // OPENCHANNEL on it: same relid, downstream at 8, no user data
            .bytes(&[4, 0, 1, 1, 0])
            .u32(7) // openid
            .u8(1) // target VP
            .u8(0) // from VP 0
            // a 64-byte packet in its ring, signalled
            .bytes(&[12, 0, 16, 1]) // completion requested
            .u64(42)
            .bytes(&[0x5a; 64])
            .u8(1);
        s.0
    }

    /// A guest program connecting to host port 1234 as Linux's `hv_sock`
    /// does: the request, then the offered channel's GPADL and open, then
    /// 16 bytes of stream data in a pipe packet, signalled.
    pub fn socket_session() -> Vec<u8> {
        Script::default()
            .u8(1)
            .u8(0)
            .bytes(&[0, 6, 0, 2, 0, 0, 1, 2])
            .u8(1)
            .bytes(&[1, 0])
            // TL_CONNECT_REQUEST: endpoint from port 77, service port 1234, VP 0
            .bytes(&[18, 1])
            .u32(77)
            .u8(1)
            .bytes(&1234u16.to_le_bytes())
            .u8(0)
            // the offer's relid (6, after the five devices): GPADL and open
            .bytes(&[2, 1, 5, 1, 0, 16, 15, 1, 1, 1])
            .u8(0)
            .bytes(&[4, 0, 1, 1, 0])
            .u32(9)
            .u8(1)
            .u8(0)
            // a pipe packet: 16 bytes, header as sent
            .bytes(&[20, 0, 16, 0, 1, 1])
            .0
    }

    #[test]
    fn a_socket_connect_reaches_the_relay() {
        let st = run(&socket_session());
        assert_eq!(st.socket_requests, 1, "{}", st.fields());
        assert_eq!(st.socket_refusals, 0, "{}", st.fields());
        assert_eq!(st.opens, 1, "{}", st.fields());
        assert!(st.packets_in >= 1, "{}", st.fields());
    }

    #[test]
    fn a_linux_like_input_reaches_an_open_channel_and_its_ring() {
        // Heartbeat, shutdown, timesync, the benchmark sink, the SCSI
        // controller.
        for relid in 1..=5 {
            let st = run(&linux_session(relid));
            assert_eq!(st.contacts, 1, "relid {relid}: {}", st.fields());
            assert_eq!(st.gpadls, 1, "relid {relid}: {}", st.fields());
            assert_eq!(st.opens, 1, "relid {relid}: {}", st.fields());
            assert!(st.packets_in >= 1, "relid {relid}: {}", st.fields());
        }
        // The controller answers even a packet that is not a VSTOR request.
        let st = run(&linux_session(5));
        assert!(st.packets_out >= 1, "{}", st.fields());
    }
}
