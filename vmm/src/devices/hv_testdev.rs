// SPDX-License-Identifier: GPL-2.0

//! The Hyper-V test device (`--test-device`): QEMU's `hyperv-testdev` port
//! protocol, so that guest SynIC tests run unchanged on QEMU and hvhost.
//!
//! One 32-bit port at 0x3000; a write of `conn << 24 | cmd << 16 |
//! vp_index << 8 | sint` runs a command (reads return 0):
//! 1. create a SINT route (vp, sint);  2. destroy it;  3. raise the SINT
//!    (interrupt without message);
//! 4. create message connection `conn` that echoes every posted message
//!    (same type and payload) into the SIMP slot of (vp, sint);  5. destroy it;
//! 6. create event connection `conn` that sets event flag number `conn` of
//!    (vp, sint) whenever the guest signals it;  7. destroy it.
//!
//! QEMU asserts (aborts the VM) on misuse; hvhost logs it and ignores the
//! command: a guest must never be able to kill its host.
//!
//! hvhost adds fault injection for the guest's hostile-host tests (0x80:
//! a message whose header claims 255 payload bytes; 0x81: a message of a
//! type the tests do not accept; 0x82: event flag 2047). The protocol's
//! constants are shared with the guest in `hvcall::testdev`.

use std::collections::HashSet;
use std::sync::Arc;

use hvcall::hypercall::{HvStatus, HV_MESSAGE_PAYLOAD_BYTE_COUNT};
use hvcall::synic::{HvMessage, MessageType, SINT_COUNT};

use super::PioDevice;
use crate::hyperv::connections::{EventHandler, MessageHandler};
use crate::hyperv::Partition;

pub use hvcall::testdev::{cmd, Command, PORT as HV_TESTDEV_PORT};
use hvcall::testdev::{FAULT_EVENT_FLAG, FAULT_MESSAGE_TYPE, FAULT_UNKNOWN_MESSAGE_TYPE};

/// Echoes posted messages to one SINT of one VP.
struct EchoConnection {
    partition: Arc<Partition>,
    vp: u32,
    sint: usize,
}

impl MessageHandler for EchoConnection {
    fn post_message(
        &self,
        _from_vp: u32,
        message_type: u32,
        payload: &[u8],
    ) -> Result<(), HvStatus> {
        let msg = HvMessage::new(MessageType(message_type), payload)
            .ok_or(HvStatus::INVALID_PARAMETER)?;
        self.partition
            .synic(self.vp)
            .ok_or(HvStatus::INVALID_VP_INDEX)?
            .post_message(self.sint, &msg)
    }
}

/// Sets flag `flag` of one SINT of one VP.
struct FlagConnection {
    partition: Arc<Partition>,
    vp: u32,
    sint: usize,
    flag: usize,
}

impl EventHandler for FlagConnection {
    fn signal_event(&self, _from_vp: u32, _flag_number: u16) -> Result<(), HvStatus> {
        self.partition
            .synic(self.vp)
            .ok_or(HvStatus::INVALID_VP_INDEX)?
            .signal_event(self.sint, self.flag)
            .map(|_| ())
    }
}

/// The test device.
pub struct HvTestDev {
    partition: Arc<Partition>,
    routes: HashSet<(u8, u8)>,
    msg_conns: HashSet<u8>,
    evt_conns: HashSet<u8>,
}

impl HvTestDev {
    /// A device serving `partition`.
    pub fn new(partition: Arc<Partition>) -> Self {
        Self {
            partition,
            routes: HashSet::new(),
            msg_conns: HashSet::new(),
            evt_conns: HashSet::new(),
        }
    }

    fn target_ok(&self, c: Command) -> bool {
        if u32::from(c.vp) >= self.partition.vp_count() || usize::from(c.sint) >= SINT_COUNT {
            log::warn!(
                "hv-testdev: {c:?} names VP {} SINT {}, which does not exist; ignored",
                c.vp,
                c.sint
            );
            return false;
        }
        true
    }

