// SPDX-License-Identifier: GPL-2.0

//! The SCSI controller ([`Storvsp`]) against the fake partition, driven as
//! Linux's storvsc drives it: the init sequence, SCSI commands in-band and
//! GPA-direct with their data in guest pages, and what a hostile guest
//! gets (refusals with a completion, never a panic, the data untouched).

use crate::storage::image::DiskImage;
use std::os::unix::fs::FileExt;

use vmbus::gpadl::GpadlRange;
use vmbus::packet::{PacketFlags, PacketType};
use vmbus::scsi::{self, Command, Transfer};
use vmbus::vstor::{
    self, operation, srb, VmscsiRequest, VstorPacket, VstorVersion, VSTOR_PACKET_SIZE,
};
use zerocopy::IntoBytes as _;

use super::super::storvsp::Storvsp;
use super::*;
use crate::storage::{Controller, DiskSpec};

/// The controller's relid: after the three ICs.
const SCSI: u32 = 4;
/// Guest pages the tests put data in.
const DATA_PFN: u64 = 0x600;

struct Disk {
    rig: Rig,
    ch: GuestChannel,
    image: tempfile::NamedTempFile,
    next_id: u64,
}

fn disk_rig(read_only: bool) -> Disk {
    disk_rig_with(read_only, 0)
}

fn disk_rig_with(read_only: bool, max_sub_channels: u16) -> Disk {
    let image = tempfile::NamedTempFile::new().expect("image");
    image.as_file().set_len(1 << 20).expect("size");
    let controller = Controller::new(&[DiskSpec {
        path: image.path().into(),
        read_only,
        lun: None,
    }])
    .expect("controller");
    let mut rig = rig();
    assert_eq!(
        rig.server
            .add_device(Box::new(Storvsp::new(controller, max_sub_channels))),
        Some(SCSI)
    );
    rig.connect();
    let (status, ch) = rig.open(SCSI);
    assert_eq!(status, 0);
    Disk {
        rig,
        ch,
        image,
        next_id: 1,
    }
}

