// SPDX-License-Identifier: GPL-2.0

//! The server against a fake partition and a guest written here the way
//! Linux's `hv_vmbus` and `hv_utils` behave (same messages, same order,
//! same ring use), plus hostile inputs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hvcall::hypercall::HvStatus;
use proptest::prelude::*;
use vmbus::gpadl::{GpadlRange, GpadlSplitter};
use vmbus::guid::{HEARTBEAT, SHUTDOWN, TIMESYNC};
use vmbus::ic::{
    icflags, parse_message, shutdown_flags, HeartbeatMsg, IcMsgType, IcNegotiate, IcVersion,
    ShutdownMsg, TimesyncRefMsg, ICMSG_HDR,
};
use vmbus::message::{
    encode, encode_empty, CloseChannel, GpadlTeardown, InitiateContact, MessageType, ModifyChannel,
    OpenChannel, RelidReleased, MAX_MESSAGE_SIZE, MESSAGE_CONNECTION_ID, MESSAGE_CONNECTION_ID_4,
};
use vmbus::packet::PacketFlags;
use vmbus::parse::{parse, Message};
use vmbus::ring::{HeaderField, RingConsumer, RingMemory, RingProducer};
use vmbus::version::Version;
use zerocopy::{FromBytes, IntoBytes};

use super::channel::{ChannelIo, ChannelRings, ChannelWaker};
use super::device::{CommandState, DeviceCommand, DeviceError, VmbusDevice};
use super::guest_ring::GuestRing;
use super::ic::heartbeat::Heartbeat;
use super::ic::shutdown::Shutdown;
use super::ic::timesync::Timesync;
use super::ic::IcDevice;
use super::port::VcpuSample;
use super::server::{
    CommandError, Connection, Faults, GuestPort, Removal, RemoveError, Server,
    CHANNEL_CONNECTION_BASE, SHARED_EVENT_CONNECTION, SHARED_SIGNAL,
};
use crate::hyperv::connections::ConnectionError;
use crate::hyperv::guest_mem::{FakeMemory, GuestPages};

mod hvsock;
/// The benchmark sink against the same fake guest.
mod perf;
mod storvsp;

const RAM: usize = 0x80_0000;

/// The partition as the server sees it: records what it posts and signals.
struct FakePort {
    fake: Arc<FakeMemory>,
    mem: Arc<dyn GuestPages>,
    vps: u32,
    posted: Mutex<Vec<(u32, Vec<u8>)>>,
    signals: Mutex<Vec<(u32, u32)>>,
    events: Mutex<HashSet<u32>>,
    full: AtomicBool,
    wakes: Mutex<Vec<u32>>,
    /// What every VP is doing ([`GuestPort::vcpu_sample`]); none: unknown.
    vcpu: Mutex<Option<Arc<ScriptedVp>>>,
}

/// A VP whose state the test sets: halted or not, and a run time that
/// grows by `tick_ns` at each reading (0: the host does not run it).
#[derive(Default)]
struct ScriptedVp {
    halted: AtomicBool,
    run_ns: AtomicU64,
    tick_ns: AtomicU64,
    readings: AtomicU64,
}

impl ScriptedVp {
    fn new(halted: bool, tick_ns: u64) -> Arc<Self> {
        let vp = Self::default();
        vp.halted.store(halted, Ordering::SeqCst);
        vp.tick_ns.store(tick_ns, Ordering::SeqCst);
        Arc::new(vp)
    }

    fn sample(&self) -> VcpuSample {
        self.readings.fetch_add(1, Ordering::SeqCst);
        let tick = self.tick_ns.load(Ordering::SeqCst);
        VcpuSample {
            asleep: self.halted.load(Ordering::SeqCst),
            run_ns: self.run_ns.fetch_add(tick, Ordering::SeqCst) + tick,
        }
    }
}

impl FakePort {
    fn new(vps: u32) -> Arc<Self> {
        let fake = Arc::new(FakeMemory::new(RAM));
        Arc::new(Self {
            mem: fake.clone(),
            fake,
            vps,
            posted: Mutex::default(),
            signals: Mutex::default(),
            events: Mutex::default(),
            full: AtomicBool::new(false),
            wakes: Mutex::default(),
            vcpu: Mutex::default(),
        })
    }

    fn take(&self) -> Vec<(u32, Vec<u8>)> {
        std::mem::take(&mut *self.posted.lock().expect("lock"))
    }
}

impl GuestPort for FakePort {
    fn vp_count(&self) -> u32 {
        self.vps
    }
    fn memory(&self) -> &Arc<dyn GuestPages> {
        &self.mem
    }
    fn post_message(&self, vp: u32, message: &[u8]) -> Result<(), HvStatus> {
        assert!(message.len() <= MAX_MESSAGE_SIZE);
        if self.full.load(Ordering::SeqCst) {
            return Err(HvStatus::INSUFFICIENT_BUFFERS);
        }
        self.posted
            .lock()
            .expect("lock")
            .push((vp, message.to_vec()));
        Ok(())
    }
    fn signal_channel(&self, vp: u32, relid: u32) {
        self.signals.lock().expect("lock").push((vp, relid));
    }
    fn register_channel_event(&self, id: u32, _relid: u32) -> Result<(), ConnectionError> {
        if !self.events.lock().expect("lock").insert(id) {
            return Err(ConnectionError::InUse(id));
        }
        Ok(())
    }
    fn unregister_channel_event(&self, id: u32) {
        self.events.lock().expect("lock").remove(&id);
    }
    fn reference_time(&self) -> u64 {
        12345
    }
    fn wake_channel(&self, relid: u32) {
        self.wakes.lock().expect("lock").push(relid);
    }
    fn vcpu_sample(&self, vp: u32) -> Option<VcpuSample> {
        if vp >= self.vps {
            return None;
        }
        let script = self.vcpu.lock().expect("lock").clone();
        script.map(|v| v.sample())
    }
}

struct Rig {
    port: Arc<FakePort>,
    server: Server,
    now: Instant,
    heartbeats: Arc<AtomicU64>,
    shutdown_ready: Arc<AtomicBool>,
    next_page: u64,
}

fn rig_with(versions: Vec<Version>, faults: Faults) -> Rig {
    let port = FakePort::new(2);
    let mut server = Server::new(port.clone(), versions, faults);
    let heartbeats = Arc::new(AtomicU64::new(0));
    let shutdown_ready = Arc::new(AtomicBool::new(false));
    server.add_device(Box::new(IcDevice::new(Heartbeat::new(
        Duration::from_secs(1),
        heartbeats.clone(),
    ))));
    server.add_device(Box::new(IcDevice::new(Shutdown::new(
        shutdown_ready.clone(),
    ))));
    server.add_device(Box::new(IcDevice::new(Timesync::new(Duration::from_secs(
        5,
    )))));
    Rig {
        port,
        server,
        now: Instant::now(),
        heartbeats,
        shutdown_ready,
        next_page: 0x100,
    }
}

fn rig() -> Rig {
    rig_with(vec![Version::V6_0], Faults::default())
}

fn msg<M: vmbus::message::ChannelMessage>(m: &M) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let n = encode(m, &mut buf).expect("fits");
    buf[..n].to_vec()
}

fn empty(t: MessageType) -> Vec<u8> {
    let mut buf = [0u8; 8];
    let n = encode_empty(t, &mut buf).expect("fits");
    buf[..n].to_vec()
}

/// INITIATE_CONTACT below 5.0: the union holds the interrupt page.
fn contact_with_page(version: Version, vcpu: u32, interrupt_page: u64) -> Vec<u8> {
    let mut m = InitiateContact {
        vmbus_version_requested: version.0,
        target_vcpu: vcpu,
        msg_sint: 0,
        msg_vtl: 0,
        reserved: [0; 2],
        feature_flags: 0,
        monitor_page1: 0x1000,
        monitor_page2: 0x2000,
    };
    m.set_interrupt_page(interrupt_page);
    msg(&m)
}

fn contact(version: Version, vcpu: u32) -> Vec<u8> {
    msg(&InitiateContact {
        vmbus_version_requested: version.0,
        target_vcpu: vcpu,
        msg_sint: 2,
        msg_vtl: 0,
        reserved: [0; 2],
        feature_flags: 0,
        monitor_page1: 0x1000,
        monitor_page2: 0x2000,
    })
}

