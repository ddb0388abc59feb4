// SPDX-License-Identifier: GPL-2.0

//! A storage request from a hostile guest: the VSTOR packet, its SRB and
//! CDB, and an UNMAP parameter list from the rest of the input; then the
//! response data a hostile host could send back, through the guest's
//! parsers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmbus::scsi::{self, Command, Sense, UnmapList};
use vmbus::vstor::{parse_request, VstorRequest, VSTOR_PACKET_SIZE};

fuzz_target!(|data: &[u8]| {
    if let Ok((_, VstorRequest::ExecuteSrb(srb))) = parse_request(data) {
        match Command::parse(srb.cdb()) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.sense().key, scsi::sense_key::ILLEGAL_REQUEST),
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
});
