// SPDX-License-Identifier: GPL-2.0

//! The shared contract's decoders, fed as a hostile peer would feed them:
//! channel messages with GPADL assembly, a ring whose header and data the
//! peer filled, storage requests, socket data packets.

use vmbus::gpadl::GpadlAssembler;
use vmbus::guid::Guid;
use vmbus::hvsock::{self, Data, PipeError, DATA_HEADER_SIZE};
use vmbus::message::MAX_MESSAGE_SIZE;
use vmbus::packet::PacketFlags;
use vmbus::parse::{parse, Message};
use vmbus::ring::{HeaderField, LocalMemory, RingConsumer, RingProducer};
use vmbus::scsi::{self, Command, Sense, UnmapList};
use vmbus::vstor::{parse_request, VstorRequest, VSTOR_PACKET_SIZE};

/// A sequence of channel messages, each after a length byte; a GPADL
/// header's bodies go through the assembler.
pub fn parse_message(data: &[u8]) {
    let mut msgs = data.chunks(MAX_MESSAGE_SIZE + 1).filter_map(|c| {
        let (len, rest) = c.split_first()?;
        Some(&rest[..usize::from(*len).min(rest.len())])
    });
    let Some(first) = msgs.next() else { return };
    let mut storage = vec![0u64; 8192];
    if let Ok(Message::GpadlHeader(h)) = parse(first) {
        if let Ok(mut a) = GpadlAssembler::new(&h, &mut storage) {
            for m in msgs {
                if let Ok(Message::GpadlBody(b)) = parse(m) {
                    if a.add_body(&b).is_err() {
                        return;
                    }
                }
            }
            if let Ok(g) = a.finish() {
                assert!(g.ranges().count() >= 1);
            }
        }
    } else {
        for m in msgs {
            let _ = parse(m);
        }
    }
}

/// A ring whose 20 header bytes, read-buffer size and data a hostile peer
/// chose: the consumer returns packets that fit or errors, and the
/// producer does not break either.
pub fn ring_read(data: &[u8]) {
    if data.len() < 21 {
        return;
    }
    let (head, rest) = data.split_at(20);
    let buf_len = usize::from(rest[0]) * 4;
    // Whole 8-byte slots, so that most inputs make a valid ring size.
    let ring = &rest[1..(rest.len() - 1) / 8 * 8 + 1];
    let mut ring_bytes = ring.to_vec();
    let mem = LocalMemory::new(&mut ring_bytes);
    for (i, f) in HeaderField::ALL.into_iter().enumerate() {
        let w = [
            head[i * 4],
            head[i * 4 + 1],
            head[i * 4 + 2],
            head[i * 4 + 3],
        ];
        mem.set_field(f, u32::from_le_bytes(w));
    }
    let mut buf = vec![0u8; buf_len];
    if let Ok(mut c) = RingConsumer::new(&mem) {
        // Every packet read is at least 24 bytes: this loop is bounded.
        for _ in 0..ring.len() / 24 + 1 {
            match c.read_packet(&mut buf) {
                Ok(Some(p)) => {
                    assert!(p.bytes.len() <= buf_len);
                    assert!(p.desc.data_offset() <= p.bytes.len());
                    let _ = c.commit();
                }
                _ => break,
            }
        }
        let _ = c.unmask_interrupts();
    }
    if let Ok(mut p) = RingProducer::new(&mem) {
        let _ = p.write_inband(
            1,
            PacketFlags::COMPLETION_REQUESTED,
            &ring[..ring.len().min(64)],
        );
    }
}

/// A storage request: the VSTOR packet, its SRB and CDB, an UNMAP list
/// from the rest; then the same rest as the response data a hostile host
/// could send, through the guest's parsers.
pub fn storage_request(data: &[u8]) {
    if let Ok((_, VstorRequest::ExecuteSrb(srb))) = parse_request(data) {
        if let Err(e) = Command::parse(srb.cdb()) {
            assert_eq!(e.sense().key, scsi::sense_key::ILLEGAL_REQUEST);
        }
    }
    let rest = data.get(VSTOR_PACKET_SIZE..).unwrap_or_default();
    if let Ok(list) = UnmapList::parse(rest) {
        assert_eq!(list.ranges().count(), list.len());
    }
    let _ = scsi::parse_read_capacity_16(rest);
    let _ = scsi::parse_block_limits(rest);
    let _ = scsi::parse_mode_sense(data.first().is_some_and(|b| b & 1 != 0), rest);
    let _ = Sense::parse(rest);
}

/// A socket stream packet, against both senders' limits; and a service
/// GUID from the same bytes.
pub fn hvsock_data(data: &[u8]) {
    for max in [hvsock::GUEST_SEND_MAX, hvsock::HOST_SEND_MAX] {
        match hvsock::parse_data(data, max) {
            Ok(Data::Bytes(b)) => {
                assert!(!b.is_empty() && b.len() <= max && DATA_HEADER_SIZE + b.len() <= data.len())
            }
            Ok(Data::Fin) => {}
            Err(PipeError::TooShort { len }) => assert!(len < DATA_HEADER_SIZE),
            Err(_) => {}
        }
    }
    if let Some(bytes) = data.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
        let id = Guid(bytes);
        if let Some(port) = hvsock::port_of(&id) {
            assert_eq!(hvsock::service_id(port), id);
        }
    }
}