    /// Runs one command; misuse is logged and ignored.
    pub fn command(&mut self, c: Command) {
        let ignore = |why: &str| log::warn!("hv-testdev: {c:?}: {why}; ignored");
        match c.cmd {
            cmd::SINT_ROUTE_CREATE => {
                if self.target_ok(c) && !self.routes.insert((c.vp, c.sint)) {
                    ignore("the route already exists");
                }
            }
            cmd::SINT_ROUTE_DESTROY => {
                if !self.routes.remove(&(c.vp, c.sint)) {
                    ignore("no such route");
                }
            }
            cmd::SINT_ROUTE_SET_SINT => {
                if !self.routes.contains(&(c.vp, c.sint)) {
                    ignore("no such route");
                } else if let Some(synic) = self.partition.synic(c.vp.into()) {
                    synic.raise(c.sint.into());
                }
            }
            cmd::MSG_CONN_CREATE => {
                if !self.target_ok(c) {
                    return;
                }
                let handler = Arc::new(EchoConnection {
                    partition: self.partition.clone(),
                    vp: c.vp.into(),
                    sint: c.sint.into(),
                });
                match self
                    .partition
                    .connections()
                    .register_message(c.conn.into(), handler)
                {
                    Ok(()) => {
                        self.msg_conns.insert(c.conn);
                    }
                    Err(e) => ignore(&e.to_string()),
                }
            }
            cmd::MSG_CONN_DESTROY => {
                if self.msg_conns.remove(&c.conn) {
                    self.partition
                        .connections()
                        .unregister_message(c.conn.into());
                } else {
                    ignore("no such message connection");
                }
            }
            cmd::EVT_CONN_CREATE => {
                if !self.target_ok(c) {
                    return;
                }
                let handler = Arc::new(FlagConnection {
                    partition: self.partition.clone(),
                    vp: c.vp.into(),
                    sint: c.sint.into(),
                    flag: c.conn.into(),
                });
                match self
                    .partition
                    .connections()
                    .register_event(c.conn.into(), handler)
                {
                    Ok(()) => {
                        self.evt_conns.insert(c.conn);
                    }
                    Err(e) => ignore(&e.to_string()),
                }
            }
            cmd::EVT_CONN_DESTROY => {
                if self.evt_conns.remove(&c.conn) {
                    self.partition.connections().unregister_event(c.conn.into());
                } else {
                    ignore("no such event connection");
                }
            }
            cmd::FAULT_OVERSIZE_MESSAGE | cmd::FAULT_UNKNOWN_TYPE_MESSAGE => {
                if !self.target_ok(c) {
                    return;
                }
                let (ty, size) = if c.cmd == cmd::FAULT_OVERSIZE_MESSAGE {
                    (FAULT_MESSAGE_TYPE, 255)
                } else {
                    (FAULT_UNKNOWN_MESSAGE_TYPE, 8)
                };
                let Some(mut msg) = HvMessage::new(MessageType(ty), &[0x5a; 8]) else {
                    return;
                };
                // The header lies about the size on purpose.
                msg.header.payload_size = size;
                log::info!("hv-testdev: fault injection {c:?}: type {ty:#x}, payload_size {size}");
                if let Some(synic) = self.partition.synic(c.vp.into()) {
                    if let Err(status) = synic.post_message(c.sint.into(), &msg) {
                        ignore(&format!("delivery failed: {status}"));
                    }
                }
            }
            cmd::FAULT_EVENT_OUT_OF_RANGE => {
                if !self.target_ok(c) {
                    return;
                }
                log::info!("hv-testdev: fault injection {c:?}: event flag {FAULT_EVENT_FLAG}");
                if let Some(synic) = self.partition.synic(c.vp.into()) {
                    if let Err(status) = synic.signal_event(c.sint.into(), FAULT_EVENT_FLAG) {
                        ignore(&format!("delivery failed: {status}"));
                    }
                }
            }
            _ => ignore("unknown command"),
        }
    }
}

