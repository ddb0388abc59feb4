// SPDX-License-Identifier: GPL-2.0

//! Hyper-V sockets (`--vsock`) against the fake partition, with real Unix
//! sockets on the host side, driven as Linux's `hv_sock` drives them: the
//! connect request, the per-connection offer, stream packets both ways,
//! FIN, the rescind it waits for; and what a hostile guest gets.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;

use vmbus::hvsock::{self, DataHeader, CONNECT_REFUSED, GUEST_SEND_MAX};
use vmbus::message::{OfferFlags, TlConnectRequest};
use vmbus::packet::PacketType;

use super::*;
use crate::vsock::hybrid::FIRST_HOST_PORT;
use crate::vsock::service::{Sockets, VsockConfig};

/// The first socket's relid: after the three ICs.
const SOCK: u32 = 4;

struct Fixture {
    rig: Rig,
    dir: tempfile::TempDir,
    /// Host programs' connections, as the worker would get them.
    offers: mpsc::Receiver<Box<dyn VmbusDevice>>,
}

fn fixture(max_conns: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("dir");
    let (tx, offers) = mpsc::channel();
    let tx = Mutex::new(tx);
    let sockets = Sockets::start(
        &VsockConfig {
            path: dir.path().join("v.sock"),
            max_conns,
        },
        Box::new(move |d| {
            let _ = tx.lock().expect("lock").send(d);
        }),
    )
    .expect("sockets");
    let mut rig = rig_with(vec![Version::V6_0, Version::WIN10], Faults::default());
    rig.server.set_socket_service(Box::new(sockets));
    rig.connect();
    Fixture { rig, dir, offers }
}

impl Fixture {
    /// A host program connecting to `PATH` with `command`: its stream and
    /// the connection's device, as the worker gets it.
    fn host_connects(&self, command: &[u8]) -> (UnixStream, Box<dyn VmbusDevice>) {
        let mut host = UnixStream::connect(self.dir.path().join("v.sock")).expect("connect");
        host.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        host.write_all(command).expect("command");
        let device = self
            .offers
            .recv_timeout(Duration::from_secs(10))
            .expect("handed over");
        (host, device)
    }
}

fn connect_request(port: u32, guest_port: u32) -> Vec<u8> {
    msg(&TlConnectRequest {
        guest_endpoint_id: hvsock::service_id(guest_port),
        host_service_id: hvsock::service_id(port),
    })
}

fn offer_of(replies: &[(u32, Vec<u8>)]) -> vmbus::message::OfferChannel {
    let [(_, bytes)] = replies else {
        panic!("one offer expected: {replies:?}")
    };
    let Ok(Message::OfferChannel(o)) = parse(bytes) else {
        panic!("{replies:?}")
    };
    o
}

/// A stream packet as Linux's `hvs_send_data` writes it.
fn guest_send(ch: &mut GuestChannel, data: &[u8]) {
    let mut p = DataHeader::data(data.len() as u32).as_bytes().to_vec();
    p.extend_from_slice(data);
    let _ = ch
        .send
        .write_inband(0, PacketFlags::NONE, &p)
        .expect("room");
}

/// Everything the host sent the guest so far: stream bytes and whether a
/// FIN came; each packet checked as Linux's `hvs_stream_dequeue` does.
fn guest_read(ch: &mut GuestChannel) -> (Vec<u8>, bool) {
    let mut buf = vec![0u8; 32 * 1024];
    let (mut bytes, mut fin) = (Vec::new(), false);
    while let Some((p, _)) = ch.recv.read_and_commit(&mut buf).expect("sane ring") {
        assert_eq!(p.desc.ty, PacketType::DATA_INBAND);
        assert!(!fin, "data after the FIN");
        match hvsock::parse_data(p.data(), hvsock::HOST_SEND_MAX).expect("valid packet") {
            hvsock::Data::Bytes(b) => bytes.extend_from_slice(b),
            hvsock::Data::Fin => fin = true,
        }
    }
    (bytes, fin)
}