/// A guest-side open channel: its two rings.
struct GuestChannel {
    relid: u32,
    send: RingProducer<GuestRing>,
    recv: RingConsumer<GuestRing>,
    gpadl: u32,
}

impl Rig {
    /// Posts from VP 0 as Linux does: INITIATE_CONTACT on its version's
    /// contact connection, everything else on the message connection (1,
    /// what hvhost names).
    fn send(&mut self, bytes: &[u8]) {
        let conn = match parse(bytes) {
            Ok(Message::InitiateContact(m)) => {
                Version(m.vmbus_version_requested).contact_connection()
            }
            _ => MESSAGE_CONNECTION_ID,
        };
        self.send_on(conn, bytes);
    }

    fn send_on(&mut self, connection: u32, bytes: &[u8]) {
        self.server.handle_message(0, connection, bytes, self.now);
    }

    /// The VERSION_RESPONSE that must be the only reply.
    fn version_response(&self) -> (u32, vmbus::message::VersionResponse) {
        let r = self.replies();
        assert_eq!(r.len(), 1, "{r:?}");
        let Ok(Message::VersionResponse(v)) = parse(&r[0].1) else {
            panic!("{r:?}")
        };
        (r[0].0, v)
    }

    fn replies(&self) -> Vec<(u32, Vec<u8>)> {
        self.port.take()
    }

    fn types(&self) -> Vec<MessageType> {
        self.replies()
            .iter()
            .map(|(_, b)| parse(b).expect("host sends valid messages").msgtype())
            .collect()
    }

    fn connect(&mut self) {
        self.connect_at(Version::V6_0);
    }

    fn connect_at(&mut self, version: Version) {
        if version.contact_names_sint() {
            self.send(&contact(version, 0));
        } else {
            self.send(&contact_with_page(version, 0, 0x3000));
        }
        let r = self.replies();
        let Ok(Message::VersionResponse(v)) = parse(&r[0].1) else {
            panic!("{r:?}")
        };
        assert_eq!(v.version_supported, 1);
        self.send(&empty(MessageType::REQUESTOFFERS));
        let t = self.types();
        assert_eq!(t.last(), Some(&MessageType::ALLOFFERS_DELIVERED));
    }

    fn pages(&mut self, n: u64) -> Vec<u64> {
        let first = self.next_page;
        self.next_page += n;
        (first..first + n).collect()
    }

