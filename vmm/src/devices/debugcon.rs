// SPDX-License-Identifier: GPL-2.0

//! The debug console: port 0xe9, like QEMU's `isa-debugcon` and Cloud Hypervisor's debug
//! console. Every byte the guest writes there is appended to a host file, unbuffered, so the
//! file is complete whenever hvhost exits. Reads return 0xe9 so a guest can detect it.
//!
//! The test rig uses this as its result channel, which is why nothing is filtered or
//! reordered here.

use std::io::Write;

use super::PioDevice;

/// The debug console port.
pub const DEBUGCON_PORT: u16 = 0xe9;
/// What a read of the port returns (QEMU's convention).
pub const DEBUGCON_READBACK: u8 = 0xe9;

/// Appends guest output on port 0xe9 to a sink.
pub struct DebugConsole {
    out: Box<dyn Write + Send>,
    error_reported: bool,
}

impl DebugConsole {
    /// A console writing to `out` (normally a file opened for appending).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            error_reported: false,
        }
    }
}

impl PioDevice for DebugConsole {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(DEBUGCON_READBACK);
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
        let mut con = DebugConsole::new(Box::new(out));
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
}