/// Largest payload the echo can carry back (QEMU asserts below this).
pub const MAX_ECHO_PAYLOAD: usize = HV_MESSAGE_PAYLOAD_BYTE_COUNT;

impl PioDevice for HvTestDev {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        match (offset, <[u8; 4]>::try_from(data)) {
            (0, Ok(bytes)) => self.command(Command::decode(u32::from_le_bytes(bytes))),
            _ => log::warn!(
                "hv-testdev: {}-byte write at offset {offset} ignored (32-bit writes only)",
                data.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperv::guest_mem::{FakeMemory, GuestPages};
    use crate::hyperv::msrs::VpHv;
    use crate::hyperv::synic::InterruptSink;
    use hvcall::hypercall::{CallCode, CallResult, Control, PostMessageInput, SignalEventInput};
    use hvcall::msr;
    use hvcall::synic::PageMsr;
    use std::sync::Mutex;
    use zerocopy::IntoBytes;

    #[derive(Default)]
    struct Irqs(Mutex<Vec<(u32, u8)>>);
    impl InterruptSink for Irqs {
        fn raise(&self, apic: u32, vector: u8) {
            self.0.lock().expect("lock").push((apic, vector));
        }
    }

    fn out(dev: &mut HvTestDev, conn: u8, cmd: u8, vp: u8, sint: u8) {
        dev.write(
            0,
            &Command {
                conn,
                cmd,
                vp,
                sint,
            }
            .encode()
            .to_le_bytes(),
        );
    }

    /// Two VPs; VP 1 has its SynIC on with SIMP at 0x10000, SIEFP at 0x11000.
    fn setup() -> (Arc<FakeMemory>, Arc<Irqs>, Arc<Partition>, HvTestDev, VpHv) {
        let mem = Arc::new(FakeMemory::new(0x20000));
        let irqs = Arc::new(Irqs::default());
        let p = Partition::new(2, mem.clone(), irqs.clone(), None).expect("partition");
        let mut vp1 = VpHv::new(1, p.clone());
        vp1.write(msr::SIMP, PageMsr::enabled_at(0x10000).0)
            .expect("simp");
        vp1.write(msr::SIEFP, PageMsr::enabled_at(0x11000).0)
            .expect("siefp");
        vp1.write(msr::SCONTROL, 1).expect("scontrol");
        vp1.write(msr::SINT0 + 3, 0x55).expect("sint3");
        let dev = HvTestDev::new(p.clone());
        (mem, irqs, p, dev, vp1)
    }

    #[test]
    fn command_word_layout() {
        let c = Command::decode(0x0a04_0103);
        assert_eq!(
            c,
            Command {
                conn: 0x0a,
                cmd: 4,
                vp: 1,
                sint: 3
            }
        );
        assert_eq!(c.encode(), 0x0a04_0103);
    }

    #[test]
    fn message_connection_echoes_to_the_slot() {
        let (mem, irqs, p, mut dev, _vp1) = setup();
        out(&mut dev, 5, cmd::MSG_CONN_CREATE, 1, 3);
        let input = PostMessageInput::new(5, 0x77, b"hello").expect("fits");
        mem.write(0x8000, input.as_bytes()).expect("input");
        let rax = p.hypercall(0, Control::new(CallCode::POST_MESSAGE).to_bits(), 0x8000, 0);
        assert_eq!(CallResult::from_bits(rax).status, HvStatus::SUCCESS);
        let mut slot = [0u8; 256];
        mem.read(0x10000 + 3 * 256, &mut slot).expect("slot");
        let msg: HvMessage = zerocopy::transmute!(slot);
        assert_eq!((msg.header.message_type, msg.body()), (0x77, &b"hello"[..]));
        assert_eq!(*irqs.0.lock().expect("lock"), vec![(1, 0x55)]);
        out(&mut dev, 5, cmd::MSG_CONN_DESTROY, 0, 0);
        let rax = p.hypercall(0, Control::new(CallCode::POST_MESSAGE).to_bits(), 0x8000, 0);
        assert_eq!(
            CallResult::from_bits(rax).status,
            HvStatus::INVALID_CONNECTION_ID
        );
    }

    #[test]
    fn fault_injection_delivers_what_it_says() {
        let (mem, irqs, _p, mut dev, _vp1) = setup();
        out(&mut dev, 0, cmd::FAULT_OVERSIZE_MESSAGE, 1, 3);
        let mut slot = [0u8; 256];
        mem.read(0x10000 + 3 * 256, &mut slot).expect("slot");
        let msg: HvMessage = zerocopy::transmute!(slot);
        assert_eq!(
            (msg.header.message_type, msg.header.payload_size),
            (FAULT_MESSAGE_TYPE, 255)
        );
        assert_eq!(irqs.0.lock().expect("lock").len(), 1);
        // Out of range targets are ignored, not delivered.
        out(&mut dev, 0, cmd::FAULT_EVENT_OUT_OF_RANGE, 9, 3);
        assert_eq!(irqs.0.lock().expect("lock").len(), 1);
    }

    #[test]
    fn event_connection_sets_flag_conn_id() {
        let (mem, irqs, p, mut dev, _vp1) = setup();
        out(&mut dev, 9, cmd::EVT_CONN_CREATE, 1, 3);
        let fast = Control::new(CallCode::SIGNAL_EVENT).with_fast().to_bits();
        let rdx = SignalEventInput {
            connection_id: 9,
            flag_number: 0,
            rsvd: 0,
        }
        .to_fast();
        assert_eq!(
            CallResult::from_bits(p.hypercall(1, fast, rdx, 0)).status,
            HvStatus::SUCCESS
        );
        assert_eq!(mem.load_u32(0x11000 + 3 * 256).expect("flags"), 1 << 9);
        assert_eq!(irqs.0.lock().expect("lock").len(), 1);
        out(&mut dev, 9, cmd::EVT_CONN_DESTROY, 0, 0);
        assert_eq!(
            CallResult::from_bits(p.hypercall(1, fast, rdx, 0)).status,
            HvStatus::INVALID_CONNECTION_ID
        );
    }

    #[test]
    fn routes_raise_and_misuse_is_ignored() {
        let (_mem, irqs, _p, mut dev, _vp1) = setup();
        out(&mut dev, 0, cmd::SINT_ROUTE_CREATE, 1, 3);
        out(&mut dev, 0, cmd::SINT_ROUTE_SET_SINT, 1, 3);
        assert_eq!(*irqs.0.lock().expect("lock"), vec![(1, 0x55)]);
        // Misuse: duplicates, unknown routes and connections, bad targets, bad widths.
        out(&mut dev, 0, cmd::SINT_ROUTE_CREATE, 1, 3);
        out(&mut dev, 0, cmd::SINT_ROUTE_DESTROY, 0, 9);
        out(&mut dev, 0, cmd::SINT_ROUTE_SET_SINT, 0, 9);
        out(&mut dev, 3, cmd::MSG_CONN_CREATE, 1, 2);
        out(&mut dev, 3, cmd::MSG_CONN_CREATE, 1, 2);
        out(&mut dev, 4, cmd::MSG_CONN_DESTROY, 0, 0);
        out(&mut dev, 4, cmd::EVT_CONN_DESTROY, 0, 0);
        out(&mut dev, 4, cmd::EVT_CONN_CREATE, 7, 2);
        out(&mut dev, 4, cmd::MSG_CONN_CREATE, 0, 16);
        out(&mut dev, 0, 0xff, 0, 0);
        dev.write(0, &[1, 2]);
        let mut buf = [0xffu8; 4];
        dev.read(0, &mut buf);
        assert_eq!(buf, [0; 4]);
        out(&mut dev, 0, cmd::SINT_ROUTE_DESTROY, 1, 3);
        assert!(dev.routes.is_empty());
        assert_eq!(dev.msg_conns.len(), 1);
    }
}
