// SPDX-License-Identifier: GPL-2.0

//! The partition's guest-facing paths: synthetic MSR reads and writes,
//! hypercalls (control word, input pages, rep counts), and SynIC delivery
//! of messages and events into pages the guest wrote, in any order, on a
//! partition of 1 to 4 VPs over 64 pages of fake RAM.
//!
//! The three targets run the same operations; each draws most often from
//! its own, so that its path is explored deep while the others change the
//! state under it (a SIMP moved while messages queue, a hypercall page
//! disabled mid-call, ...).
//!
//! What must hold: a hypercall returns a status the TLFS defines, with no
//! more reps completed than asked; an interrupt goes to an existing VP on
//! a vector the guest may use (16 or above); nothing panics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hvcall::hypercall::{control_bits, CallCode, CallResult, Control, HvStatus, PostMessageInput};
use hvcall::synic::{HvMessage, MessageType};
use hvcall::{advertise, msr};
use zerocopy::IntoBytes;

use super::Choices;
use crate::hyperv::connections::{EventHandler, MessageHandler};
use crate::hyperv::guest_mem::{FakeMemory, GuestPages};
use crate::hyperv::msrs::VpHv;
use crate::hyperv::synic::InterruptSink;
use crate::hyperv::Partition;

/// Fake RAM: 64 pages.
const RAM: u64 = 64 * 4096;
/// At most this many operations an input.
const MAX_OPS: usize = 256;
/// The message connection a handler is registered on.
const MESSAGE_CONNECTION: u32 = 1;
/// The event connection a handler is registered on.
const EVENT_CONNECTION: u32 = 2;

/// Checks and counts every interrupt the partition raises.
struct CheckedSink {
    vps: u32,
    raised: AtomicU64,
}

impl InterruptSink for CheckedSink {
    fn raise(&self, apic_id: u32, vector: u8) {
        assert!(
            apic_id < self.vps,
            "interrupt to APIC {apic_id} of {} VPs",
            self.vps
        );
        assert!(vector >= 16, "interrupt on vector {vector}, below 16");
        self.raised.fetch_add(1, Ordering::Relaxed);
    }
}

/// What an input did, for the harness's own tests.
#[derive(Debug, Default)]
struct Outcome {
    /// Hypercalls that returned SUCCESS.
    calls_ok: u32,
    /// Interrupts raised.
    interrupts: u64,
}

/// A device behind the connections: accepts, or says its queue is full.
struct Device {
    full: bool,
}

impl MessageHandler for Device {
    fn post_message(&self, _vp: u32, _ty: u32, payload: &[u8]) -> Result<(), HvStatus> {
        assert!(payload.len() <= 240);
        if self.full {
            Err(HvStatus::INSUFFICIENT_BUFFERS)
        } else {
            Ok(())
        }
    }
}

impl EventHandler for Device {
    fn signal_event(&self, _vp: u32, _flag: u16) -> Result<(), HvStatus> {
        if self.full {
            Err(HvStatus::INSUFFICIENT_BUFFERS)
        } else {
            Ok(())
        }
    }
}

/// The MSRs the partition implements (from the advertised contract), and
/// synthetic ones it does not: the guest tries both.
fn msrs() -> &'static [u32] {
    static MSRS: OnceLock<Vec<u32>> = OnceLock::new();
    MSRS.get_or_init(|| {
        let mut v: Vec<u32> = advertise::implemented_msrs().collect();
        v.extend([
            msr::GUEST_OS_ID,
            msr::HYPERCALL,
            msr::VP_INDEX,
            msr::RESET,
            msr::EOI,
            msr::ICR,
            msr::VP_ASSIST_PAGE,
            msr::GUEST_IDLE,
            msr::CRASH_CTL,
            msr::TSC_INVARIANT_CONTROL,
            msr::SYNTHETIC_BASE + msr::SYNTHETIC_COUNT,
        ]);
        v
    })
}

/// A call code: one the contract knows (served or not), or any.
fn code(c: &mut Choices<'_>) -> CallCode {
    let known = CallCode::KNOWN;
    match usize::from(c.u8()) % (known.len() + 1) {
        i if i < known.len() => known[i].0,
        _ => CallCode(c.u16()),
    }
}

/// Which operations a target draws most often.
#[derive(Clone, Copy)]
enum Focus {
    Hypercall,
    Msr,
    Synic,
}

/// The operations [`run`] knows (0..=10).
const OPS: u8 = 11;

impl Focus {
    /// The target's own operations.
    fn group(self) -> &'static [u8] {
        match self {
            Focus::Msr => &[0, 1, 2],
            Focus::Hypercall => &[3, 4, 5],
            Focus::Synic => &[6, 7, 8, 9, 2],
        }
    }
}

