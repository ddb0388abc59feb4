// SPDX-License-Identifier: GPL-2.0

//! Channel messages from a hostile peer, GPADL bodies assembled. The harness is
//! `hvhost::fuzzing::codecs::parse_message`, which `cargo test` also runs over the
//! committed corpus (`fuzz/corpus/parse_message/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hvhost::fuzzing::codecs::parse_message(data));