/// Reads the completion of request `id` from `ch`; if it is not there
/// yet, waits (up to 10 s) for the I/O thread to wake the channel, and
/// polls it as the VMBus thread would.
fn completion_on(rig: &mut Rig, ch: &mut GuestChannel, id: u64) -> VstorPacket {
    let mut buf = vec![0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((p, _)) = ch
            .recv
            .read_and_commit(&mut buf)
            .expect("host ring is sane")
        {
            assert_eq!((p.desc.ty, p.desc.trans_id), (PacketType::COMP, id));
            assert!(p.data().len() >= VSTOR_PACKET_SIZE);
            let v = VstorPacket::from_data(p.data()).expect("packet");
            assert_eq!(v.operation, operation::COMPLETE_IO);
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no completion of request {id}"
        );
        let woken = {
            let mut wakes = rig.port.wakes.lock().expect("lock");
            let n = wakes.len();
            wakes.retain(|r| *r != ch.relid);
            wakes.len() != n
        };
        if woken {
            rig.server.poll_channel(ch.relid, rig.now);
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Disk {
    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Sends `packet` in-band and returns the completion.
    fn request(&mut self, packet: &VstorPacket) -> VstorPacket {
        let id = self.next();
        let _ = self
            .ch
            .send
            .write_inband(id, PacketFlags::COMPLETION_REQUESTED, packet.as_bytes())
            .expect("room");
        self.rig.server.handle_signal(SCSI, self.rig.now);
        self.completion(id)
    }

    fn completion(&mut self, id: u64) -> VstorPacket {
        completion_on(&mut self.rig, &mut self.ch, id)
    }

    fn init(&mut self) {
        for p in [
            VstorPacket::request(operation::BEGIN_INITIALIZATION),
            VstorPacket::query_version(VstorVersion::WIN10),
            VstorPacket::request(operation::QUERY_PROPERTIES),
            VstorPacket::request(operation::END_INITIALIZATION),
        ] {
            assert_eq!(self.request(&p).status, 0, "{p:?}");
        }
    }

    /// A SCSI command with data in guest pages `pfns` from `offset`.
    fn command(
        &mut self,
        cdb: &[u8],
        dir: u8,
        len: u32,
        offset: u32,
        pfns: &[u64],
    ) -> VmscsiRequest {
        let id = self.next();
        send_command(&mut self.ch, id, cdb, dir, len, offset, pfns);
        self.rig.server.handle_signal(SCSI, self.rig.now);
        self.completion(id).body_as().expect("srb")
    }
}

/// Writes a SCSI command with data in guest pages `pfns` from `offset`
/// into `ch`'s send ring, as request `id`.
fn send_command(
    ch: &mut GuestChannel,
    id: u64,
    cdb: &[u8],
    dir: u8,
    len: u32,
    offset: u32,
    pfns: &[u64],
) {
    let srb = VmscsiRequest::command(0, cdb, dir, len);
    let packet = VstorPacket::request(operation::EXECUTE_SRB).with_body(&srb);
    let range = GpadlRange {
        byte_count: len,
        byte_offset: offset,
        pfns,
    };
    let _ = ch
        .send
        .write_gpa_direct(
            id,
            PacketFlags::COMPLETION_REQUESTED,
            &[range],
            packet.as_bytes(),
        )
        .expect("room");
}

#[test]
fn init_then_write_and_read_through_guest_pages() {
    let mut d = disk_rig(false);
    d.init();
    // Data at an offset in page DATA_PFN, spilling into DATA_PFN + 1.
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 255) as u8).collect();
    d.rig
        .port
        .fake
        .write(DATA_PFN * 4096 + 512, &data)
        .expect("guest write");
    let write = Command::rw16(
        true,
        Transfer {
            lba: 8,
            blocks: 8,
            fua: false,
        },
    );
    let done = d.command(
        &write,
        vstor::direction::WRITE,
        4096,
        512,
        &[DATA_PFN, DATA_PFN + 1],
    );
    assert_eq!(
        (done.srb_status, done.scsi_status, done.data_transfer_length),
        (srb::SUCCESS, 0, 4096)
    );
    let mut on_disk = vec![0; 4096];
    d.image
        .as_file()
        .read_exact_at(&mut on_disk, 8 * 512)
        .expect("image");
    assert_eq!(on_disk, data);
    // Read it back into other pages.
    let read = Command::rw16(
        false,
        Transfer {
            lba: 8,
            blocks: 8,
            fua: false,
        },
    );
    let done = d.command(&read, vstor::direction::READ, 4096, 0, &[DATA_PFN + 4]);
    assert_eq!(done.srb_status, srb::SUCCESS);
    let mut back = vec![0; 4096];
    d.rig
        .port
        .fake
        .read((DATA_PFN + 4) * 4096, &mut back)
        .expect("guest read");
    assert_eq!(back, data);
    // A command without data goes in-band.
    let tur = d.request(&VstorPacket::request(operation::EXECUTE_SRB).with_body(
        &VmscsiRequest::command(0, &[0; 6], vstor::direction::UNKNOWN, 0),
    ));
    assert_eq!(
        tur.body_as::<VmscsiRequest>().expect("srb").srb_status,
        srb::SUCCESS
    );
    let report = d.rig.server.report("");
    assert!(report.contains(" version=6.2 "), "{report}");
    assert!(
        report
            .contains(" lun0_reads=1 lun0_writes=1 lun0_bytes_read=4096 lun0_bytes_written=4096 "),
        "{report}"
    );
}

#[test]
fn check_conditions_carry_autosense() {
    let mut d = disk_rig(true);
    d.init();
    let write = Command::rw16(
        true,
        Transfer {
            lba: 0,
            blocks: 1,
            fua: false,
        },
    );
    let done = d.command(&write, vstor::direction::WRITE, 512, 0, &[DATA_PFN]);
    assert_eq!(done.srb_status, srb::ERROR | srb::AUTOSENSE_VALID);
    assert_eq!(done.scsi_status, scsi::status::CHECK_CONDITION);
    let sense = scsi::Sense::parse(done.sense()).expect("sense");
    assert_eq!(
        (sense.key, sense.code),
        (scsi::sense_key::DATA_PROTECT, scsi::asc::WRITE_PROTECTED)
    );
    // Absent LUN: INVALID_LUN.
    let srb = VmscsiRequest::command(3, &[0; 6], vstor::direction::UNKNOWN, 0);
    let done = d.request(&VstorPacket::request(operation::EXECUTE_SRB).with_body(&srb));
    assert_eq!(
        done.body_as::<VmscsiRequest>().expect("srb").srb_status & srb::STATUS_MASK,
        srb::INVALID_LUN
    );
}

#[test]
fn hostile_requests_are_refused_with_a_completion() {
    let mut d = disk_rig(false);
    // SCSI before init.
    let srb = VmscsiRequest::command(0, &[0; 6], vstor::direction::UNKNOWN, 0);
    let early = d.request(&VstorPacket::request(operation::EXECUTE_SRB).with_body(&srb));
    assert_eq!(early.status, vstor::status::INVALID_DEVICE_STATE);
    d.init();
    // A short packet.
    let id = d.next_id;
    d.next_id += 1;
    let _ =
        d.ch.send
            .write_inband(id, PacketFlags::COMPLETION_REQUESTED, &[1, 2, 3, 4])
            .expect("room");
    d.rig.server.handle_signal(SCSI, d.rig.now);
    assert_eq!(d.completion(id).status, vstor::status::INVALID_PARAMETER);
    // Data in-band (no range), a range outside RAM, a range shorter than the transfer.
    let read = Command::rw16(
        false,
        Transfer {
            lba: 0,
            blocks: 8,
            fua: false,
        },
    );
    let inband = VmscsiRequest::command(0, &read, vstor::direction::READ, 4096);
    let r = d.request(&VstorPacket::request(operation::EXECUTE_SRB).with_body(&inband));
    assert_eq!(
        r.body_as::<VmscsiRequest>().expect("srb").srb_status,
        srb::INVALID_REQUEST
    );
    let outside = d.command(&read, vstor::direction::READ, 4096, 0, &[0xfff_ffff]);
    assert_eq!(outside.srb_status, srb::INVALID_REQUEST);
    // The guest's own range is checked against the transfer length in the SRB.
    let srb = VmscsiRequest::command(0, &read, vstor::direction::READ, 8192);
    let packet = VstorPacket::request(operation::EXECUTE_SRB).with_body(&srb);
    let id = d.next_id;
    d.next_id += 1;
    let pfns = [DATA_PFN];
    let range = GpadlRange {
        byte_count: 4096,
        byte_offset: 0,
        pfns: &pfns,
    };
    let _ =
        d.ch.send
            .write_gpa_direct(
                id,
                PacketFlags::COMPLETION_REQUESTED,
                &[range],
                packet.as_bytes(),
            )
            .expect("room");
    d.rig.server.handle_signal(SCSI, d.rig.now);
    let short: VmscsiRequest = d.completion(id).body_as().expect("srb");
    assert_eq!(short.srb_status, srb::INVALID_REQUEST);
    let report = d.rig.server.report("");
    assert!(report.contains(" invalid=4 "), "{report}");
    // The channel is still open and serving.
    let ok = d.command(&read, vstor::direction::READ, 4096, 0, &[DATA_PFN]);
    assert_eq!(ok.srb_status, srb::SUCCESS);
    // A packet type that is not data breaks the protocol: the channel closes.
    let _ =
        d.ch.send
            .write_completion(&vmbus::packet::PacketDescriptor::default(), &[0; 64])
            .expect("room");
    d.rig.server.handle_signal(SCSI, d.rig.now);
    assert!(!d.rig.server.is_open(SCSI));
}

#[test]
fn sub_channels_are_offered_serve_io_and_go_with_the_primary() {
    let mut d = disk_rig_with(false, 2);
    for p in [
        VstorPacket::request(operation::BEGIN_INITIALIZATION),
        VstorPacket::query_version(VstorVersion::WIN10),
    ] {
        assert_eq!(d.request(&p).status, 0);
    }
    let props: vstor::ChannelProperties = d
        .request(&VstorPacket::request(operation::QUERY_PROPERTIES))
        .body_as()
        .expect("properties");
    assert_eq!(
        (props.max_channel_cnt, props.flags),
        (2, vstor::PROPERTY_MULTI_CHANNEL)
    );
    assert_eq!(
        d.request(&VstorPacket::request(operation::END_INITIALIZATION))
            .status,
        0
    );
    let _ = d.rig.replies();
    // Linux asks after END_INITIALIZATION.
    assert_eq!(d.request(&VstorPacket::create_sub_channels(2)).status, 0);
    let offers: Vec<_> = d
        .rig
        .replies()
        .iter()
        .filter_map(|(_, b)| match parse(b) {
            Ok(Message::OfferChannel(o)) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(offers.len(), 2);
    for (i, o) in offers.iter().enumerate() {
        assert_eq!(o.offer.sub_channel_index, i as u16 + 1);
        assert_eq!(o.offer.if_type, vmbus::guid::SCSI);
        assert_ne!(o.child_relid, SCSI);
    }
    // A second request is refused; the offers stay two.
    assert_eq!(
        d.request(&VstorPacket::create_sub_channels(1)).status,
        vstor::status::INVALID_PARAMETER
    );
    // I/O on a sub-channel reaches the same disk.
    let sub = offers[1].child_relid;
    let (status, mut ch) = d.rig.open(sub);
    assert_eq!(status, 0);
    d.rig
        .port
        .fake
        .write(DATA_PFN * 4096, &[0x42; 512])
        .expect("guest write");
    let write = Command::rw16(
        true,
        Transfer {
            lba: 3,
            blocks: 1,
            fua: true,
        },
    );
    send_command(
        &mut ch,
        77,
        &write,
        vstor::direction::WRITE,
        512,
        0,
        &[DATA_PFN],
    );
    d.rig.server.handle_signal(sub, d.rig.now);
    let done: VmscsiRequest = completion_on(&mut d.rig, &mut ch, 77)
        .body_as()
        .expect("srb");
    assert_eq!(done.srb_status, srb::SUCCESS);
    let mut on_disk = [0u8; 512];
    d.image
        .as_file()
        .read_exact_at(&mut on_disk, 3 * 512)
        .expect("image");
    assert_eq!(on_disk, [0x42; 512]);
    let report = d.rig.server.report("");
    assert!(
        report.contains(&format!("channel relid={sub} name=scsi sub_channel=2 ")),
        "{report}"
    );
    assert!(report.contains(" sub_channels=2"), "{report}");
    assert!(report.contains(" channel_commands=1\n"), "{report}");
    // Closing the primary rescinds both sub-channels.
    d.rig.send(&msg(&CloseChannel { child_relid: SCSI }));
    let rescinded: Vec<u32> = d
        .rig
        .replies()
        .iter()
        .filter_map(|(_, b)| match parse(b) {
            Ok(Message::RescindChannelOffer(r)) => Some(r.child_relid),
            _ => None,
        })
        .collect();
    assert_eq!(rescinded.len(), 2, "{rescinded:?}");
    assert!(!d.rig.server.is_open(sub));
}

/// Reads every completion waiting in `ch`'s receive ring: (id, srb status,
/// scsi status).
fn read_all(ch: &mut GuestChannel) -> Vec<(u64, u8, u8)> {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    while let Some((p, _)) = ch
        .recv
        .read_and_commit(&mut buf)
        .expect("host ring is sane")
    {
        let v = VstorPacket::from_data(p.data()).expect("packet");
        let srb: VmscsiRequest = v.body_as().expect("srb");
        out.push((p.desc.trans_id, srb.srb_status, srb.scsi_status));
    }
    out
}

/// Waits (up to 10 s) until the I/O thread has woken `relid` and nothing
/// is in flight any more, polling it each time.
fn settle(d: &mut Disk) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let woken = std::mem::take(&mut *d.rig.port.wakes.lock().expect("lock"));
        if woken.is_empty() {
            return;
        }
        d.rig.server.poll_channel(SCSI, d.rig.now);
        assert!(
            std::time::Instant::now() < deadline,
            "the I/O thread keeps waking"
        );
    }
}

#[test]
fn a_guest_that_floods_and_does_not_read_gets_busy_never_lost_completions() {
    let mut d = disk_rig(false);
    d.init();
    let read = Command::rw16(
        false,
        Transfer {
            lba: 0,
            blocks: 1,
            fua: false,
        },
    );
    let mut sent = Vec::new();
    for _round in 0..2 {
        for _ in 0..100 {
            let id = d.next();
            send_command(
                &mut d.ch,
                id,
                &read,
                vstor::direction::READ,
                512,
                0,
                &[DATA_PFN],
            );
            sent.push(id);
        }
        d.rig.server.handle_signal(SCSI, d.rig.now);
        settle(&mut d);
    }
    // The guest never read: its receive ring holds what fitted beside the
    // room reserved for what is in flight.
    let mut answers = read_all(&mut d.ch);
    let first = answers.len();
    assert!(
        first < sent.len(),
        "{first} answers for {} requests",
        sent.len()
    );
    // It reads now and signals (as Linux does for pending_send_sz): the
    // answers that waited come.
    d.rig.server.handle_signal(SCSI, d.rig.now);
    settle(&mut d);
    answers.extend(read_all(&mut d.ch));
    let ids: Vec<u64> = answers.iter().map(|a| a.0).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, sent, "every request answered exactly once");
    let busy = answers.iter().filter(|a| a.2 == scsi::status::BUSY).count();
    let ok = answers.iter().filter(|a| a.1 == srb::SUCCESS).count();
    assert!(busy > 0 && ok + busy == sent.len(), "{ok} ok, {busy} busy");
    let report = d.rig.server.report("");
    assert!(
        report.contains(&format!(" busy={busy} completions_dropped=0 ")),
        "{report}"
    );
}

