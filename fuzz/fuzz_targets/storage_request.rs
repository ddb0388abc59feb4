// SPDX-License-Identifier: GPL-2.0

//! A storage request from a hostile guest, and response data from a hostile host. The harness is
//! `hvhost::fuzzing::codecs::storage_request`, which `cargo test` also runs over the
//! committed corpus (`fuzz/corpus/storage_request/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hvhost::fuzzing::codecs::storage_request(data));