/// A value shaped like what the guest writes: a page GPA with the enable
/// bit (inside RAM, at its end, far outside), a SINT or timer layout, or
/// raw bits.
fn value(c: &mut Choices<'_>) -> u64 {
    match c.u8() % 6 {
        0 => (u64::from(c.u8() % 64) << 12) | u64::from(c.u8() & 1),
        1 => (RAM - 4096) | 1 | (u64::from(c.u16()) << 32),
        2 => c.u64() | 1,
        // SINT: vector, masked, auto-EOI, polling.
        3 => u64::from(c.u8()) | (u64::from(c.u8() & 0x7) << 16),
        // STIMER config: enable, periodic, lazy, auto-enable, vector, direct, SINT.
        4 => u64::from(c.u8() & 0xf) | (u64::from(c.u8()) << 4) | (u64::from(c.u8() & 0x1f) << 12),
        _ => c.u64(),
    }
}

/// A GPA for a hypercall's input: aligned in RAM, misaligned, crossing a
/// page, past RAM, or raw.
fn gpa(c: &mut Choices<'_>) -> u64 {
    match c.u8() % 5 {
        0 => u64::from(c.u8() % 64) << 12,
        1 => (u64::from(c.u8() % 64) << 12) + u64::from(c.u16() % 4096),
        2 => RAM - u64::from(c.u8() % 16) * 8,
        3 => RAM + (u64::from(c.u8()) << 12),
        _ => c.u64(),
    }
}

/// A control word: a code with fast, variable-header, rep fields and
/// reserved bits chosen, or raw.
fn control(c: &mut Choices<'_>) -> u64 {
    if c.one_in(8) {
        return c.u64();
    }
    let mut ctl = Control::new(code(c));
    if c.bool() {
        ctl = ctl.with_fast();
    }
    let flags = c.u8();
    if flags & 1 != 0 {
        ctl = ctl.with_var_header(c.u16() & 0x3ff);
    }
    if flags & 2 != 0 {
        ctl = ctl.with_reps(c.u16() & 0xfff, c.u16() & 0xfff);
    }
    let mut bits = ctl.to_bits();
    if flags & 4 != 0 {
        bits |= control_bits::RSVD_MASK & c.u64();
    }
    bits
}

/// A HvPostMessage input for the guest to write: to the registered
/// connection or another, of any type and size.
fn post_input(c: &mut Choices<'_>) -> Vec<u8> {
    let conn = if c.bool() {
        MESSAGE_CONNECTION
    } else {
        c.u32()
    };
    let ty = c.u32();
    let len = c.len(255);
    match PostMessageInput::new(conn, ty, c.bytes(len.min(240))) {
        Some(mut input) if len > 240 => {
            input.payload_size = len as u32;
            input.as_bytes().to_vec()
        }
        Some(input) => input.as_bytes().to_vec(),
        None => c.bytes(256).to_vec(),
    }
}

