// SPDX-License-Identifier: GPL-2.0

//! A Hyper-V socket stream packet from a hostile peer. The harness is
//! `hvhost::fuzzing::codecs::hvsock_data`, which `cargo test` also runs over the
//! committed corpus (`fuzz/corpus/hvsock_data/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hvhost::fuzzing::codecs::hvsock_data(data));
