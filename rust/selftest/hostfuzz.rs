// SPDX-License-Identifier: GPL-2.0

//! A guest that fuzzes its host (selftest build; the `contract` command
//! `fuzz SEED OPS`): OPS random operations from a seeded generator, so a
//! run can be repeated with its seed.
//!
//! - Hypercalls: control words with known and unknown codes, the fast bit,
//!   variable headers, rep counts and starts, reserved bits; input GPAs in
//!   this CPU's input page (filled with random bytes) at any offset,
//!   misaligned or crossing its end, anywhere in the first 256 MiB (the
//!   host only reads inputs), or far outside RAM; outputs at 0, in the
//!   input page (overlapping) or outside RAM; fast inputs at random.
//! - Synthetic MSR writes, each undone at once with interrupts off: SINTs
//!   with vectors below 16 and reserved bits, SIMP, SIEFP, the hypercall
//!   page and the VP assist page outside RAM, direct timers below vector
//!   16, read-only MSRs (all of which the host must refuse with a #GP),
//!   and writes it may take: masked SINTs, SCONTROL, the guest OS ID,
//!   stopped timers, the reference TSC page outside RAM, EOM, unknown
//!   synthetic MSRs. Nothing moves a page the host writes into this
//!   guest's RAM, and nothing disables the hypercall page.
//! - VMBus channel messages of every type with random bodies, posted on
//!   the message and contact connections and on others.
//!
//! The report is one `key=value` record. `unknown_status` counts statuses
//! the TLFS does not define and `msr_wrong` writes the host took although
//! it must refuse them: both are host bugs, and the scenario
//! (`hostile_guest_fuzz`) requires them to be 0.

use core::fmt::Write;

use kernel::prelude::*;

use crate::fmt::Out;
use crate::hvcall::hypercall::{CallCode, HvStatus};
use crate::hvcall::msr;
use crate::hypercall::Hypercalls;
use crate::shim::{self, IrqsOff};

/// Most operations one command runs.
pub(crate) const MAX_OPS: u32 = 1_000_000;

/// A GPA far outside the RAM of any guest the rig runs (4 PiB).
const OUTSIDE_RAM: u64 = 1 << 52;
/// Inputs read anywhere below this (RAM in every rig guest).
const LOW_RAM: u64 = 256 << 20;

/// xorshift64*: a small generator whose stream a seed fixes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n` (which is not 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// What a run did and what the host answered.
#[derive(Default)]
struct Counts {
    hypercalls: u64,
    hc_ok: u64,
    hc_refused: u64,
    unknown_status: u64,
    msr_writes: u64,
    msr_taken: u64,
    msr_gp: u64,
    msr_must_gp: u64,
    msr_wrong: u64,
    messages: u64,
    msg_ok: u64,
    msg_refused: u64,
}

/// Call codes the contract knows; others come at random.
const CODES: &[CallCode] = &[
    CallCode::POST_MESSAGE,
    CallCode::SIGNAL_EVENT,
    CallCode::NOTIFY_LONG_SPIN_WAIT,
    CallCode::SEND_IPI,
    CallCode::FLUSH_VIRTUAL_ADDRESS_SPACE,
    CallCode::FLUSH_VIRTUAL_ADDRESS_LIST,
];

/// Runs `ops` operations from `seed`; the report.
pub(crate) fn run(hc: &Hypercalls, seed: u64, ops: u32) -> Result<KVec<u8>> {
    if ops == 0 || ops > MAX_OPS {
        return Err(EINVAL);
    }
    let mut rng = Rng::new(seed);
    let mut n = Counts::default();
    let mut fill = [0u8; 256];
    for _ in 0..ops {
        match rng.below(8) {
            0..=3 => hypercall(hc, &mut rng, &mut fill, &mut n),
            4..=6 => msr_write(&mut rng, &mut n),
            _ => message(hc, &mut rng, &mut fill, &mut n),
        }
    }
    let mut out = KVec::new();
    let mut w = Out(&mut out);
    let _ = writeln!(
        w,
        "fuzz seed={seed} ops={ops} hypercalls={} hc_ok={} hc_refused={} unknown_status={} \
         msr_writes={} msr_taken={} msr_gp={} msr_must_gp={} msr_wrong={} messages={} msg_ok={} \
         msg_refused={}",
        n.hypercalls,
        n.hc_ok,
        n.hc_refused,
        n.unknown_status,
        n.msr_writes,
        n.msr_taken,
        n.msr_gp,
        n.msr_must_gp,
        n.msr_wrong,
        n.messages,
        n.msg_ok,
        n.msg_refused,
    );
    Ok(out)
}