fn run(data: &[u8], focus: Focus) -> Outcome {
    let mut out = Outcome::default();
    let mut c = Choices::new(data);
    let vps = 1 + u32::from(c.u8() % 4);
    let mem = Arc::new(FakeMemory::new(RAM as usize));
    let tsc_khz = c.bool().then_some(2_000_000);
    let sink = Arc::new(CheckedSink {
        vps,
        raised: AtomicU64::new(0),
    });
    let Ok(p) = Partition::new(vps, mem.clone(), sink.clone(), tsc_khz) else {
        return out;
    };
    let device = Arc::new(Device { full: c.bool() });
    // Both ids are valid: these cannot fail on a new partition.
    let _ = p
        .connections()
        .register_message(MESSAGE_CONNECTION, device.clone());
    let _ = p.connections().register_event(EVENT_CONNECTION, device);
    let mut vcpus: Vec<VpHv> = (0..vps).map(|i| VpHv::new(i, p.clone())).collect();

    for _ in 0..MAX_OPS {
        if c.is_empty() {
            break;
        }
        let vp = usize::from(c.u8()) % vcpus.len();
        // Half the operations come from the target's own group, half from
        // all.
        let b = c.u8();
        let op = if b & 0x80 == 0 {
            c_pick(focus.group(), b)
        } else {
            (b & 0x7f) % OPS
        };
        match op {
            0 => {
                let index = if c.one_in(8) { c.u32() } else { c.pick(msrs()) };
                let v = value(&mut c);
                if vcpus[vp].write(index, v).is_ok() && index == msr::GUEST_OS_ID {
                    assert_eq!(vcpus[vp].read(index), Ok(v));
                }
            }
            1 => {
                let index = if c.one_in(8) { c.u32() } else { c.pick(msrs()) };
                let _ = vcpus[vp].read(index);
            }
            // The guest enables its SynIC and pages, as a driver does.
            2 => {
                let page = u64::from(c.u8() % 64) << 12;
                let _ = vcpus[vp].write(msr::SCONTROL, 1);
                let _ = vcpus[vp].write(msr::SIMP, page | 1);
                let _ = vcpus[vp].write(msr::SIEFP, (page ^ 0x1000) | 1);
                let sint = msr::SINT0 + u32::from(c.u8() % 16);
                let _ = vcpus[vp].write(sint, u64::from(c.u8()));
            }
            3 => {
                let rcx = control(&mut c);
                let rdx = if c.bool() { gpa(&mut c) } else { c.u64() };
                let r8 = if c.bool() { gpa(&mut c) } else { c.u64() };
                let rax = p.hypercall(vp as u32, rcx, rdx, r8);
                let result = CallResult::from_bits(rax);
                assert!(
                    result.status.name().is_some(),
                    "hypercall {rcx:#x} returned unknown status {:?}",
                    result.status
                );
                let reps =
                    ((rcx & control_bits::REP_COUNT_MASK) >> control_bits::REP_COUNT_SHIFT) as u16;
                assert!(result.reps_completed <= reps.max(1));
                out.calls_ok += u32::from(result.status.is_success());
            }
            // HvPostMessage with its input page written first.
            4 => {
                let at = gpa(&mut c);
                let input = post_input(&mut c);
                let _ = mem.write(at, &input);
                let rcx = Control::new(CallCode::POST_MESSAGE).to_bits();
                let status = CallResult::from_bits(p.hypercall(vp as u32, rcx, at, 0)).status;
                assert!(status.name().is_some());
                out.calls_ok += u32::from(status.is_success());
            }
            // HvSignalEvent, fast: connection and flag in RDX.
            5 => {
                let conn = if c.bool() { EVENT_CONNECTION } else { c.u32() };
                let rdx = u64::from(conn) | (u64::from(c.u16()) << 32);
                let rcx = Control::new(CallCode::SIGNAL_EVENT).with_fast().to_bits();
                let status = CallResult::from_bits(p.hypercall(vp as u32, rcx, rdx, 0)).status;
                assert!(status.name().is_some());
                out.calls_ok += u32::from(status.is_success());
            }
            // A device posts a message to the VP (a host-side post).
            6 => {
                let sint = usize::from(c.u8() % 18);
                let len = c.len(240);
                let ty = MessageType(c.u32());
                if let (Some(synic), Some(msg)) =
                    (p.synic(vp as u32), HvMessage::new(ty, c.bytes(len)))
                {
                    let _ = synic.post_message(sint, &msg);
                }
            }
            7 => {
                if let Some(synic) = p.synic(vp as u32) {
                    let _ = synic.signal_event(usize::from(c.u8() % 18), usize::from(c.u16()));
                }
            }
            // The guest frees a slot (or scribbles on its pages), then EOM.
            8 => {
                let at = gpa(&mut c);
                let len = c.len(64);
                let _ = mem.write(at, c.bytes(len));
                if c.bool() {
                    let _ = vcpus[vp].write(msr::EOM, 0);
                }
            }
            9 => {
                if let Some(synic) = p.synic(vp as u32) {
                    synic.raise(usize::from(c.u8() % 18));
                }
            }
            _ => {
                let _ = vcpus[vp].write(msr::EOM, 0);
            }
        }
    }
    drop(vcpus);
    p.shutdown();
    out.interrupts = sink.raised.load(Ordering::Relaxed);
    out
}

/// `items[b % len]`.
fn c_pick(items: &[u8], b: u8) -> u8 {
    items[usize::from(b) % items.len()]
}

/// The hypercall path first.
pub fn hypercall(data: &[u8]) {
    run(data, Focus::Hypercall);
}

/// The synthetic MSRs first.
pub fn msr_write(data: &[u8]) {
    run(data, Focus::Msr);
}

/// SynIC delivery first.
pub fn synic(data: &[u8]) {
    run(data, Focus::Synic);
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// One VP that enables its SynIC (SIMP at page 4, SIEFP at 5, SINT2 on
    /// vector 48), gets a message from a device, posts one to the device
    /// with HvPostMessage and signals its event connection.
    pub fn driver_session() -> Vec<u8> {
        let mut s = vec![0, 0, 0]; // 1 VP, no TSC rate, the device has room
        s.extend([0, 0x80 | 2, 4, 2, 48]); // enable: page 4, SINT2, vector 48
        s.extend([0, 0x80 | 6, 2, 16]); // a device's message on SINT2, 16 bytes
        s.extend(1u32.to_le_bytes());
        s.extend([0xab; 16]);
        s.extend([0, 0x80 | 4, 0, 8, 1]); // HvPostMessage, input at page 8, to the device
        s.extend(1u32.to_le_bytes()); // message type 1
        s.extend([8]);
        s.extend([0xcd; 8]);
        s.extend([0, 0x80 | 5, 1, 3, 0]); // HvSignalEvent on its connection, flag 3
        s
    }

    #[test]
    fn a_driver_like_input_gets_messages_through_both_ways() {
        for focus in [Focus::Hypercall, Focus::Msr, Focus::Synic] {
            let out = run(&driver_session(), focus);
            assert_eq!(out.calls_ok, 2, "{out:?}");
            assert_eq!(out.interrupts, 1, "{out:?}");
        }
    }
}
