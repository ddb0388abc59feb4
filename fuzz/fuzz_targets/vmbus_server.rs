// SPDX-License-Identifier: GPL-2.0

//! hvhost's VMBus server driven by a hostile guest's messages, rings and signals. The harness is
//! `hvhost::fuzzing::server::vmbus_server`, which `cargo test` also runs over the
//! committed corpus (`fuzz/corpus/vmbus_server/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hvhost::fuzzing::server::vmbus_server(data));
