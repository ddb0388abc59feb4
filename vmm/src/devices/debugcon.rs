// SPDX-License-Identifier: GPL-2.0

//! The debug console: port 0xe9, like QEMU's `isa-debugcon` and Cloud Hypervisor's debug
//! console. Every byte the guest writes there is appended to a host file, unbuffered, so the
//! file is complete whenever hvhost exits.
//!
//! Reads return the next byte of the console's input, which the host fills a line at a time
//! through the control socket (`hvctl PATH debugcon TEXT`), and 0xe9 when there is none, so a
//! guest still detects the port as on QEMU. Input is printable ASCII and newlines only, so
//! 0xe9 never is a byte of it.
//!
//! The test rig uses this as its result channel, and the input side as the answer channel of
//! its request protocol (`tests/rig/lib.sh`, `rig_request`), which is why nothing is
//! filtered or reordered here.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use super::PioDevice;

/// The debug console port.
pub const DEBUGCON_PORT: u16 = 0xe9;
/// What a read of the port returns when no input is waiting (QEMU's convention).
pub const DEBUGCON_READBACK: u8 = 0xe9;
/// How many input bytes may wait for the guest; a line that does not fit is refused.
pub const INPUT_CAPACITY: usize = 4096;

/// Why a line was not queued for the guest.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A byte outside printable ASCII.
    #[error("debug console input must be printable ASCII (byte {0:#04x} is not)")]
    NotPrintable(u8),
    /// The guest has not read what waits.
    #[error(
        "debug console input is full ({waiting} bytes wait for the guest, {INPUT_CAPACITY} fit)"
    )]
    Full {
        /// Bytes waiting.
        waiting: usize,
    },
}

/// The input side, shared by the console device (which the guest reads) and the control
/// socket (which fills it).
#[derive(Clone, Default)]
pub struct DebugconInput(Arc<Mutex<VecDeque<u8>>>);

impl DebugconInput {
    /// Queues `line` and a newline for the guest, whole or not at all.
    pub fn push_line(&self, line: &str) -> Result<(), InputError> {
        if let Some(b) = line.bytes().find(|b| !(b' '..=b'~').contains(b)) {
            return Err(InputError::NotPrintable(b));
        }
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() + line.len() + 1 > INPUT_CAPACITY {
            return Err(InputError::Full {
                waiting: queue.len(),
            });
        }
        queue.extend(line.bytes());
        queue.push_back(b'\n');
        Ok(())
    }

    fn pop(&self) -> Option<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

/// Appends guest output on port 0xe9 to a sink, and gives the guest its input.
pub struct DebugConsole {
    out: Box<dyn Write + Send>,
    input: DebugconInput,
    error_reported: bool,
}

impl DebugConsole {
    /// A console writing to `out` (normally a file opened for appending) and reading
    /// `input`.
    pub fn new(out: Box<dyn Write + Send>, input: DebugconInput) -> Self {
        Self {
            out,
            input,
            error_reported: false,
        }
    }
}

impl PioDevice for DebugConsole {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        // A string IN (`rep insb`) arrives as one slice: each byte is the next one.
        for b in data {
            *b = self.input.pop().unwrap_or(DEBUGCON_READBACK);
        }
    }

    fn write(&mut self, _offset: u16, data: &[u8]) {
        // A string OUT (`rep outsb`) arrives as one slice: every byte of it is output.
        if let Err(e) = self.out.write_all(data).and_then(|()| self.out.flush()) {
            if !self.error_reported {
                self.error_reported = true;
                log::warn!("debug console output is lost: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn bytes_are_appended_to_the_file_and_reads_return_e9() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(b"old:").expect("write");
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(file.path())
            .expect("open");
        let mut con = DebugConsole::new(Box::new(out), DebugconInput::default());
        for b in b"ok 1\n" {
            con.write(0, &[*b]);
        }
        con.write(0, b"string io\n");
        let mut r = [0u8; 1];
        con.read(0, &mut r);
        assert_eq!(r, [0xe9]);
        let mut text = String::new();
        file.reopen()
            .expect("reopen")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "old:ok 1\nstring io\n");
    }

    #[test]
    fn the_guest_reads_queued_lines_in_order_then_e9() {
        let input = DebugconInput::default();
        let mut con = DebugConsole::new(Box::new(std::io::sink()), input.clone());
        input.push_line("ack 1 ok").expect("push");
        input.push_line("ack 2 error: no").expect("push");
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        loop {
            con.read(0, &mut b);
            if b[0] == DEBUGCON_READBACK {
                break;
            }
            got.push(b[0]);
        }
        assert_eq!(got, b"ack 1 ok\nack 2 error: no\n");
        // A string read past the end fills with the readback value.
        input.push_line("x").expect("push");
        let mut s = [0u8; 4];
        con.read(0, &mut s);
        assert_eq!(s, [b'x', b'\n', 0xe9, 0xe9]);
    }

    #[test]
    fn input_is_printable_ascii_and_bounded() {
        let input = DebugconInput::default();
        assert_eq!(
            input.push_line("a\tb"),
            Err(InputError::NotPrintable(b'\t'))
        );
        assert_eq!(
            input.push_line("caf\u{e9}"),
            Err(InputError::NotPrintable(0xc3))
        );
        let line = "y".repeat(INPUT_CAPACITY / 2);
        input.push_line(&line).expect("first half");
        assert_eq!(
            input.push_line(&line),
            Err(InputError::Full {
                waiting: line.len() + 1
            })
        );
        // Nothing of a refused line was queued.
        let mut con = DebugConsole::new(Box::new(std::io::sink()), input.clone());
        let mut all = vec![0u8; INPUT_CAPACITY];
        con.read(0, &mut all);
        assert_eq!(all.iter().filter(|b| **b == b'y').count(), line.len());
        input.push_line(&line).expect("room again");
    }
}