/// The next in-band packet the host wrote on `ch`, if it is an
/// unsolicited VSTOR operation (transaction 0): its operation.
fn unsolicited(ch: &mut GuestChannel) -> Option<u32> {
    let mut buf = vec![0u8; 4096];
    let (p, _) = ch
        .recv
        .read_and_commit(&mut buf)
        .expect("host ring is sane")?;
    assert_eq!((p.desc.ty, p.desc.trans_id), (PacketType::DATA_INBAND, 0));
    let v = VstorPacket::from_data(p.data()).expect("packet");
    Some(v.operation)
}

#[test]
fn hot_plug_tells_the_guest_and_removal_waits_for_queued_io() {
    let mut d = disk_rig(false);
    d.init();
    let extra = tempfile::NamedTempFile::new().expect("image");
    extra.as_file().set_len(1 << 20).expect("size");
    let spec: DiskSpec = format!("{},lun=2", extra.path().display())
        .parse()
        .expect("spec");
    let now = d.rig.now;
    let open = |path: &std::path::Path| DiskImage::open(path, false).expect("open");
    let image = open(&spec.path);
    let lun = d
        .rig
        .server
        .with_disks(now, |h| h.add_disk(spec.lun, image))
        .expect("controller");
    assert_eq!(lun, Ok(2));
    assert_eq!(unsolicited(&mut d.ch), Some(operation::ENUMERATE_BUS));
    // The same LUN again (another image) is refused, clearly.
    let other = tempfile::NamedTempFile::new().expect("image");
    other.as_file().set_len(1 << 20).expect("size");
    let image = open(other.path());
    let again = d
        .rig
        .server
        .with_disks(now, |h| h.add_disk(Some(2), image))
        .expect("controller");
    assert!(again.is_err_and(|e| e.contains("LUN 2")));
    // REPORT LUNS lists it.
    let report_luns = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0];
    let done = d.command(&report_luns, vstor::direction::READ, 64, 0, &[DATA_PFN]);
    assert_eq!(
        (done.srb_status, done.data_transfer_length),
        (srb::SUCCESS, 24)
    );
    // A read of LUN 2 queued, not yet completed, then the removal: the read
    // completes as a read (the removal waited for it), and the LUN is gone.
    let read = Command::rw16(
        false,
        Transfer {
            lba: 0,
            blocks: 8,
            fua: false,
        },
    );
    let srb = VmscsiRequest::command(2, &read, vstor::direction::READ, 4096);
    let packet = VstorPacket::request(operation::EXECUTE_SRB).with_body(&srb);
    let pfns = [DATA_PFN];
    let range = GpadlRange {
        byte_count: 4096,
        byte_offset: 0,
        pfns: &pfns,
    };
    let _ =
        d.ch.send
            .write_gpa_direct(
                900,
                PacketFlags::COMPLETION_REQUESTED,
                &[range],
                packet.as_bytes(),
            )
            .expect("room");
    d.rig.server.handle_signal(SCSI, now);
    let removed = d
        .rig
        .server
        .with_disks(now, |h| h.remove_disk(2))
        .expect("controller");
    assert_eq!(removed, Ok(()));
    // The poll after the removal wrote the read's completion, then the notice.
    let queued: VmscsiRequest = completion_on(&mut d.rig, &mut d.ch, 900)
        .body_as()
        .expect("srb");
    assert_eq!(queued.srb_status, srb::SUCCESS);
    assert_eq!(unsolicited(&mut d.ch), Some(operation::ENUMERATE_BUS));
    let tur = VmscsiRequest::command(2, &[0; 6], vstor::direction::UNKNOWN, 0);
    let gone = d.request(&VstorPacket::request(operation::EXECUTE_SRB).with_body(&tur));
    assert_eq!(
        gone.body_as::<VmscsiRequest>().expect("srb").srb_status & srb::STATUS_MASK,
        srb::INVALID_LUN
    );
    let none = d
        .rig
        .server
        .with_disks(now, |h| h.remove_disk(2))
        .expect("controller");
    assert!(none.is_err_and(|e| e.contains("no disk at LUN 2")));
}
