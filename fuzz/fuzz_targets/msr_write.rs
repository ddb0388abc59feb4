// SPDX-License-Identifier: GPL-2.0

//! Synthetic MSR writes and reads from a hostile guest. The harness is
//! `hvhost::fuzzing::partition::msr_write`, which `cargo test` also runs over the
//! committed corpus (`fuzz/corpus/msr_write/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hvhost::fuzzing::partition::msr_write(data));