    /// Sends the GPADL messages of `ranges` (as Linux's create_gpadl_header)
    /// and returns the host's GPADL_CREATED status.
    fn gpadl(&mut self, relid: u32, handle: u32, ranges: &[GpadlRange<'_>]) -> u32 {
        let mut s = GpadlSplitter::new(relid, handle, ranges).expect("valid");
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        while let Some(n) = s.next_message(&mut buf) {
            let n = n.expect("fits");
            self.send(&buf[..n]);
        }
        let r = self.replies();
        let Some(Ok(Message::GpadlCreated(c))) = r.last().map(|(_, b)| parse(b)) else {
            panic!("{r:?}")
        };
        assert_eq!((c.child_relid, c.gpadl), (relid, handle));
        c.creation_status
    }

    /// Opens `relid` like Linux's vmbus_open: a 4+4 page ring GPADL, then
    /// OPENCHANNEL. Returns the open status and the guest's channel.
    fn open(&mut self, relid: u32) -> (u32, GuestChannel) {
        let (status, ch) = self.open_ex(relid, 0xe1e10 + relid);
        assert_eq!(
            ch.as_ref().map(|c| c.gpadl),
            Some(0xe1e10 + relid),
            "GPADL refused"
        );
        (status, ch.expect("checked"))
    }

    /// [`Self::open`] with GPADL `handle`; no channel if the GPADL is refused
    /// (status is then the GPADL's).
    fn open_ex(&mut self, relid: u32, handle: u32) -> (u32, Option<GuestChannel>) {
        let pfns = self.pages(8);
        let ranges = [GpadlRange {
            byte_count: 8 * 4096,
            byte_offset: 0,
            pfns: &pfns,
        }];
        let created = self.gpadl(relid, handle, &ranges);
        if created != 0 {
            return (created, None);
        }
        self.send(&msg(&OpenChannel {
            child_relid: relid,
            openid: relid * 10,
            ringbuffer_gpadlhandle: handle,
            target_vp: 1,
            downstream_ringbuffer_pageoffset: 4,
            userdata: [0; 120],
        }));
        let r = self.replies();
        let Ok(Message::OpenResult(o)) = parse(&r[0].1) else {
            panic!("{r:?}")
        };
        assert_eq!((o.child_relid, o.openid), (relid, relid * 10));
        let mem: Arc<dyn GuestPages> = self.port.fake.clone();
        let gpas: Vec<u64> = pfns.iter().map(|p| p * 4096).collect();
        let ch = GuestChannel {
            relid,
            send: RingProducer::new(GuestRing::new(mem.clone(), gpas[0], gpas[1..4].to_vec()))
                .expect("send"),
            recv: RingConsumer::new(GuestRing::new(mem, gpas[4], gpas[5..].to_vec()))
                .expect("recv"),
            gpadl: handle,
        };
        (o.status, Some(ch))
    }

    /// The guest's side of one IC exchange: reads every host request and
    /// answers it as hv_util.c does (`answer` edits the message in place).
    fn guest_answers(&mut self, ch: &mut GuestChannel, answer: impl FnMut(&mut [u8])) -> usize {
        let n = Self::guest_writes_answers(ch, answer);
        self.server.handle_signal(ch.relid, self.now);
        n
    }

    /// What the guest read, answered in its send ring, without a signal.
    fn guest_writes_answers(ch: &mut GuestChannel, mut answer: impl FnMut(&mut [u8])) -> usize {
        let mut buf = vec![0u8; 16384];
        let mut n = 0;
        let mut answers = Vec::new();
        while let Some((p, _)) = ch
            .recv
            .read_and_commit(&mut buf)
            .expect("host ring is sane")
        {
            let mut data = p.data().to_vec();
            answer(&mut data);
            answers.push((p.desc.trans_id, data));
            n += 1;
        }
        for (t, d) in answers {
            let _ = ch
                .send
                .write_inband(t, PacketFlags::NONE, &d)
                .expect("room");
        }
        n
    }
}

/// hv_util.c's answer: negotiate picks the first version of each list;
/// heartbeat adds one; everything gets TRANSACTION | RESPONSE.
fn linux_ic_answer(data: &mut [u8]) {
    let t = u16::from_le_bytes([data[12], data[13]]);
    if t == IcMsgType::NEGOTIATE.0 {
        let n = IcNegotiate::read_from_prefix(&data[ICMSG_HDR..])
            .expect("negotiate")
            .0;
        let frame = IcVersion::read_from_prefix(&data[ICMSG_HDR + 8..])
            .expect("v")
            .0;
        let at = ICMSG_HDR + 8 + 4 * usize::from(n.icframe_vercnt);
        let message = IcVersion::read_from_prefix(&data[at..]).expect("v").0;
        data[ICMSG_HDR..ICMSG_HDR + 4].copy_from_slice(&[1, 0, 1, 0]);
        data[ICMSG_HDR + 8..ICMSG_HDR + 12].copy_from_slice(frame.as_bytes());
        data[ICMSG_HDR + 12..ICMSG_HDR + 16].copy_from_slice(message.as_bytes());
    } else if t == IcMsgType::HEARTBEAT.0 {
        let mut hb = HeartbeatMsg::read_from_prefix(&data[ICMSG_HDR..])
            .expect("hb")
            .0;
        hb.seq_num += 1;
        data[ICMSG_HDR..ICMSG_HDR + 40].copy_from_slice(hb.as_bytes());
    }
    data[8 + 17] = icflags::TRANSACTION | icflags::RESPONSE;
}

#[test]
fn version_negotiation_like_linux() {
    let mut r = rig();
    // Before any contact, other messages are dropped.
    r.send(&empty(MessageType::REQUESTOFFERS));
    assert!(r.replies().is_empty());
    // Linux proposes 6.0 first; a server that only knows 5.x refuses it.
    let mut old = rig_with(vec![Version::V5_3], Faults::default());
    old.send(&contact(Version::V6_0, 1));
    let rep = old.replies();
    let Ok(Message::VersionResponse(v)) = parse(&rep[0].1) else {
        panic!()
    };
    assert_eq!((rep[0].0, v.version_supported), (1, 0));
    assert_eq!(old.server.connection(), Connection::Disconnected);
    old.send(&contact(Version::V5_3, 1));
    let rep = old.replies();
    let Ok(Message::VersionResponse(v)) = parse(&rep[0].1) else {
        panic!()
    };
    assert_eq!((v.version_supported, v.msg_conn_id), (1, 1));
    // hvhost: 6.0 accepted, the answer goes to target_vcpu.
    r.send(&contact(Version::V6_0, 1));
    let rep = r.replies();
    assert_eq!(rep[0].0, 1);
    assert_eq!(rep[0].1.len(), 16);
    assert_eq!(
        r.server.connection(),
        Connection::Connected {
            version: Version::V6_0,
            vp: 1,
            msg_conn: MESSAGE_CONNECTION_ID,
            interrupt_page: None,
        }
    );
    // A target VP that does not exist is refused.
    let mut r = rig();
    r.send(&contact(Version::V6_0, 7));
    let Ok(Message::VersionResponse(v)) = parse(&r.replies()[0].1) else {
        panic!()
    };
    assert_eq!(v.version_supported, 0);
}

#[test]
fn every_served_version_as_linux_proposes_it() {
    // Linux (connection.c) proposes newest first and stops at the first
    // accepted: a server restricted to one version gets exactly that one.
    for &only in &Version::SERVED {
        let mut r = rig_with(vec![only], Faults::default());
        for v in Version::GUEST_PROPOSALS {
            let bytes = if v.contact_names_sint() {
                contact(v, 0)
            } else {
                contact_with_page(v, 0, 0x3000)
            };
            r.send(&bytes);
            let (vp, resp) = r.version_response();
            assert_eq!(vp, 0);
            if v != only {
                assert_eq!(
                    (resp.version_supported, resp.msg_conn_id),
                    (0, 0),
                    "{v} vs {only}"
                );
                assert_eq!(r.server.connection(), Connection::Disconnected);
                continue;
            }
            assert_eq!(resp.version_supported, 1, "{v}");
            // msg_conn_id names the message connection from 5.0; before,
            // the field is not read and stays 0.
            let expect_conn = if v.response_names_connection() { 1 } else { 0 };
            assert_eq!(resp.msg_conn_id, expect_conn, "{v}");
            assert_eq!(
                r.server.connection(),
                Connection::Connected {
                    version: v,
                    vp: 0,
                    msg_conn: MESSAGE_CONNECTION_ID,
                    interrupt_page: (!v.contact_names_sint()).then_some(0x3000),
                }
            );
            // The rest of the protocol works at that version.
            r.send(&empty(MessageType::REQUESTOFFERS));
            assert_eq!(
                r.types().last(),
                Some(&MessageType::ALLOFFERS_DELIVERED),
                "{v}"
            );
            break;
        }
    }
}

#[test]
fn a_guest_older_than_4_0_is_refused() {
    // Linux before 4.0 support would propose 3.0 (WIN8_1) and 2.4 (WIN8):
    // refused with a VERSION_RESPONSE each, no connection.
    let mut r = rig_with(Version::SERVED.to_vec(), Faults::default());
    for v in [
        Version(0x0003_0000),
        Version(0x0002_0004),
        Version(0),
        Version(u32::MAX),
    ] {
        r.send_on(MESSAGE_CONNECTION_ID, &contact_with_page(v, 0, 0x3000));
        let (_, resp) = r.version_response();
        assert_eq!(resp.version_supported, 0, "{v}");
        assert_eq!(r.server.connection(), Connection::Disconnected);
    }
    r.send(&empty(MessageType::REQUESTOFFERS));
    assert!(r.replies().is_empty());
    assert_eq!(r.server.stats().dropped, 1);
}

#[test]
fn contact_on_the_wrong_connection_or_with_a_bad_page_is_refused() {
    let mut r = rig_with(Version::SERVED.to_vec(), Faults::default());
    // 6.0 contacts on connection 4, 4.x on 1.
    r.send_on(MESSAGE_CONNECTION_ID, &contact(Version::V6_0, 0));
    assert_eq!(r.version_response().1.version_supported, 0);
    r.send_on(
        MESSAGE_CONNECTION_ID_4,
        &contact_with_page(Version::V4_1, 0, 0x3000),
    );
    assert_eq!(r.version_response().1.version_supported, 0);
    // Below 5.0 the interrupt page must be a page of guest RAM.
    for bad in [0, 0x3008, RAM as u64, !0xfff] {
        r.send(&contact_with_page(Version::WIN10, 0, bad));
        assert_eq!(r.version_response().1.version_supported, 0, "{bad:#x}");
        assert_eq!(r.server.connection(), Connection::Disconnected);
    }
    r.send(&contact_with_page(Version::WIN10, 0, 0x3000));
    assert_eq!(r.version_response().1.version_supported, 1);
}

#[test]
fn messages_on_another_connection_are_dropped() {
    let mut r = rig_with(Version::SERVED.to_vec(), Faults::default());
    r.send(&contact(Version::V6_0, 0));
    assert_eq!(r.version_response().1.msg_conn_id, MESSAGE_CONNECTION_ID);
    r.send_on(MESSAGE_CONNECTION_ID_4, &empty(MessageType::REQUESTOFFERS));
    assert!(r.replies().is_empty());
    assert_eq!(r.server.stats().dropped, 1);
    r.send(&empty(MessageType::REQUESTOFFERS));
    assert_eq!(r.types().last(), Some(&MessageType::ALLOFFERS_DELIVERED));
}

#[test]
fn offers_then_all_offers_delivered() {
    let mut r = rig();
    r.send(&contact(Version::V6_0, 0));
    r.replies();
    r.send(&empty(MessageType::REQUESTOFFERS));
    let rep = r.replies();
    assert_eq!(rep.len(), 4);
    let mut classes = Vec::new();
    for (i, (_, b)) in rep[..3].iter().enumerate() {
        assert_eq!(b.len(), 196);
        let Ok(Message::OfferChannel(o)) = parse(b) else {
            panic!()
        };
        assert_eq!(o.child_relid, i as u32 + 1);
        assert!(!o.monitor_allocated());
        assert!(o.is_dedicated_interrupt());
        assert_eq!(o.connection_id, CHANNEL_CONNECTION_BASE + o.child_relid);
        classes.push(o.offer.if_type);
    }
    assert_eq!(classes, vec![HEARTBEAT, SHUTDOWN, TIMESYNC]);
    assert_eq!(
        parse(&rep[3].1).expect("valid").msgtype(),
        MessageType::ALLOFFERS_DELIVERED
    );
}

#[test]
fn gpadl_multi_range_multi_body_and_validation() {
    let mut r = rig();
    r.connect();
    let a = r.pages(40);
    let b = r.pages(30);
    // Two ranges, 72 words: a header and two bodies.
    let ranges = [
        GpadlRange {
            byte_count: 40 * 4096 - 100,
            byte_offset: 100,
            pfns: &a,
        },
        GpadlRange {
            byte_count: 30 * 4096,
            byte_offset: 0,
            pfns: &b,
        },
    ];
    assert_eq!(r.gpadl(1, 0x100, &ranges), 0);
    assert_eq!(r.server.gpadl_count(), 1);
    // The same handle again, a PFN past RAM, an unknown relid: refused.
    assert_ne!(r.gpadl(1, 0x100, &ranges), 0);
    let bad = [5u64, (RAM as u64 / 4096) + 3];
    assert_ne!(
        r.gpadl(
            1,
            0x101,
            &[GpadlRange {
                byte_count: 8192,
                byte_offset: 0,
                pfns: &bad
            }]
        ),
        0
    );
    let huge = [u64::MAX / 2];
    assert_ne!(
        r.gpadl(
            1,
            0x102,
            &[GpadlRange {
                byte_count: 4096,
                byte_offset: 0,
                pfns: &huge
            }]
        ),
        0
    );
    assert_ne!(
        r.gpadl(
            99,
            0x103,
            &[GpadlRange {
                byte_count: 4096,
                byte_offset: 0,
                pfns: &a[..1]
            }]
        ),
        0
    );
    assert_eq!(r.server.gpadl_count(), 1);
    // Teardown is answered (also for a handle that does not exist).
    r.send(&msg(&GpadlTeardown {
        child_relid: 1,
        gpadl: 0x100,
    }));
    r.send(&msg(&GpadlTeardown {
        child_relid: 1,
        gpadl: 0x999,
    }));
    assert_eq!(
        r.types(),
        vec![MessageType::GPADL_TORNDOWN, MessageType::GPADL_TORNDOWN]
    );
    assert_eq!(r.server.gpadl_count(), 0);
    // Each refusal counted once, by kind: four GPADLs refused, one created
    // and torn down; dropped: the two bodies of the refused duplicate (its
    // header was refused) and the teardown of a GPADL that never was.
    let s = r.server.stats();
    assert_eq!((s.gpadls, s.gpadls_refused, s.gpadls_torn_down), (1, 4, 1));
    assert_eq!(s.dropped, 3);
}

#[test]
fn heartbeat_channel_open_negotiate_beat_close() {
    let mut r = rig();
    r.connect();
    let (status, mut ch) = r.open(1);
    assert_eq!(status, 0);
    assert!(r
        .port
        .events
        .lock()
        .expect("lock")
        .contains(&(CHANNEL_CONNECTION_BASE + 1)));
    // The host sent NEGOTIATE and set the relid flag on the target VP.
    assert_eq!(r.port.signals.lock().expect("lock").last(), Some(&(1, 1)));
    let mut seen = Vec::new();
    assert_eq!(
        r.guest_answers(&mut ch, |d| {
            seen.push(parse_message(d).expect("ic").header.icmsgtype);
            linux_ic_answer(d)
        }),
        1
    );
    assert_eq!(seen, vec![IcMsgType::NEGOTIATE]);
    // Negotiated: the first heartbeat goes out at once, then every second.
    let mut seqs = Vec::new();
    for _ in 0..3 {
        r.guest_answers(&mut ch, |d| {
            seqs.push(
                HeartbeatMsg::read_from_prefix(&d[ICMSG_HDR..])
                    .expect("hb")
                    .0
                    .seq_num,
            );
            linux_ic_answer(d)
        });
        r.now += Duration::from_secs(1);
        r.server.poll(r.now);
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(r.heartbeats.load(Ordering::SeqCst), 3);
    r.send(&msg(&CloseChannel { child_relid: 1 }));
    assert!(!r.server.is_open(1));
    assert!(r.port.events.lock().expect("lock").is_empty());
    r.send(&msg(&GpadlTeardown {
        child_relid: 1,
        gpadl: ch.gpadl,
    }));
    assert_eq!(r.types(), vec![MessageType::GPADL_TORNDOWN]);
    // Reopen works.
    let (status, _) = r.open(1);
    assert_eq!(status, 0);
    let s = r.server.stats();
    assert_eq!((s.contacts, s.offers, s.opens, s.closes), (1, 3, 2, 1));
    assert_eq!(
        (s.gpadls, s.gpadls_torn_down, s.dropped, s.faults),
        (2, 1, 0, 0)
    );
    // The report: the connection and totals, then each device with its
    // life's counters and its own (three heartbeats answered).
    let report = r.server.report("heartbeats=3");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 4, "{report}");
    assert!(lines[0]
        .starts_with("vmbus version=6.0 interrupt_page=none channels=3 gpadls_live=1 messages="));
    assert!(
        lines[0].contains(" opens=2 opens_refused=0 closes=1 "),
        "{report}"
    );
    assert!(lines[0].ends_with(" heartbeats=3"), "{report}");
    assert_eq!(
        lines[1],
        "channel relid=1 name=heartbeat sub_channel=0 state=open opens=2 closes=1 faults=0 guest_signals=4 \
         guest_interrupts=6 ring_to_host=12288 ring_to_guest=12288 beats=3"
    );
    assert!(
        lines[2].starts_with("channel relid=2 name=shutdown sub_channel=0 state=offered opens=0 ")
    );
    assert!(lines[2].ends_with(" accepted=0 refused=0"), "{report}");
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').skip(1).collect();
        assert!(
            fields.iter().all(|f| f
                .split_once('=')
                .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())),
            "{line}"
        );
    }
}