/// Polls the channel as the VMBus thread does on the watcher's wake-ups
/// until `done` holds (at most 10 s).
fn until(rig: &mut Rig, relid: u32, mut done: impl FnMut(&mut Rig) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(rig) {
        assert!(Instant::now() < deadline, "timed out");
        rig.server.poll_channel(relid, Instant::now());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What Linux does after the rescind: close, tear down, release.
fn guest_lets_go(rig: &mut Rig, ch: &GuestChannel) {
    rig.send(&msg(&CloseChannel {
        child_relid: ch.relid,
    }));
    rig.send(&msg(&GpadlTeardown {
        child_relid: ch.relid,
        gpadl: ch.gpadl,
    }));
    rig.send(&msg(&RelidReleased {
        child_relid: ch.relid,
    }));
    assert_eq!(rig.types(), vec![MessageType::GPADL_TORNDOWN]);
    assert!(rig.server.devices().iter().all(|d| d.relid != ch.relid));
}

#[test]
fn guest_connects_relays_both_ways_and_the_channel_is_rescinded() {
    let mut f = fixture(4);
    let listener = UnixListener::bind(f.dir.path().join("v.sock_1234")).expect("listen");
    f.rig.send(&connect_request(1234, 0x4000_0007));
    let o = offer_of(&f.rig.replies());
    assert_eq!(o.child_relid, SOCK);
    assert_eq!(o.offer.if_type, hvsock::service_id(1234));
    assert_eq!(o.offer.if_instance, hvsock::service_id(0x4000_0007));
    assert_eq!(o.offer.chn_flags, OfferFlags(0x2011));
    assert!(!hvsock::is_for_guest_accept(&o.offer.user_def));
    let (mut host, _) = listener.accept().expect("hvhost connected to PATH_1234");
    host.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (status, mut ch) = f.rig.open(SOCK);
    assert_eq!(status, 0);

    // Guest to host, one packet of the largest size Linux sends.
    let big: Vec<u8> = (0..GUEST_SEND_MAX).map(|i| (i * 7) as u8).collect();
    guest_send(&mut ch, b"hello ");
    guest_send(&mut ch, &big);
    f.rig.server.handle_signal(SOCK, f.rig.now);
    let mut got = vec![0u8; 6 + big.len()];
    host.read_exact(&mut got).expect("guest bytes");
    assert_eq!(&got[..6], b"hello ");
    assert_eq!(&got[6..], &big[..]);

    // Host to guest: more than the guest's ring holds, so the connection
    // waits for the guest to read (pending_send_sz) and goes on.
    let payload: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut host = host.try_clone().expect("clone");
        let payload = payload.clone();
        std::thread::spawn(move || host.write_all(&payload).expect("write"))
    };
    let mut received = Vec::new();
    until(&mut f.rig, SOCK, |rig| {
        let (b, fin) = guest_read(&mut ch);
        assert!(!fin);
        received.extend_from_slice(&b);
        // The guest read: the signal for the room it freed.
        rig.server.handle_signal(SOCK, rig.now);
        received.len() == payload.len()
    });
    writer.join().expect("writer");
    assert_eq!(received, payload);

    // Half-close from the guest: the host reads end of file, and can
    // still send.
    guest_send(&mut ch, b"");
    f.rig.server.handle_signal(SOCK, f.rig.now);
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).expect("eof");
    assert!(rest.is_empty());
    host.write_all(b"bye").expect("host still sends");
    drop(host);
    let (mut tail, mut fin) = (Vec::new(), false);
    until(&mut f.rig, SOCK, |_| {
        let (b, f) = guest_read(&mut ch);
        tail.extend_from_slice(&b);
        fin |= f;
        fin
    });
    assert_eq!(tail, b"bye");
    // Both FINs: the channel is rescinded, which Linux's close waits for.
    assert_eq!(f.rig.types(), vec![MessageType::RESCIND_CHANNELOFFER]);
    let report = f.rig.server.report("");
    assert!(
        report.contains("bytes_to_host=4094 bytes_to_guest=40003"),
        "{report}"
    );
    guest_lets_go(&mut f.rig, &ch);
    let s = f.rig.server.stats();
    assert_eq!(
        (s.socket_requests, s.socket_refusals, s.rescinds),
        (1, 0, 1)
    );
}