fn fill_random(rng: &mut Rng, fill: &mut [u8]) {
    for chunk in fill.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn count_status(n: &mut Counts, status: HvStatus) {
    if status.is_success() {
        n.hc_ok += 1;
    } else {
        n.hc_refused += 1;
    }
    if status.name().is_none() {
        n.unknown_status += 1;
    }
}

fn hypercall(hc: &Hypercalls, rng: &mut Rng, fill: &mut [u8; 256], n: &mut Counts) {
    n.hypercalls += 1;
    let code = if rng.chance(4) {
        rng.next() as u16
    } else {
        CODES[rng.below(CODES.len() as u64) as usize].0
    };
    let mut control = u64::from(code);
    let fast = rng.chance(3);
    if fast {
        control |= 1 << 16;
    }
    if rng.chance(6) {
        control |= (rng.below(0x400)) << 17;
    }
    if rng.chance(4) {
        control |= (rng.below(0x1000) << 32) | (rng.below(0x1000) << 48);
    }
    if rng.chance(8) {
        // Reserved bits 31:27, 47:44, 63:60.
        control |= rng.next() & ((0x1f << 27) | (0xf << 44) | (0xf << 60));
    }
    let result = if fast {
        hc.raw(control, rng.next(), rng.next())
    } else {
        fill_random(rng, fill);
        let len = rng.below(fill.len() as u64 + 1) as usize;
        let offset = if rng.chance(2) {
            (rng.below(512) * 8) as usize
        } else {
            rng.below(4096) as usize
        };
        let input = match rng.below(6) {
            0 => Some(rng.below(LOW_RAM)),
            1 => Some(OUTSIDE_RAM + rng.below(1 << 40)),
            2 => Some(rng.next()),
            _ => None,
        };
        let output = match rng.below(3) {
            0 => 0,
            1 => OUTSIDE_RAM,
            // The input page itself (overlapping the input).
            _ => u64::MAX,
        };
        hc.raw_with_input(control, &fill[..len], offset, input, output)
    };
    count_status(n, result.status);
}

/// A page GPA far outside RAM.
fn outside_page(rng: &mut Rng) -> u64 {
    OUTSIDE_RAM + (rng.below(1 << 20) << 12)
}

/// How a write must end.
#[derive(PartialEq, Eq)]
enum Expect {
    /// The host must refuse it.
    Gp,
    /// Either answer is the host's to give.
    Any,
}

/// A write and what the host must answer.
fn pick_write(rng: &mut Rng) -> (u32, u64, Expect) {
    match rng.below(14) {
        // An unmasked SINT below vector 16, with random reserved bits.
        0 => (
            msr::SINT0 + rng.below(16) as u32,
            rng.below(16) | (rng.next() & !0x3_00ff & !(1 << 16)),
            Expect::Gp,
        ),
        // A masked SINT: any vector, any flags.
        1 => (
            msr::SINT0 + rng.below(16) as u32,
            rng.next() | (1 << 16),
            Expect::Any,
        ),
        2 => (msr::SIMP, outside_page(rng) | 1, Expect::Gp),
        3 => (msr::SIEFP, outside_page(rng) | 1, Expect::Gp),
        4 => (msr::HYPERCALL, outside_page(rng) | 1, Expect::Gp),
        5 => (
            msr::VP_ASSIST_PAGE,
            outside_page(rng) | 1,
            Expect::Gp,
        ),
        // A direct-mode timer below vector 16.
        6 => (
            msr::STIMER0_CONFIG + 2 * rng.below(4) as u32,
            (1 << 12) | (rng.below(16) << 4) | rng.below(16),
            Expect::Gp,
        ),
        7 => (
            msr::READ_ONLY[rng.below(msr::READ_ONLY.len() as u64) as usize],
            rng.next(),
            Expect::Gp,
        ),
        // A stopped timer, any other field.
        8 => (
            msr::STIMER0_CONFIG + 2 * rng.below(4) as u32,
            rng.next() & !1 & !(1 << 12),
            Expect::Any,
        ),
        9 => (msr::SCONTROL, rng.next(), Expect::Any),
        10 => (msr::GUEST_OS_ID, rng.next() | 1, Expect::Any),
        11 => (msr::REFERENCE_TSC, outside_page(rng) | 1, Expect::Any),
        12 => (msr::EOM, rng.next(), Expect::Any),
        _ => (
            msr::SYNTHETIC_BASE + rng.below(u64::from(msr::SYNTHETIC_COUNT)) as u32,
            0,
            Expect::Any,
        ),
    }
}

fn msr_write(rng: &mut Rng, n: &mut Counts) {
    let (index, value, expect) = pick_write(rng);
    // Writes the host must refuse change nothing; the others are undone
    // before this CPU takes an interrupt. An unknown MSR is only written
    // with 0 and never restored (there is nothing to restore).
    let irqs = IrqsOff::new();
    let old = shim::rdmsr(index).ok();
    if expect == Expect::Any && old.is_none() && index != msr::EOM && value != 0 {
        return;
    }
    n.msr_writes += 1;
    let taken = shim::wrmsr(index, value).is_ok();
    if taken {
        n.msr_taken += 1;
        if let Some(old) = old {
            if index != msr::EOM && shim::wrmsr(index, old).is_err() {
                pr_warn!("hostfuzz: MSR {:#x} not restored to {:#x}\n", index, old);
            }
        }
    } else {
        n.msr_gp += 1;
    }
    drop(irqs);
    if expect == Expect::Gp {
        n.msr_must_gp += 1;
        if taken {
            n.msr_wrong += 1;
            pr_err!("hostfuzz: the host took MSR {:#x} <- {:#x}\n", index, value);
        }
    }
}

fn message(hc: &Hypercalls, rng: &mut Rng, fill: &mut [u8; 256], n: &mut Counts) {
    n.messages += 1;
    fill_random(rng, fill);
    // The channel message type, then its body.
    fill[..4].copy_from_slice(&(rng.below(26) as u32).to_le_bytes());
    let len = 4 + rng.below(237) as usize;
    let connection = match rng.below(4) {
        0 => 4,
        1 => rng.next() as u32 & 0xff_ffff,
        _ => 1,
    };
    let message_type = if rng.chance(8) { rng.next() as u32 } else { 1 };
    match hc.post_message(connection, message_type, &fill[..len]) {
        Ok(()) => n.msg_ok += 1,
        Err(_) => n.msg_refused += 1,
    }
}
