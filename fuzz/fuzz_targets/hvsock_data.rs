// SPDX-License-Identifier: GPL-2.0

//! A Hyper-V socket stream packet from a hostile peer, checked against
//! both senders' limits; and a service GUID from the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmbus::guid::Guid;
use vmbus::hvsock::{self, Data, PipeError, DATA_HEADER_SIZE};

fuzz_target!(|data: &[u8]| {
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
});
