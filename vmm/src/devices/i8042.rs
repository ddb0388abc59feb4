// SPDX-License-Identifier: GPL-2.0

//! The reset line of the 8042 keyboard controller, port 0x64.
//!
//! Linux's `reboot=k` (hvhost's default command line) resets by writing the "pulse reset"
//! command 0xfe to port 0x64 after waiting for the controller's input buffer to drain. This
//! device implements exactly that: the status register reads 0 (buffers empty, so the wait
//! ends at once) and 0xfe requests a reset. There is no keyboard behind it.

use std::sync::Arc;

use super::PioDevice;
use crate::control::{VmControl, VmExitReason};

/// The 8042 command/status port.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// 8042 command: pulse the CPU reset line.
pub const CMD_RESET_CPU: u8 = 0xfe;

/// The 8042 command port, reset only.
pub struct I8042Reset {
    control: Arc<VmControl>,
}

impl I8042Reset {
    /// A device that ends the VM through `control` on a reset pulse.
    pub fn new(control: Arc<VmControl>) -> Self {
        Self { control }
    }
}

impl PioDevice for I8042Reset {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u16, data: &[u8]) {
        if data.first() == Some(&CMD_RESET_CPU) {
            log::info!("guest requested reset (8042 reset pulse)");
            self.control.request_exit(VmExitReason::Reset);
        } else {
            log::debug!("ignoring 8042 command {data:02x?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EventFd;

    #[test]
    fn reset_pulse_requests_reset() {
        let ctl = Arc::new(VmControl::new(
            EventFd::new(libc::EFD_NONBLOCK).expect("eventfd"),
        ));
        let mut dev = I8042Reset::new(ctl.clone());
        let mut status = [0xffu8];
        dev.read(0, &mut status);
        assert_eq!(status, [0]);
        dev.write(0, &[0xaa]);
        assert!(!ctl.should_stop());
        dev.write(0, &[CMD_RESET_CPU]);
        assert_eq!(ctl.reason(), Some(VmExitReason::Reset));
    }
}
