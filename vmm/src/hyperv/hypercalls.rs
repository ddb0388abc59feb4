// SPDX-License-Identifier: GPL-2.0

//! Hypercalls arriving through the trampoline: decode the control word
//! (RCX) with `hvcall`, validate the parameters (RDX, R8: GPAs, or values
//! for fast calls), route by connection ID, and return the result word for
//! RAX.
//!
//! Statuses: the control word's (INVALID_HYPERCALL_CODE / _INPUT) from
//! `hvcall::hypercall::Control::decode`; a misaligned or page-crossing
//! input GPA is INVALID_ALIGNMENT; an input GPA outside RAM is
//! INVALID_PARAMETER; unknown connections are INVALID_CONNECTION_ID (the
//! TLFS; KVM's in-kernel HvSignalEvent says INVALID_PORT_ID); a handler's
//! full queue is INSUFFICIENT_BUFFERS. Codes hvcall knows but hvhost does
//! not implement are INVALID_HYPERCALL_CODE.

use std::sync::atomic::Ordering;

use hvcall::hypercall::{
    check_param_gpa, CallCode, CallResult, Control, HvStatus, PostMessageInput, SignalEventInput,
};
use zerocopy::FromBytes;

use super::Partition;

impl Partition {
    /// Serves one hypercall from VP `vp`; returns RAX.
    pub fn hypercall(&self, vp: u32, rcx: u64, rdx: u64, r8: u64) -> u64 {
        self.stats.hypercalls.fetch_add(1, Ordering::Relaxed);
        let status = match Control::decode(rcx) {
            Ok(control) => self.dispatch(vp, control, rdx, r8),
            Err(status) => status,
        };
        if !status.is_success() {
            self.stats
                .hypercalls_refused
                .fetch_add(1, Ordering::Relaxed);
            log::trace!("VP {vp}: hypercall {rcx:#x} -> {status}");
        }
        CallResult::status(status).to_bits()
    }

    fn dispatch(&self, vp: u32, control: Control, rdx: u64, _r8: u64) -> HvStatus {
        if control.var_header != 0 {
            // None of the calls served here has a variable header.
            return HvStatus::INVALID_HYPERCALL_INPUT;
        }
        match control.code {
            CallCode::NOTIFY_LONG_SPIN_WAIT => HvStatus::SUCCESS,
            CallCode::POST_MESSAGE => {
                if control.fast {
                    // The 256-byte input cannot travel in two registers (no XMM
                    // fast input is advertised).
                    return HvStatus::INVALID_HYPERCALL_INPUT;
                }
                let input = match self.read_input::<PostMessageInput>(rdx) {
                    Ok(input) => input,
                    Err(status) => return status,
                };
                if let Err(status) = input.validate() {
                    return status;
                }
                self.connections().post_message(
                    input.connection_id,
                    vp,
                    input.message_type,
                    input.body(),
                )
            }
            CallCode::SIGNAL_EVENT => {
                let input = if control.fast {
                    SignalEventInput::from_fast(rdx)
                } else {
                    match self.read_input::<SignalEventInput>(rdx) {
                        Ok(input) => input,
                        Err(status) => return status,
                    }
                };
                if let Err(status) = input.validate() {
                    return status;
                }
                self.connections()
                    .signal_event(input.connection_id, vp, input.flag_number)
            }
            _ => HvStatus::INVALID_HYPERCALL_CODE,
        }
    }