#[test]
fn refused_connects_get_no_offer() {
    let mut f = fixture(1);
    // Nobody listens on PATH_80.
    f.rig.send(&connect_request(80, 1));
    let r = f.rig.replies();
    // 6.0 has TL_CONNECT_RESULT: refused, naming the request.
    let [(_, bytes)] = &r[..] else {
        panic!("{r:?}")
    };
    let Ok(Message::TlConnectResult(res)) = parse(bytes) else {
        panic!("{r:?}")
    };
    assert_eq!(res.host_service_id, hvsock::service_id(80));
    assert_eq!(res.status, CONNECT_REFUSED);
    // A service that is no vsock port.
    let mut m = TlConnectRequest {
        guest_endpoint_id: hvsock::service_id(1),
        host_service_id: hvsock::service_id(80),
    };
    m.host_service_id.0[15] ^= 1;
    f.rig.send(&msg(&m));
    assert_eq!(f.rig.types(), vec![MessageType::TL_CONNECT_RESULT]);
    // The limit (1): the first gets its offer, the second does not.
    let _listener = UnixListener::bind(f.dir.path().join("v.sock_81")).expect("listen");
    f.rig.send(&connect_request(81, 2));
    assert_eq!(f.rig.types(), vec![MessageType::OFFERCHANNEL]);
    f.rig.send(&connect_request(81, 3));
    assert_eq!(f.rig.types(), vec![MessageType::TL_CONNECT_RESULT]);
    let s = f.rig.server.stats();
    assert_eq!((s.socket_requests, s.socket_refusals), (4, 3));
    // Below 4.1 there is no TL_CONNECT_RESULT: nothing is sent.
    f.rig.send(&empty(MessageType::UNLOAD));
    f.rig.replies();
    f.rig.connect_at(Version::WIN10);
    f.rig.send(&connect_request(82, 4));
    assert!(f.rig.types().is_empty());
    // The unload took the socket channel with it: no re-offer.
    assert!(f.rig.server.devices().iter().all(|d| d.name != "hvsock"));
}

#[test]
fn a_broken_stream_packet_resets_that_connection_only() {
    for bad in [
        // Not a data packet.
        [2u32.to_le_bytes(), 4u32.to_le_bytes()].concat(),
        // Over the guest's limit.
        DataHeader::data(GUEST_SEND_MAX as u32 + 1)
            .as_bytes()
            .to_vec(),
        // Past the packet.
        DataHeader::data(100).as_bytes().to_vec(),
        // No header.
        vec![1, 0, 0, 0],
    ] {
        let mut f = fixture(4);
        let listener = UnixListener::bind(f.dir.path().join("v.sock_7")).expect("listen");
        f.rig.send(&connect_request(7, 1));
        f.rig.send(&connect_request(7, 2));
        assert_eq!(f.rig.types().len(), 2);
        let (mut host1, _) = listener.accept().expect("first");
        let (mut host2, _) = listener.accept().expect("second");
        let (_, mut ch1) = f.rig.open(SOCK);
        let (_, mut ch2) = f.rig.open(SOCK + 1);
        let mut padded = bad.clone();
        padded.resize(bad.len().div_ceil(8) * 8, 0);
        let _ = ch1
            .send
            .write_inband(0, PacketFlags::NONE, &padded)
            .expect("room");
        guest_send(&mut ch1, b"never relayed");
        f.rig.server.handle_signal(SOCK, f.rig.now);
        assert_eq!(f.rig.types(), vec![MessageType::RESCIND_CHANNELOFFER]);
        let mut rest = Vec::new();
        host1.read_to_end(&mut rest).expect("closed");
        assert!(rest.is_empty(), "{bad:?}");
        // The other connection is untouched.
        guest_send(&mut ch2, b"fine");
        f.rig.server.handle_signal(SOCK + 1, f.rig.now);
        let mut four = [0u8; 4];
        host2.read_exact(&mut four).expect("second works");
        assert_eq!(&four, b"fine");
        host2.write_all(b"ok").expect("write");
        until(&mut f.rig, SOCK + 1, |_| guest_read(&mut ch2).0 == b"ok");
        guest_lets_go(&mut f.rig, &ch1);
        assert!(f.rig.report_has("conn_state=open"));
    }
}