#[test]
fn unloads_are_counted_clean_or_not() {
    let mut r = rig();
    r.connect();
    r.send(&empty(MessageType::UNLOAD));
    r.replies();
    r.connect();
    r.open(1);
    r.send(&empty(MessageType::UNLOAD));
    let s = r.server.stats();
    assert_eq!((s.unloads, s.unloads_clean, s.closes), (2, 1, 1));
}

#[test]
fn shutdown_request_waits_for_the_channel() {
    let mut r = rig();
    // No VMBus connection: nothing can reach the guest, nothing is kept.
    assert_eq!(
        r.server.command(DeviceCommand::Shutdown, r.now),
        Err(CommandError::NotConnected)
    );
    r.connect();
    // Connected, channel not open: kept for when it opens.
    assert_eq!(
        r.server.command(DeviceCommand::Shutdown, r.now),
        Ok(CommandState::Queued)
    );
    let (_, mut ch) = r.open(2);
    r.guest_answers(&mut ch, linux_ic_answer);
    assert!(r.shutdown_ready.load(Ordering::SeqCst));
    let mut got = None;
    r.guest_answers(&mut ch, |d| {
        let m = parse_message(d).expect("ic");
        assert_eq!(m.header.icmsgtype, IcMsgType::SHUTDOWN);
        assert_eq!(m.header.icvermsg, IcVersion::new(3, 2));
        got = Some(m.body_as::<ShutdownMsg>().expect("body").flags);
        linux_ic_answer(d)
    });
    assert_eq!(got, Some(shutdown_flags::SHUTDOWN));
    // Once only.
    r.now += Duration::from_secs(10);
    r.server.poll(r.now);
    assert_eq!(r.guest_answers(&mut ch, linux_ic_answer), 0);
    // With the channel ready, a new request goes out at once.
    assert_eq!(
        r.server.command(DeviceCommand::Shutdown, r.now),
        Ok(CommandState::Ready)
    );
    assert_eq!(r.guest_answers(&mut ch, linux_ic_answer), 1);
    // After UNLOAD the guest has no connection again.
    r.send(&empty(MessageType::UNLOAD));
    assert_eq!(
        r.server.command(DeviceCommand::Shutdown, r.now),
        Err(CommandError::NotConnected)
    );
}

#[test]
fn timesync_sends_sync_then_samples_with_reference_time() {
    let mut r = rig();
    r.connect();
    let (_, mut ch) = r.open(3);
    r.guest_answers(&mut ch, linux_ic_answer);
    let mut flags = Vec::new();
    for _ in 0..2 {
        r.guest_answers(&mut ch, |d| {
            let m = parse_message(d).expect("ic");
            let t = m.body_as::<TimesyncRefMsg>().expect("v4 sample");
            assert_eq!({ t.vmreferencetime }, 12345);
            assert!({ t.parenttime } > vmbus::ic::WLTIMEDELTA);
            flags.push(t.flags);
            linux_ic_answer(d)
        });
        r.now += Duration::from_secs(5);
        r.server.poll(r.now);
    }
    assert_eq!(flags, vec![1, 2]);
}

