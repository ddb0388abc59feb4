// SPDX-License-Identifier: GPL-2.0

//! The Hyper-V test device's port protocol, shared by the guest module's
//! contract tests and hvhost's `--test-device`: QEMU's `hyperv-testdev`
//! (`hw/misc/hyperv_testdev.c`), so that the same guest tests run on QEMU
//! and on hvhost, plus hvhost's fault-injection commands (not in QEMU),
//! which make the host misbehave on purpose for the guest's hostile-host
//! tests.
//!
//! One 32-bit port; a write of `conn << 24 | cmd << 16 | vp_index << 8 |
//! sint` runs a command.

/// The device's port.
pub const PORT: u16 = 0x3000;

/// Commands.
pub mod cmd {
    /// Create a SINT route (vp, sint).
    pub const SINT_ROUTE_CREATE: u8 = 1;
    /// Destroy a SINT route.
    pub const SINT_ROUTE_DESTROY: u8 = 2;
    /// Raise a SINT (an interrupt without a message).
    pub const SINT_ROUTE_SET_SINT: u8 = 3;
    /// Create message connection `conn`, which echoes every posted message
    /// (same type and payload) into the SIMP slot of (vp, sint).
    pub const MSG_CONN_CREATE: u8 = 4;
    /// Destroy a message connection.
    pub const MSG_CONN_DESTROY: u8 = 5;
    /// Create event connection `conn`, which sets flag number `conn` of
    /// (vp, sint) when signalled.
    pub const EVT_CONN_CREATE: u8 = 6;
    /// Destroy an event connection.
    pub const EVT_CONN_DESTROY: u8 = 7;
    /// hvhost only: deliver to (vp, sint) a message of type
    /// [`super::FAULT_MESSAGE_TYPE`] whose header claims a 255-byte payload
    /// (the slot holds 240).
    pub const FAULT_OVERSIZE_MESSAGE: u8 = 0x80;
    /// hvhost only: deliver to (vp, sint) a message of type
    /// [`super::FAULT_UNKNOWN_MESSAGE_TYPE`].
    pub const FAULT_UNKNOWN_TYPE_MESSAGE: u8 = 0x81;
    /// hvhost only: set event flag [`super::FAULT_EVENT_FLAG`] of (vp, sint)
    /// and interrupt.
    pub const FAULT_EVENT_OUT_OF_RANGE: u8 = 0x82;
}

/// The message type the contract tests post and accept; the oversize fault
/// message carries it too, so that only its size is wrong.
pub const FAULT_MESSAGE_TYPE: u32 = 0x7e57;
/// A message type the contract tests do not accept.
pub const FAULT_UNKNOWN_MESSAGE_TYPE: u32 = 0x7e58;
/// The last event flag of a SINT (2047), beyond what any consumer of ours
/// declares.
pub const FAULT_EVENT_FLAG: usize = 2047;

/// A command word, split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// Connection ID (bits 31:24).
    pub conn: u8,
    /// Command (bits 23:16).
    pub cmd: u8,
    /// Target VP index (bits 15:8).
    pub vp: u8,
    /// Target SINT (bits 7:0).
    pub sint: u8,
}

impl Command {
    /// Splits a written word.
    pub const fn decode(word: u32) -> Self {
        let [sint, vp, cmd, conn] = word.to_le_bytes();
        Self {
            conn,
            cmd,
            vp,
            sint,
        }
    }

    /// The word the guest writes.
    pub const fn encode(self) -> u32 {
        u32::from_le_bytes([self.sint, self.vp, self.cmd, self.conn])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_qemu() {
        let c = Command {
            conn: 0x21,
            cmd: cmd::MSG_CONN_CREATE,
            vp: 1,
            sint: 5,
        };
        assert_eq!(c.encode(), 0x21 << 24 | 4 << 16 | 1 << 8 | 5);
        assert_eq!(Command::decode(c.encode()), c);
    }
}