#[test]
fn host_program_connects_and_gets_ok_once_the_guest_accepts() {
    let mut f = fixture(4);
    let (mut host, device) = f.host_connects(b"connect 5000\r\nearly");
    assert_eq!(f.rig.server.add_socket(device), Ok(SOCK));
    let o = offer_of(&f.rig.replies());
    assert!(hvsock::is_for_guest_accept(&o.offer.user_def));
    assert_eq!(o.offer.if_type, hvsock::service_id(5000));
    assert_eq!(o.offer.if_instance, hvsock::service_id(FIRST_HOST_PORT));
    let (_, mut ch) = f.rig.open(SOCK);
    let mut ok = [0u8; 14];
    host.read_exact(&mut ok).expect("OK");
    assert_eq!(&ok, format!("OK {FIRST_HOST_PORT}\n").as_bytes());
    until(&mut f.rig, SOCK, |_| guest_read(&mut ch).0 == b"early");
    guest_send(&mut ch, b"from the guest");
    f.rig.server.handle_signal(SOCK, f.rig.now);
    let mut got = [0u8; 14];
    host.read_exact(&mut got).expect("data");
    assert_eq!(&got, b"from the guest");
}

#[test]
fn an_offer_nobody_accepts_is_withdrawn_and_the_host_gets_no_ok() {
    let mut f = fixture(4);
    let (mut host, device) = f.host_connects(b"CONNECT 9\n");
    assert_eq!(f.rig.server.add_socket(device), Ok(SOCK));
    f.rig.replies();
    // No guest program listens on 9: the guest never opens the channel.
    let later = Instant::now() + Duration::from_secs(6);
    assert!(
        f.rig.server.poll(Instant::now()).is_some(),
        "the offer has a deadline"
    );
    f.rig.server.poll(later);
    assert_eq!(f.rig.types(), vec![MessageType::RESCIND_CHANNELOFFER]);
    assert_eq!(f.rig.server.stats().socket_offers_expired, 1);
    f.rig.send(&msg(&RelidReleased { child_relid: SOCK }));
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty(), "no OK: {rest:?}");
    // Malformed commands are closed at once; a guest without VMBus gets
    // no offer.
    let mut bad = UnixStream::connect(f.dir.path().join("v.sock")).expect("connect");
    bad.write_all(b"CONNECT x\n").expect("command");
    bad.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty());
    f.rig.send(&empty(MessageType::UNLOAD));
    let (mut late, device) = f.host_connects(b"CONNECT 9\n");
    assert!(f.rig.server.add_socket(device).is_err());
    late.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty());
}