#[test]
fn open_refusals() {
    let mut r = rig();
    r.connect();
    let pfns = r.pages(8);
    let ranges = [GpadlRange {
        byte_count: 8 * 4096,
        byte_offset: 0,
        pfns: &pfns,
    }];
    assert_eq!(r.gpadl(1, 7, &ranges), 0);
    let open = |relid, gpadl, vp, off| OpenChannel {
        child_relid: relid,
        openid: 1,
        ringbuffer_gpadlhandle: gpadl,
        target_vp: vp,
        downstream_ringbuffer_pageoffset: off,
        userdata: [0; 120],
    };
    for bad in [
        open(2, 7, 0, 4),
        open(1, 8, 0, 4),
        open(1, 7, 5, 4),
        open(1, 7, 0, 1),
        open(1, 7, 0, 7),
        open(9, 7, 0, 4),
    ] {
        r.send(&msg(&bad));
        let Ok(Message::OpenResult(o)) = parse(&r.replies()[0].1) else {
            panic!()
        };
        assert_ne!(o.status, 0, "{bad:?}");
    }
    r.send(&msg(&open(1, 7, 0, 4)));
    let Ok(Message::OpenResult(o)) = parse(&r.replies()[0].1) else {
        panic!()
    };
    assert_eq!(o.status, 0);
    // Opening twice is refused; the open channel stays.
    r.send(&msg(&open(1, 7, 0, 4)));
    let Ok(Message::OpenResult(o)) = parse(&r.replies()[0].1) else {
        panic!()
    };
    assert_ne!(o.status, 0);
    assert!(r.server.is_open(1));
    // MODIFYCHANNEL at 6.0 is answered.
    r.send(&msg(&ModifyChannel {
        child_relid: 1,
        target_vp: 1,
    }));
    r.send(&msg(&ModifyChannel {
        child_relid: 1,
        target_vp: 9,
    }));
    let rep = r.replies();
    let st: Vec<u32> = rep
        .iter()
        .filter_map(|(_, b)| match parse(b) {
            Ok(Message::ModifyChannelResponse(m)) => Some(m.status),
            _ => None,
        })
        .collect();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0], 0);
    assert_ne!(st[1], 0);
}

#[test]
fn shared_interrupt_channels_below_5_0() {
    const PAGE: u64 = 0x3000;
    let send_half = PAGE + vmbus::message::INTERRUPT_PAGE_SEND_OFFSET as u64;
    let mut r = rig_with(Version::SERVED.to_vec(), Faults::default());
    r.server.set_shared_interrupts(true);
    r.send(&contact_with_page(Version::WIN10, 0, PAGE));
    assert_eq!(r.version_response().1.version_supported, 1);
    r.send(&empty(MessageType::REQUESTOFFERS));
    let offers: Vec<_> = r
        .replies()
        .iter()
        .filter_map(|(_, b)| match parse(b) {
            Ok(Message::OfferChannel(o)) => Some((o.interrupt_flags, o.connection_id)),
            _ => None,
        })
        .collect();
    assert_eq!(offers, vec![(0, SHARED_EVENT_CONNECTION); 3]);
    // The shutdown channel (relid 2) opens; its events share connection 2.
    let (_, mut ch) = r.open(2);
    assert!(r
        .port
        .events
        .lock()
        .expect("lock")
        .contains(&SHARED_EVENT_CONNECTION));
    // The guest answers the IC negotiation but signals without setting its
    // bit: the host cannot tell which channel, so nothing is read.
    assert_eq!(Rig::guest_writes_answers(&mut ch, linux_ic_answer), 1);
    r.server.handle_signal(SHARED_SIGNAL, r.now);
    assert!(!r.shutdown_ready.load(Ordering::SeqCst));
    // With relid 2's bit set (vmbus_set_event), the answer is read and the
    // bit taken.
    r.port.fake.fetch_or_u32(send_half, 1 << 2).expect("ram");
    r.server.handle_signal(SHARED_SIGNAL, r.now);
    assert!(r.shutdown_ready.load(Ordering::SeqCst));
    assert_eq!(r.port.fake.load_u32(send_half).expect("ram"), 0);
    // A bit of a relid that is not an open shared channel is dropped.
    let dropped = r.server.stats().dropped;
    r.port
        .fake
        .fetch_or_u32(send_half + 4, 1 << 3)
        .expect("ram"); // relid 35
    r.server.handle_signal(SHARED_SIGNAL, r.now);
    assert_eq!(r.server.stats().dropped, dropped + 1);
    // Closing the last shared channel gives connection 2 up.
    r.send(&msg(&CloseChannel { child_relid: 2 }));
    assert!(!r
        .port
        .events
        .lock()
        .expect("lock")
        .contains(&SHARED_EVENT_CONNECTION));
    // From 5.0 there is no interrupt page: dedicated interrupts again.
    let mut r = rig_with(Version::SERVED.to_vec(), Faults::default());
    r.server.set_shared_interrupts(true);
    r.send(&contact(Version::V5_0, 0));
    assert_eq!(r.version_response().1.version_supported, 1);
    r.send(&empty(MessageType::REQUESTOFFERS));
    assert!(r.replies().iter().all(|(_, b)| match parse(b) {
        Ok(Message::OfferChannel(o)) =>
            o.interrupt_flags == 1 && o.connection_id >= CHANNEL_CONNECTION_BASE,
        _ => true,
    }));
}

#[test]
fn modify_channel_follows_the_version() {
    // channel.c: none before 4.1; sent without an answer before 5.3.
    for (v, applied, answered) in [
        (Version::WIN10, false, false),
        (Version::V4_1, true, false),
        (Version::V5_2, true, false),
        (Version::V5_3, true, true),
        (Version::V6_0, true, true),
    ] {
        let mut r = rig_with(vec![v], Faults::default());
        r.connect_at(v);
        r.open(1);
        let dropped = r.server.stats().dropped;
        r.send(&msg(&ModifyChannel {
            child_relid: 1,
            target_vp: 1,
        }));
        let answers = r
            .replies()
            .iter()
            .filter(|(_, b)| matches!(parse(b), Ok(Message::ModifyChannelResponse(_))))
            .count();
        assert_eq!(answers, usize::from(answered), "{v}");
        assert_eq!(
            r.server.stats().dropped - dropped,
            u64::from(!applied),
            "{v}"
        );
    }
}

#[test]
fn corrupt_ring_closes_only_that_channel() {
    let mut r = rig();
    r.connect();
    let (_, hb) = r.open(1);
    let (_, mut ts) = r.open(3);
    // The guest scribbles over its send ring's write index.
    hb.send
        .memory()
        .store_release(HeaderField::WriteIndex, 0xdead_beef);
    r.server.handle_signal(1, r.now);
    assert!(!r.server.is_open(1));
    assert_eq!(r.server.stats().faults, 1);
    // The guest, not told, closes it as its driver lets go: expected once.
    let dropped = r.server.stats().dropped;
    r.send(&msg(&CloseChannel { child_relid: 1 }));
    assert_eq!(r.server.stats().dropped, dropped);
    r.send(&msg(&CloseChannel { child_relid: 1 }));
    assert_eq!(r.server.stats().dropped, dropped + 1);
    // Timesync still works.
    assert_eq!(r.guest_answers(&mut ts, linux_ic_answer), 1);
    assert!(r.server.is_open(3));
    // A packet whose length runs past what was published.
    let (_, _) = (hb.relid, hb.gpadl);
    let mut bogus = [0u8; 32];
    bogus[4..6].copy_from_slice(&200u16.to_le_bytes());
    let _ = ts.send.write_raw(&[&bogus]);
    r.server.handle_signal(3, r.now);
    assert!(!r.server.is_open(3));
}

