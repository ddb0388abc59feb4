// SPDX-License-Identifier: GPL-2.0

//! Channel message bytes from a hostile peer: the parser, and for GPADL
//! headers the assembler over the bodies that follow in the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmbus::gpadl::GpadlAssembler;
use vmbus::message::MAX_MESSAGE_SIZE;
use vmbus::parse::{parse, Message};

fuzz_target!(|data: &[u8]| {
    // The input is a sequence of messages, each prefixed by a length byte.
    let mut msgs = data.chunks(MAX_MESSAGE_SIZE + 1).flat_map(|c| {
        let (len, rest) = c.split_first()?;
        Some(&rest[..usize::from(*len).min(rest.len())])
    });
    let Some(first) = msgs.next() else { return };
    let mut storage = [0u64; 8192];
    if let Ok(Message::GpadlHeader(h)) = parse(first) {
        if let Ok(mut a) = GpadlAssembler::new(&h, &mut storage) {
            for m in msgs {
                if let Ok(Message::GpadlBody(b)) = parse(m) {
                    if a.add_body(&b).is_err() {
                        return;
                    }
                }
            }
            if let Ok(g) = a.finish() {
                assert!(g.ranges().count() >= 1);
            }
        }
    } else {
        for m in msgs {
            let _ = parse(m);
        }
    }
});