#[test]
fn a_host_that_does_not_read_holds_the_guest_back() {
    let mut f = fixture(4);
    let listener = UnixListener::bind(f.dir.path().join("v.sock_3")).expect("listen");
    f.rig.send(&connect_request(3, 1));
    f.rig.replies();
    let (mut host, _) = listener.accept().expect("accept");
    let (_, mut ch) = f.rig.open(SOCK);
    // The guest writes far more than the socket buffer and the relay's
    // buffer hold; nothing is lost, and the relay stops taking packets.
    let chunk = vec![0x5au8; GUEST_SEND_MAX];
    let total = 4 * 1024 * 1024;
    let mut sent = 0;
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    let mut stalled_seen = false;
    host.set_nonblocking(true).expect("nonblocking");
    while got < total {
        while sent < total {
            let n = chunk.len().min(total - sent);
            let mut p = DataHeader::data(n as u32).as_bytes().to_vec();
            p.extend_from_slice(&chunk[..n]);
            if ch.send.write_inband(0, PacketFlags::NONE, &p).is_err() {
                stalled_seen = true;
                break;
            }
            sent += n;
        }
        f.rig.server.handle_signal(SOCK, f.rig.now);
        f.rig.server.poll_channel(SOCK, f.rig.now);
        // The host reads only a little each round.
        match host.read(&mut buf[..16384]) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(stalled_seen, "the guest's ring filled up");
    assert_eq!(got, total);
    let report = f.rig.server.report("");
    assert!(
        report.contains(&format!("bytes_to_host={total}")),
        "{report}"
    );
}

impl Rig {
    fn report_has(&self, field: &str) -> bool {
        self.server.report("").contains(field)
    }
}

/// `hvctl vsock-fault`: each packet fault spoils the next data packet to
/// the guest, once, for its reason; the unsolicited offer is an offer of
/// an endpoint that never asked, withdrawn like any offer not opened.
#[test]
fn socket_faults_spoil_one_packet_each_and_offer_the_unsolicited() {
    use crate::vsock::fault::{Fault, UNSOLICITED_ENDPOINT_PORT};
    let mut f = fixture(4);
    assert!(f.rig.server.socket_fault(Fault::Oversize).is_ok());
    let listener = UnixListener::bind(f.dir.path().join("v.sock_77")).expect("listen");
    f.rig.send(&connect_request(77, 0x4000_0077));
    offer_of(&f.rig.replies());
    let (mut host, _) = listener.accept().expect("connected");
    let (status, mut ch) = f.rig.open(SOCK);
    assert_eq!(status, 0);
    host.write_all(b"spoiled").expect("write");
    let mut buf = vec![0u8; 32 * 1024];
    let mut packets = Vec::new();
    until(&mut f.rig, SOCK, |_| {
        while let Some((p, _)) = ch.recv.read_and_commit(&mut buf).expect("sane ring") {
            packets.push(p.data().to_vec());
        }
        !packets.is_empty()
    });
    assert!(matches!(
        hvsock::parse_data(&packets[0], hvsock::HOST_SEND_MAX),
        Err(hvsock::PipeError::Oversize { .. })
    ));
    // Disarmed: the next packet is good.
    host.write_all(b"good").expect("write");
    packets.clear();
    until(&mut f.rig, SOCK, |_| {
        while let Some((p, _)) = ch.recv.read_and_commit(&mut buf).expect("sane ring") {
            packets.push(p.data().to_vec());
        }
        !packets.is_empty()
    });
    assert_eq!(
        hvsock::parse_data(&packets[0], hvsock::HOST_SEND_MAX),
        Ok(hvsock::Data::Bytes(b"good"))
    );

    let answer = f
        .rig
        .server
        .socket_fault(Fault::UnsolicitedOffer)
        .expect("offered");
    assert!(answer.contains("no guest program asked"), "{answer}");
    let o = offer_of(&f.rig.replies());
    assert_eq!(
        o.offer.if_instance,
        hvsock::service_id(UNSOLICITED_ENDPOINT_PORT)
    );
    assert!(!hvsock::is_for_guest_accept(&o.offer.user_def));
    f.rig.server.poll(Instant::now() + Duration::from_secs(6));
    assert_eq!(f.rig.types(), vec![MessageType::RESCIND_CHANNELOFFER]);
    assert_eq!(f.rig.server.stats().socket_offers_expired, 1);
}