#[test]
fn rescind_and_relid_released() {
    let mut r = rig();
    r.connect();
    let (_, _ch) = r.open(1);
    assert_eq!(r.server.remove_device(1), Ok(Removal::Rescinded));
    assert!(!r.server.is_open(1));
    assert_eq!(r.types(), vec![MessageType::RESCIND_CHANNELOFFER]);
    assert_eq!(
        r.server.remove_device(1),
        Err(RemoveError::AlreadyRescinded(1))
    );
    assert_eq!(
        r.server.remove_device(99),
        Err(RemoveError::NoSuchRelid(99))
    );
    let states: Vec<_> = r.server.devices().iter().map(|d| d.state).collect();
    assert_eq!(states, vec!["rescinded", "offered", "offered"]);
    assert_eq!(r.server.find_device("heartbeat"), None);
    // What Linux's driver and hv_guest do as they unbind: close, tear the
    // ring GPADL down, release the relid. None of it is an error.
    r.send(&msg(&CloseChannel { child_relid: 1 }));
    assert!(r.types().is_empty());
    assert_eq!(r.server.gpadl_count(), 1);
    r.send(&msg(&GpadlTeardown {
        child_relid: 1,
        gpadl: 0xe1e10 + 1,
    }));
    assert_eq!(r.types(), vec![MessageType::GPADL_TORNDOWN]);
    assert_eq!(r.server.gpadl_count(), 0);
    // Opening a rescinded channel is refused.
    let (status, _) = r.open_ex(1, 0xbad);
    assert_ne!(status, 0);
    r.send(&msg(&RelidReleased { child_relid: 1 }));
    assert_eq!(r.server.gpadl_count(), 0);
    assert_eq!(r.server.devices().len(), 2);
    let dropped = r.server.stats().dropped;
    r.send(&msg(&RelidReleased { child_relid: 1 }));
    assert_eq!(r.server.stats().dropped, dropped + 1);
    // A device added while connected is offered at once, on a new relid,
    // and works.
    let relid = r
        .server
        .add_device(Box::new(IcDevice::new(Heartbeat::new(
            Duration::from_secs(1),
            r.heartbeats.clone(),
        ))))
        .expect("relid");
    assert_eq!(relid, 4);
    assert_eq!(r.server.find_device("heartbeat"), Some(4));
    assert_eq!(r.types(), vec![MessageType::OFFERCHANNEL]);
    let (status, mut hb) = r.open(4);
    assert_eq!(status, 0);
    assert_eq!(r.guest_answers(&mut hb, linux_ic_answer), 1, "negotiation");
    // Offers after a reconnect no longer include the removed one.
    r.send(&empty(MessageType::UNLOAD));
    assert_eq!(r.types(), vec![MessageType::UNLOAD_RESPONSE]);
    r.send(&contact(Version::V6_0, 0));
    r.replies();
    r.send(&empty(MessageType::REQUESTOFFERS));
    assert_eq!(r.types().len(), 4);
    let s = r.server.stats();
    // The open of the rescinded channel failed at its GPADL.
    assert_eq!((s.rescinds, s.releases, s.gpadls_refused), (1, 1, 1));
}

#[test]
fn removing_a_device_the_guest_never_saw_needs_no_rescind() {
    let mut r = rig();
    assert_eq!(r.server.remove_device(2), Ok(Removal::Removed));
    assert!(r.types().is_empty());
    r.connect();
    let names: Vec<_> = r.server.devices().iter().map(|d| d.name).collect();
    assert_eq!(names, vec!["heartbeat", "timesync"]);
}

#[test]
fn unload_closes_everything() {
    let mut r = rig();
    r.connect();
    let (_, _a) = r.open(1);
    let (_, _b) = r.open(2);
    r.send(&empty(MessageType::UNLOAD));
    assert_eq!(r.types(), vec![MessageType::UNLOAD_RESPONSE]);
    assert!(!r.server.is_open(1) && !r.server.is_open(2));
    assert_eq!(r.server.gpadl_count(), 0);
    assert!(r.port.events.lock().expect("lock").is_empty());
    assert_eq!(r.server.connection(), Connection::Disconnected);
    // And connecting again works as the first time.
    r.connect();
    let (status, _) = r.open(1);
    assert_eq!(status, 0);
}

#[test]
fn fault_injection_breaks_the_protocol_on_purpose() {
    let mut r = rig_with(
        vec![Version::V6_0],
        Faults {
            malformed_offer: true,
            bogus_gpadl_reply: true,
            corrupt_ring: true,
        },
    );
    r.send(&contact(Version::V6_0, 0));
    r.replies();
    r.send(&empty(MessageType::REQUESTOFFERS));
    let rep = r.replies();
    assert!(parse(&rep[0].1).is_err(), "the first offer is truncated");
    let pfns = r.pages(8);
    let ranges = [GpadlRange {
        byte_count: 8 * 4096,
        byte_offset: 0,
        pfns: &pfns,
    }];
    let mut s = GpadlSplitter::new(1, 5, &ranges).expect("valid");
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let n = s.next_message(&mut buf).expect("one").expect("fits");
    r.send(&buf[..n]);
    let handles: Vec<u32> = r
        .replies()
        .iter()
        .filter_map(|(_, b)| match parse(b) {
            Ok(Message::GpadlCreated(c)) => Some(c.gpadl),
            _ => None,
        })
        .collect();
    assert_eq!(handles, vec![5 ^ 0x8000_0000, 5]);
    r.send(&msg(&OpenChannel {
        child_relid: 1,
        openid: 1,
        ringbuffer_gpadlhandle: 5,
        target_vp: 0,
        downstream_ringbuffer_pageoffset: 4,
        userdata: [0; 120],
    }));
    let mem: Arc<dyn GuestPages> = r.port.fake.clone();
    let gpas: Vec<u64> = pfns.iter().map(|p| p * 4096).collect();
    let mut recv =
        RingConsumer::new(GuestRing::new(mem, gpas[4], gpas[5..].to_vec())).expect("ring");
    assert!(
        recv.read_packet(&mut [0u8; 4096]).is_err(),
        "the write index is corrupt"
    );
}

#[test]
fn full_synic_queue_delays_messages_in_order_and_loses_none() {
    let mut r = rig();
    r.port.full.store(true, Ordering::SeqCst);
    r.send(&contact(Version::V6_0, 0));
    assert!(r.replies().is_empty());
    // The server tries again soon.
    let next = r.server.poll(r.now).expect("a retry is due");
    assert!(next <= r.now + Duration::from_millis(1));
    r.server.poll(r.now);
    assert!(r.replies().is_empty());
    r.port.full.store(false, Ordering::SeqCst);
    // The next send delivers the backlog first, then its own.
    r.send(&empty(MessageType::REQUESTOFFERS));
    let t = r.types();
    assert_eq!(t.len(), 5, "{t:?}");
    assert_eq!(t[0], MessageType::VERSION_RESPONSE);
    assert_eq!(t[4], MessageType::ALLOFFERS_DELIVERED);
    // A backlog left when the guest stops reading goes from poll().
    r.port.full.store(true, Ordering::SeqCst);
    assert_eq!(r.server.remove_device(1), Ok(Removal::Rescinded));
    r.port.full.store(false, Ordering::SeqCst);
    r.server.poll(r.now);
    assert_eq!(r.types(), vec![MessageType::RESCIND_CHANNELOFFER]);
    let s = r.server.stats();
    assert_eq!((s.backlogged, s.lost), (2, 0));
}

proptest! {
    // Each case boots a whole connection; fewer cases keep the suite quick.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Arbitrary bytes as messages, after a valid connect, never panic and
    /// leave the server answering.
    #[test]
    fn hostile_messages_never_panic(msgs in proptest::collection::vec(
        (0u32..26, proptest::collection::vec(any::<u8>(), 0..240)), 0..60)) {
        let mut r = rig();
        r.connect();
        let (_, _ch) = r.open(1);
        for (t, mut body) in msgs {
            if body.len() >= 8 {
                body[..4].copy_from_slice(&t.to_le_bytes());
                // Aim relids and handles at real ones now and then.
                if body.len() >= 12 && t % 3 == 0 {
                    body[8..12].copy_from_slice(&1u32.to_le_bytes());
                }
            }
            r.server.handle_message(0, 1, &body, r.now);
            r.server.handle_signal(body.len() as u32 % 4, r.now);
            r.now += Duration::from_millis(300);
            r.server.poll(r.now);
        }
        r.replies();
        r.send(&contact(Version::V6_0, 0));
        prop_assert!(!r.replies().is_empty());
    }

    /// Garbage in a channel's ring closes that channel at worst.
    #[test]
    fn hostile_rings_never_panic(words in proptest::collection::vec(any::<u32>(), 1..64), idx in any::<u32>()) {
        let mut r = rig();
        r.connect();
        let (_, ch) = r.open(1);
        let data = words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        ch.send.memory().write_data(0, &data[..data.len().min(4096 * 3)]);
        ch.send.memory().store_release(HeaderField::WriteIndex, idx);
        r.server.handle_signal(1, r.now);
        r.now += Duration::from_secs(2);
        r.server.poll(r.now);
    }
}

