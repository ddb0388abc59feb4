// SPDX-License-Identifier: GPL-2.0

//! Hypercalls from a hostile guest: control words, input pages, rep counts. The harness is
//! `hvhost::fuzzing::partition::hypercall`, which `cargo test` also runs over the
//! committed corpus (`fuzz/corpus/hypercall/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hvhost::fuzzing::partition::hypercall(data));
