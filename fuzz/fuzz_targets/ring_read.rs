// SPDX-License-Identifier: GPL-2.0

//! A ring whose header and data a hostile peer filled. The harness is
//! `hvhost::fuzzing::codecs::ring_read`, which `cargo test` also runs over the
//! committed corpus (`fuzz/corpus/ring_read/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hvhost::fuzzing::codecs::ring_read(data));