/// A device that counts packets and, if asked, answers each with a packet
/// (which signals the guest, as a completion would).
struct CountingDevice {
    packets: usize,
    notify: bool,
}

impl VmbusDevice for CountingDevice {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn class_id(&self) -> vmbus::guid::Guid {
        HEARTBEAT
    }
    fn instance_id(&self) -> vmbus::guid::Guid {
        HEARTBEAT
    }
    fn open(&mut self, _io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        Ok(())
    }
    fn packet(
        &mut self,
        io: &mut ChannelIo<'_>,
        _p: &vmbus::packet::Packet<'_>,
    ) -> Result<(), DeviceError> {
        self.packets += 1;
        if self.notify {
            io.send_inband(self.packets as u64, &[0; 8])?;
        }
        Ok(())
    }
    fn poll(&mut self, _io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        Ok(None)
    }
    fn close(&mut self) {}
}

/// Rings over fake memory (4 + 4 pages) and the guest's producer of the
/// inbound ring; the one VP is `vp` (none: it cannot be read).
fn poll_rings(vp: Option<Arc<ScriptedVp>>) -> (ChannelRings, RingProducer<GuestRing>) {
    let fake = Arc::new(FakeMemory::new(64 * 4096));
    let mem: Arc<dyn GuestPages> = fake;
    let pfns: Vec<u64> = (8..16).collect();
    let port = FakePort::new(1);
    *port.vcpu.lock().expect("lock") = vp;
    let waker = ChannelWaker::new(port, 1);
    let rings = ChannelRings::new(&mem, &pfns, 4, waker).expect("rings");
    let gpas: Vec<u64> = pfns.iter().map(|p| p * 4096).collect();
    let send = RingProducer::new(GuestRing::new(mem, gpas[0], gpas[1..4].to_vec())).expect("send");
    (rings, send)
}

fn counting(notify: bool) -> CountingDevice {
    CountingDevice { packets: 0, notify }
}

/// Drains one packet while a second comes from another thread once `ready`
/// says so (after `delay`); whether the guest had to signal the second.
fn second_packet_needs_signal(
    rings: &mut ChannelRings,
    mut send: RingProducer<GuestRing>,
    delay: Duration,
    ready: impl FnOnce() + Send + 'static,
) -> (super::channel::Outcome, bool) {
    assert!(send
        .write_inband(1, PacketFlags::NONE, &[1; 64])
        .expect("room"));
    let writer = std::thread::spawn(move || {
        std::thread::sleep(delay);
        let signal = send
            .write_inband(2, PacketFlags::NONE, &[2; 64])
            .expect("room");
        ready();
        signal
    });
    let mut dev = counting(false);
    let out = rings
        .drain(&mut dev, Instant::now(), 0, 16, &mut || {})
        .expect("drain");
    let signal = writer.join().expect("writer");
    // Whatever the drain decided, both packets were taken: the second by
    // the look or by the read after unmasking, or it waits for its signal.
    if !signal {
        assert_eq!(
            dev.packets, 2,
            "a packet written into a masked ring was stranded"
        );
    }
    (out, signal)
}

/// Drains a lone packet with a device that owes the guest nothing; checks
/// that the drain unmasked when it was over (the guest's next packet asks
/// for a signal).
fn drain_lone_packet(
    rings: &mut ChannelRings,
    send: &mut RingProducer<GuestRing>,
) -> super::channel::Outcome {
    assert!(send
        .write_inband(1, PacketFlags::NONE, &[1; 64])
        .expect("room"));
    let mut dev = counting(false);
    let out = rings
        .drain(&mut dev, Instant::now(), 0, 16, &mut || {})
        .expect("drain");
    assert!(
        send.write_inband(2, PacketFlags::NONE, &[2; 64])
            .expect("room"),
        "left masked"
    );
    out
}

#[test]
fn a_vp_that_runs_has_its_budget_whatever_the_clock_says() {
    use super::channel::POLL_BUDGET_NS;
    // The VP runs 1 µs per reading: the budget lasts POLL_BUDGET_NS
    // readings at least, and readings stop when the packet comes.
    let vp = ScriptedVp::new(false, 1_000);
    let (mut rings, send) = poll_rings(Some(vp.clone()));
    rings.set_poll_budget(u64::MAX);
    // After its second packet the VP halts: that ends the second look.
    let halt = {
        let vp = vp.clone();
        move || vp.halted.store(true, Ordering::SeqCst)
    };
    let (out, signal) =
        second_packet_needs_signal(&mut rings, send, Duration::from_millis(20), halt);
    assert!(!signal, "the guest had to signal the second packet");
    assert_eq!((out.packets, out.looks, out.looks_found), (2, 2, 1));
    assert!(!out.more);
    // With the real budget, a VP that runs and never writes ends the look
    // after POLL_BUDGET_NS of its own run time.
    let vp = ScriptedVp::new(false, 1_000);
    let (mut rings, mut send) = poll_rings(Some(vp.clone()));
    let out = drain_lone_packet(&mut rings, &mut send);
    assert_eq!((out.looks, out.looks_found), (1, 0));
    let readings = vp.readings.load(Ordering::SeqCst);
    assert!(
        (POLL_BUDGET_NS / 1_000..POLL_BUDGET_NS / 1_000 + 4).contains(&readings),
        "{readings} readings for a budget of {} ticks",
        POLL_BUDGET_NS / 1_000
    );
}

#[test]
fn a_vp_the_host_does_not_run_uses_none_of_its_budget() {
    // Not halted, not running (a descheduled vCPU thread): 50 ms pass with
    // no run time, far past any poll window of wall-clock time, and the
    // drain still takes the packet it then writes without a signal.
    let vp = ScriptedVp::new(false, 0);
    let (mut rings, send) = poll_rings(Some(vp.clone()));
    let run = {
        let vp = vp.clone();
        move || vp.tick_ns.store(1_000, Ordering::SeqCst)
    };
    let (out, signal) =
        second_packet_needs_signal(&mut rings, send, Duration::from_millis(50), run);
    assert!(!signal, "the guest had to signal the second packet");
    assert_eq!((out.packets, out.looks, out.looks_found), (2, 2, 1));
}

#[test]
fn a_vp_that_halts_ends_the_look_at_once() {
    // Running, no run time, then halting 30 ms in: the look ends and the
    // drain unmasks; the next packet needs a signal.
    let vp = ScriptedVp::new(false, 0);
    let (mut rings, mut send) = poll_rings(Some(vp.clone()));
    let halter = {
        let vp = vp.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            vp.halted.store(true, Ordering::SeqCst);
        })
    };
    let out = drain_lone_packet(&mut rings, &mut send);
    halter.join().expect("halter");
    assert_eq!((out.packets, out.looks, out.looks_found), (1, 1, 0));
    // Halted from the start: one reading each at the look's start and end.
    let vp = ScriptedVp::new(true, 0);
    let (mut rings, mut send) = poll_rings(Some(vp.clone()));
    let out = drain_lone_packet(&mut rings, &mut send);
    assert_eq!((out.looks, out.looks_found), (1, 0));
    assert_eq!(vp.readings.load(Ordering::SeqCst), 2);
}

#[test]
fn without_readings_of_the_vps_the_drain_does_not_look() {
    let (mut rings, mut send) = poll_rings(None);
    let out = drain_lone_packet(&mut rings, &mut send);
    assert_eq!((out.packets, out.looks, out.looks_found), (1, 1, 0));
}

