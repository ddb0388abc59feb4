// SPDX-License-Identifier: GPL-2.0

//! SynIC message and event delivery into pages a hostile guest wrote. The harness is
//! `hvhost::fuzzing::partition::synic`, which `cargo test` also runs over the
//! committed corpus (`fuzz/corpus/synic/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hvhost::fuzzing::partition::synic(data));