    /// Copies a slow call's input block out of guest memory (so that the
    /// guest cannot change it while it is validated and used).
    fn read_input<T: FromBytes>(&self, gpa: u64) -> Result<T, HvStatus> {
        let len = std::mem::size_of::<T>();
        check_param_gpa(gpa, len as u64)?;
        if !self.memory().is_ram(gpa, len as u64) {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let mut buf = vec![0u8; len];
        self.memory()
            .read(gpa, &mut buf)
            .map_err(|_| HvStatus::INVALID_PARAMETER)?;
        T::read_from_bytes(&buf).map_err(|_| HvStatus::INVALID_PARAMETER)
    }
}

#[cfg(test)]
mod tests {
    use super::super::connections::{EventHandler, MessageHandler};
    use super::super::guest_mem::{FakeMemory, GuestPages};
    use super::super::synic::tests::Irqs;
    use super::*;
    use hvcall::advertise;
    use std::sync::{Arc, Mutex};
    use zerocopy::IntoBytes;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u32, u32, Vec<u8>)>>);

    impl MessageHandler for Recorder {
        fn post_message(&self, vp: u32, ty: u32, payload: &[u8]) -> Result<(), HvStatus> {
            self.0
                .lock()
                .expect("lock")
                .push((vp, ty, payload.to_vec()));
            Ok(())
        }
    }

    impl EventHandler for Recorder {
        fn signal_event(&self, vp: u32, flag: u16) -> Result<(), HvStatus> {
            self.0
                .lock()
                .expect("lock")
                .push((vp, u32::from(flag), vec![]));
            Ok(())
        }
    }

    fn setup() -> (Arc<FakeMemory>, Arc<Partition>, Arc<Recorder>) {
        let mem = Arc::new(FakeMemory::new(0x10_0000));
        let p = Partition::new(2, mem.clone(), Arc::new(Irqs::default()), None).expect("partition");
        let rec = Arc::new(Recorder::default());
        p.connections()
            .register_message(7, rec.clone())
            .expect("msg");
        p.connections().register_event(9, rec.clone()).expect("evt");
        (mem, p, rec)
    }

    fn status(rax: u64) -> HvStatus {
        CallResult::from_bits(rax).status
    }

    #[test]
    fn post_message_routes_and_validates() {
        let (mem, p, rec) = setup();
        let input = PostMessageInput::new(7, 3, b"ping").expect("fits");
        mem.write(0x2000, input.as_bytes()).expect("write");
        let rcx = Control::new(CallCode::POST_MESSAGE).to_bits();
        assert_eq!(status(p.hypercall(1, rcx, 0x2000, 0)), HvStatus::SUCCESS);
        assert_eq!(rec.0.lock().expect("lock")[0], (1, 3, b"ping".to_vec()));
        assert_eq!(
            status(p.hypercall(1, rcx, 0x2004, 0)),
            HvStatus::INVALID_ALIGNMENT
        );
        assert_eq!(
            status(p.hypercall(1, rcx, 0x2f08, 0)),
            HvStatus::INVALID_ALIGNMENT
        );
        assert_eq!(
            status(p.hypercall(1, rcx, 0x4000_0000, 0)),
            HvStatus::INVALID_PARAMETER
        );
        let rcx_fast = Control::new(CallCode::POST_MESSAGE).with_fast().to_bits();
        assert_eq!(
            status(p.hypercall(1, rcx_fast, 0x2000, 0)),
            HvStatus::INVALID_HYPERCALL_INPUT
        );
        let other = PostMessageInput::new(8, 3, b"x").expect("fits");
        mem.write(0x3000, other.as_bytes()).expect("write");
        assert_eq!(
            status(p.hypercall(0, rcx, 0x3000, 0)),
            HvStatus::INVALID_CONNECTION_ID
        );
        let big = PostMessageInput {
            payload_size: 241,
            ..input
        };
        mem.write(0x3000, big.as_bytes()).expect("write");
        assert_eq!(
            status(p.hypercall(0, rcx, 0x3000, 0)),
            HvStatus::INVALID_PARAMETER
        );
    }

    #[test]
    fn signal_event_fast_and_slow() {
        let (mem, p, rec) = setup();
        let fast = Control::new(CallCode::SIGNAL_EVENT).with_fast().to_bits();
        let input = SignalEventInput {
            connection_id: 9,
            flag_number: 4,
            rsvd: 0,
        };
        assert_eq!(
            status(p.hypercall(0, fast, input.to_fast(), 0)),
            HvStatus::SUCCESS
        );
        mem.write(0x1008, input.as_bytes()).expect("write");
        let slow = Control::new(CallCode::SIGNAL_EVENT).to_bits();
        assert_eq!(status(p.hypercall(1, slow, 0x1008, 0)), HvStatus::SUCCESS);
        assert_eq!(rec.0.lock().expect("lock").len(), 2);
        assert_eq!(
            status(p.hypercall(0, fast, 10, 0)),
            HvStatus::INVALID_CONNECTION_ID
        );
        assert_eq!(
            status(p.hypercall(0, fast, 9 | 1 << 48, 0)),
            HvStatus::INVALID_HYPERCALL_INPUT
        );
    }

    #[test]
    fn control_word_errors_and_null_call() {
        let (_mem, p, _rec) = setup();
        let spin = Control::new(CallCode::NOTIFY_LONG_SPIN_WAIT)
            .with_fast()
            .to_bits();
        assert_eq!(p.hypercall(0, spin, 0, 0), 0);
        assert_eq!(
            status(p.hypercall(0, 0x7777, 0, 0)),
            HvStatus::INVALID_HYPERCALL_CODE
        );
        assert_eq!(
            status(p.hypercall(0, spin | 1 << 63, 0, 0)),
            HvStatus::INVALID_HYPERCALL_INPUT
        );
        assert_eq!(
            status(p.hypercall(0, spin | 1 << 17, 0, 0)),
            HvStatus::INVALID_HYPERCALL_INPUT
        );
        let flush = Control::new(CallCode::FLUSH_VIRTUAL_ADDRESS_SPACE).to_bits();
        assert_eq!(
            status(p.hypercall(0, flush, 0, 0)),
            HvStatus::INVALID_HYPERCALL_CODE
        );
    }

    #[test]
    fn every_advertised_call_is_implemented() {
        let (_mem, p, _rec) = setup();
        for (_, _, calls) in advertise::PRIVILEGE_IMPLS {
            for code in *calls {
                let rax = p.hypercall(0, Control::new(*code).with_fast().to_bits(), 0, 0);
                assert_ne!(status(rax), HvStatus::INVALID_HYPERCALL_CODE, "{code}");
            }
        }
    }
}