#[test]
fn a_signal_the_guest_waits_for_goes_out_before_the_look() {
    // The device completes each packet: the guest waits for that signal.
    // The drain sends it before it looks (the VP it wakes is the one that
    // writes next), while the VP still reads as asleep; the look that
    // follows sees it asleep and ends.
    let vp = ScriptedVp::new(true, 0);
    let (mut rings, mut send) = poll_rings(Some(vp.clone()));
    assert!(send
        .write_inband(1, PacketFlags::NONE, &[1; 64])
        .expect("room"));
    let mut dev = counting(true);
    let mut signals = Vec::new();
    let out = rings
        .drain(&mut dev, Instant::now(), 0, 16, &mut || {
            signals.push(vp.readings.load(Ordering::SeqCst))
        })
        .expect("drain");
    assert_eq!(signals, [0], "one signal, before the look read the VP");
    assert!(!out.signal_guest, "sent already");
    assert_eq!(
        (out.packets, out.packets_sent, out.signals_early),
        (1, 1, 1)
    );
    assert_eq!((out.looks, out.looks_found), (1, 0));
    // The VP it wakes writes the next request inside the look: no signal
    // from the guest. (Its completion lands behind the first, which this
    // guest does not read: that needs no second signal.)
    vp.halted.store(false, Ordering::SeqCst);
    let (mut rings, send) = poll_rings(Some(vp.clone()));
    let halt = {
        let vp = vp.clone();
        move || vp.halted.store(true, Ordering::SeqCst)
    };
    let mut dev = counting(true);
    let signals = std::sync::atomic::AtomicU64::new(0);
    assert!(
        {
            let mut send = send;
            assert!(send
                .write_inband(1, PacketFlags::NONE, &[1; 64])
                .expect("room"));
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                let signal = send
                    .write_inband(2, PacketFlags::NONE, &[2; 64])
                    .expect("room");
                halt();
                signal
            });
            let out = rings
                .drain(&mut dev, Instant::now(), 0, 16, &mut || {
                    signals.fetch_add(1, Ordering::SeqCst);
                })
                .expect("drain");
            assert_eq!((out.packets, out.signals_early, out.looks_found), (2, 1, 1));
            !writer.join().expect("writer")
        },
        "the guest had to signal its second request"
    );
    assert_eq!(signals.load(Ordering::SeqCst), 1);
}

/// A device that writes 1 KiB packets to the guest while they fit, then
/// waits for room for the next.
struct FillingDevice {
    written: u64,
}

impl VmbusDevice for FillingDevice {
    fn name(&self) -> &'static str {
        "filling"
    }
    fn class_id(&self) -> vmbus::guid::Guid {
        vmbus::guid::Guid::ZERO
    }
    fn instance_id(&self) -> vmbus::guid::Guid {
        vmbus::guid::Guid::ZERO
    }
    fn open(&mut self, _io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        Ok(())
    }
    fn packet(
        &mut self,
        _io: &mut ChannelIo<'_>,
        _p: &vmbus::packet::Packet<'_>,
    ) -> Result<(), DeviceError> {
        Ok(())
    }
    fn poll(&mut self, io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        io.room_is_enough();
        let need = RingProducer::<GuestRing>::space_needed(1024 + 16);
        loop {
            if io.outbound_free()? > need {
                io.send_inband(self.written, &[7; 1024])?;
                self.written += 1;
            } else if !io.wait_for_room(need)? {
                return Ok(None);
            }
        }
    }
    fn close(&mut self) {}
}

/// The guest's consumer of the outbound ring of [`poll_rings`]' rings.
fn guest_receiver(rings_mem: &Arc<dyn GuestPages>) -> RingConsumer<GuestRing> {
    let gpas: Vec<u64> = (12..16).map(|p| p * 4096).collect();
    RingConsumer::new(GuestRing::new(
        rings_mem.clone(),
        gpas[0],
        gpas[1..].to_vec(),
    ))
    .expect("recv")
}

#[test]
fn a_device_waiting_for_room_gets_it_while_the_guest_reads() {
    // The guest reads two packets once hvhost looks (it reads the VP)
    // while its VP runs without run time: hvhost looks for the room with
    // pending_send_sz withdrawn, so the guest's read asks for no signal,
    // and the device writes on. The two are freed by one commit: freed one
    // at a time, the second could come during the second look or after
    // it, and the looks would count differently from run to run.
    let vp = ScriptedVp::new(false, 0);
    let (mut rings, _send) = poll_rings(Some(vp.clone()));
    let mem = rings.memory().clone();
    let mut recv = guest_receiver(&mem);
    let reader = {
        let vp = vp.clone();
        std::thread::spawn(move || {
            while vp.readings.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            let mut buf = vec![0; 4096];
            for _ in 0..2 {
                recv.read_packet(&mut buf).expect("read").expect("a packet");
            }
            let signal = recv.commit().expect("commit");
            vp.halted.store(true, Ordering::SeqCst);
            (signal, recv)
        })
    };
    let mut dev = FillingDevice { written: 0 };
    let mut out = super::channel::Outcome::default();
    let mut signals = 0;
    rings
        .poll_device(&mut dev, Instant::now(), 0, &mut || signals += 1, &mut out)
        .expect("poll");
    let (guest_signalled, mut recv) = reader.join().expect("reader");
    assert!(!guest_signalled, "the guest had to signal for the room");
    assert_eq!((out.room_looks, out.room_looks_found), (2, 1));
    assert_eq!(
        signals, 1,
        "the first packets were signalled before the look"
    );
    let full = dev.written;
    assert!(
        full >= 12,
        "{full} packets: the ring holds about 11, then 2 more"
    );
    // The second look ended (the VP halted) and the device's request
    // stands again: the guest's next reads that free the room signal.
    let mut buf = vec![0; 4096];
    let mut signal = false;
    while recv.read_packet(&mut buf).expect("read").is_some() {
        signal |= recv.commit().expect("commit");
    }
    assert!(signal, "no signal for the room the device waits for");
}

#[test]
fn a_device_waiting_for_room_polls_at_most_room_polls_times() {
    use super::channel::ROOM_POLLS;
    // The guest frees room at every look at once (a reader thread that
    // drains the ring as fast as it can): the call still ends.
    let vp = ScriptedVp::new(false, 0);
    let (mut rings, _send) = poll_rings(Some(vp.clone()));
    let mem = rings.memory().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let mut recv = guest_receiver(&mem);
        std::thread::spawn(move || {
            let mut buf = vec![0; 4096];
            while !stop.load(Ordering::SeqCst) {
                while recv.read_packet(&mut buf).expect("read").is_some() {
                    let _ = recv.commit().expect("commit");
                }
            }
        })
    };
    let mut dev = FillingDevice { written: 0 };
    let mut out = super::channel::Outcome::default();
    rings
        .poll_device(&mut dev, Instant::now(), 0, &mut || {}, &mut out)
        .expect("poll");
    stop.store(true, Ordering::SeqCst);
    reader.join().expect("reader");
    assert_eq!(out.room_looks, ROOM_POLLS as u64 - 1);
    assert_eq!(out.room_looks_found, ROOM_POLLS as u64 - 1);
}

#[test]
fn the_look_rule_per_vp() {
    use super::channel::vp_has_had_its_chance as over;
    let at = |halted, run_ns| {
        Some(VcpuSample {
            asleep: halted,
            run_ns,
        })
    };
    assert!(over(Some(5), None, 10), "unreadable: not waited for");
    assert!(over(Some(5), at(true, 5), 10), "halted");
    assert!(over(None, at(true, 0), 10), "halted");
    assert!(
        !over(None, at(false, 1 << 40), 10),
        "first reading starts its budget"
    );
    assert!(!over(Some(5), at(false, 14), 10));
    assert!(over(Some(5), at(false, 15), 10));
    assert!(
        !over(Some(5), at(false, 0), 10),
        "a clock that went back is no run time"
    );
}

#[test]
fn relids_wrap_skipping_those_in_use() {
    use super::server::MAX_RELID;
    let mut r = rig();
    let beat = |r: &Rig| -> Box<dyn VmbusDevice> {
        Box::new(IcDevice::new(Heartbeat::new(
            Duration::from_secs(1),
            r.heartbeats.clone(),
        )))
    };
    // Socket connections come and go for the VM's life: far more than
    // there are relids. The three ICs keep 1 to 3.
    let mut seen = HashSet::new();
    for _ in 0..3 * MAX_RELID {
        let relid = r.server.add_device(beat(&r)).expect("a relid");
        assert!((4..=MAX_RELID).contains(&relid), "{relid}");
        seen.insert(relid);
        assert_eq!(r.server.remove_device(relid), Ok(Removal::Removed));
    }
    assert_eq!(seen.len(), MAX_RELID as usize - 3);
    // All in use: none left, said so.
    for _ in 3..MAX_RELID {
        r.server.add_device(beat(&r)).expect("a relid");
    }
    assert!(r.server.add_device(beat(&r)).is_none());
}
