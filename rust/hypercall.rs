// SPDX-License-Identifier: GPL-2.0

//! The guest OS ID, this module's own hypercall page and typed hypercalls.
//!
//! The hypercall page is a 4 KiB, page-aligned area of this module's `.text`
//! (the kernel exports no way for a module to make other memory executable).
//! Its PFN goes into the HYPERCALL MSR, after the guest OS ID; the host then
//! writes its calling sequence into it. Calls go to it by a direct `call`
//! from inline assembly: the host's code need not start with `endbr64`, and
//! a direct call meets neither IBT nor a retpoline.
//!
//! Slow calls use a per-CPU input page, with interrupts off while it is
//! filled and the call is made; fast calls pass everything in registers.
//! Every result is decoded into an [`HvStatus`]; a failure becomes an
//! [`HvError`], which maps to a kernel error code at the API boundary.

use core::fmt;

use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};

use crate::hvcall::hypercall::{
    CallCode, CallResult, Control, HvStatus, PostMessageInput, SignalEventInput,
};
use crate::hvcall::msr;
use crate::hvcall::synic::HypercallMsr;
use crate::shim::{self, IrqsOff, SharedPage};

core::arch::global_asm!(
    ".pushsection .text.hv_guest_hypercall_page, \"ax\", @progbits",
    ".balign 4096",
    ".globl hv_guest_hypercall_page",
    "hv_guest_hypercall_page:",
    // int3 everywhere until the host writes its sequence over the start.
    ".fill 4096, 1, 0xcc",
    ".popsection",
);

extern "C" {
    /// The page above. Only its address is used from Rust.
    static hv_guest_hypercall_page: [u8; 4096];
}

/// The TLFS guest OS ID of an open-source OS (bit 63) of type Linux (OS type
/// 0x01 in bits 62:56, vendor 0x8100 in bits 63:48 as Linux writes it), with
/// the kernel version in bits 47:16 and build 0.
pub(crate) const fn guest_os_id(linux_version_code: u32) -> u64 {
    const LINUX_OPEN_SOURCE: u64 = 0x8100;
    LINUX_OPEN_SOURCE << 48 | (linux_version_code as u64) << 16
}

/// A hypercall that returned a status other than success.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct HvError(pub(crate) HvStatus);

impl HvError {
    /// The kernel error a caller of this module's API sees.
    pub(crate) fn to_errno(self) -> Error {
        match self.0 {
            HvStatus::INVALID_HYPERCALL_CODE => EOPNOTSUPP,
            HvStatus::ACCESS_DENIED | HvStatus::OPERATION_DENIED => EACCES,
            HvStatus::INVALID_HYPERCALL_INPUT
            | HvStatus::INVALID_ALIGNMENT
            | HvStatus::INVALID_PARAMETER => EINVAL,
            HvStatus::INVALID_PORT_ID | HvStatus::INVALID_CONNECTION_ID => ENOENT,
            HvStatus::INSUFFICIENT_BUFFERS => EAGAIN,
            HvStatus::INSUFFICIENT_MEMORY => ENOMEM,
            HvStatus::TIME_OUT => ETIMEDOUT,
            _ => EIO,
        }
    }
}

impl From<HvError> for Error {
    fn from(e: HvError) -> Self {
        e.to_errno()
    }
}

impl fmt::Display for HvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hypercall status {}", self.0)
    }
}

impl fmt::Debug for HvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn check(result: CallResult) -> Result<CallResult, HvError> {
    if result.status.is_success() {
        Ok(result)
    } else {
        Err(HvError(result.status))
    }
}

/// The calls counted in debugfs, in this order; anything else is "other".
pub(crate) const COUNTED: [(CallCode, &str); 3] = [
    (CallCode::NOTIFY_LONG_SPIN_WAIT, "notify_long_spin_wait"),
    (CallCode::POST_MESSAGE, "post_message"),
    (CallCode::SIGNAL_EVENT, "signal_event"),
];

/// Count and failures of one call code.
pub(crate) struct CallStats {
    pub(crate) calls: Atomic<u64>,
    pub(crate) errors: Atomic<u64>,
}

impl CallStats {
    const fn new() -> Self {
        Self {
            calls: Atomic::new(0),
            errors: Atomic::new(0),
        }
    }
}

/// Statistics per call code: [`COUNTED`] in order, then "other".
pub(crate) struct Stats(pub(crate) [CallStats; COUNTED.len() + 1]);

impl Stats {
    fn record(&self, code: CallCode, status: HvStatus) {
        let i = COUNTED
            .iter()
            .position(|(c, _)| *c == code)
            .unwrap_or(COUNTED.len());
        let s = &self.0[i];
        s.calls.add(1, Relaxed);
        if !status.is_success() {
            s.errors.add(1, Relaxed);
        }
    }
}

/// The enabled hypercall page and the per-CPU input pages.
///
/// # Invariants
///
/// While this value exists, the HYPERCALL MSR points at
/// `hv_guest_hypercall_page` with the enable bit set, so a call into it
/// reaches the host; `input[cpu]` exists for every possible CPU.
pub(crate) struct Hypercalls {
    input: KVec<SharedPage>,
    pub(crate) stats: Stats,
}

impl Hypercalls {
    /// Writes the guest OS ID, then enables the hypercall page. Refuses
    /// (`EIO`) if the host does not keep the enable bit and our address.
    pub(crate) fn new() -> Result<Self> {
        let mut input = KVec::new();
        for _ in 0..kernel::cpu::nr_cpu_ids() {
            input.push(SharedPage::new()?, GFP_KERNEL)?;
        }
        shim::wrmsr(msr::GUEST_OS_ID, guest_os_id(shim::linux_version_code()))?;
        let page = (&raw const hv_guest_hypercall_page).cast::<u8>();
        let pfn = shim::module_text_pfn(page).ok_or(EIO)?;
        let want = HypercallMsr::enabled_at(pfn << 12);
        let enabled = shim::wrmsr(msr::HYPERCALL, want.0)
            .and_then(|()| shim::rdmsr(msr::HYPERCALL))
            .map(HypercallMsr);
        match enabled {
            Ok(got) if got.enabled() && got.gpa() == want.gpa() => {}
            other => {
                match other {
                    Ok(got) => pr_err!(
                        "host did not enable the hypercall page: wrote {:#x}, read back {:#x}\n",
                        want.0,
                        got.0
                    ),
                    Err(e) => pr_err!("HYPERCALL MSR access failed: {:?}\n", e),
                }
                let _ = shim::wrmsr(msr::GUEST_OS_ID, 0);
                return Err(EIO);
            }
        }
        // INVARIANT: the host accepted the page; inputs exist for all CPUs.
        Ok(Self {
            input,
            stats: Stats([const { CallStats::new() }; COUNTED.len() + 1]),
        })
    }

    /// Calls the page with the raw registers and returns RAX, decoded.
    ///
    /// Not counted: every typed call below goes through [`Self::call`].
    pub(crate) fn raw(&self, control: u64, input: u64, output: u64) -> CallResult {
        let status: u64;
        // SAFETY: the page holds the host's calling sequence (type
        // invariant), which follows the TLFS ABI: RCX control, RDX/R8 input
        // and output (GPAs or values), result in RAX; we also let it clobber
        // RCX, RDX and R8-R11 and memory, as Linux's wrapper does. It
        // returns with `ret` on our stack. With a slow call the host reads
        // the input GPA and writes the output GPA, which the callers own.
        unsafe {
            core::arch::asm!(
                "call hv_guest_hypercall_page",
                inout("rcx") control => _,
                inout("rdx") input => _,
                inout("r8") output => _,
                lateout("rax") status,
                lateout("r9") _,
                lateout("r10") _,
                lateout("r11") _,
            );
        }
        CallResult::from_bits(status)
    }

    fn call(&self, control: Control, input: u64, output: u64) -> Result<CallResult, HvError> {
        let result = self.raw(control.to_bits(), input, output);
        self.stats.record(control.code, result.status);
        check(result)
    }

    #[cfg(hv_guest_selftest)]
    /// HvCallNotifyLongSpinWait as a fast call: no input or output; the
    /// cheapest round trip to the host (the benchmark's null call).
    pub(crate) fn notify_long_spin_wait(&self) -> Result<(), HvError> {
        let control = Control::new(CallCode::NOTIFY_LONG_SPIN_WAIT).with_fast();
        self.call(control, 0, 0).map(|_| ())
    }

    /// HvPostMessage: sends `payload` (at most 240 bytes) as a message of
    /// `message_type` to `connection_id`.
    pub(crate) fn post_message(
        &self,
        connection_id: u32,
        message_type: u32,
        payload: &[u8],
    ) -> Result<(), HvError> {
        let msg = PostMessageInput::new(connection_id, message_type, payload)
            .ok_or(HvError(HvStatus::INVALID_PARAMETER))?;
        self.with_input(&msg, |gpa| {
            self.call(Control::new(CallCode::POST_MESSAGE), gpa, 0)
        })
        .map(|_| ())
    }

    /// HvSignalEvent as a fast call (the input in RDX).
    pub(crate) fn signal_event(&self, connection_id: u32, flag_number: u16) -> Result<(), HvError> {
        let input = SignalEventInput {
            connection_id,
            flag_number,
            rsvd: 0,
        };
        let control = Control::new(CallCode::SIGNAL_EVENT).with_fast();
        self.call(control, input.to_fast(), 0).map(|_| ())
    }

    #[cfg(hv_guest_selftest)]
    /// HvSignalEvent as a slow call (the input in the per-CPU page).
    pub(crate) fn signal_event_slow(
        &self,
        connection_id: u32,
        flag_number: u16,
    ) -> Result<(), HvError> {
        let input = SignalEventInput {
            connection_id,
            flag_number,
            rsvd: 0,
        };
        self.with_input(&input, |gpa| {
            self.call(Control::new(CallCode::SIGNAL_EVENT), gpa, 0)
        })
        .map(|_| ())
    }

    #[cfg(hv_guest_selftest)]
    /// A slow call whose input starts `offset` bytes into this CPU's input
    /// page (for the contract tests of the host's alignment checks).
    pub(crate) fn slow_at_offset<T: zerocopy::IntoBytes + zerocopy::Immutable>(
        &self,
        code: CallCode,
        input: &T,
        offset: usize,
    ) -> Result<CallResult, HvError> {
        let bytes = input.as_bytes();
        let irqs = IrqsOff::new();
        let page = self
            .input
            .get(irqs.cpu() as usize)
            .ok_or(HvError(HvStatus::INVALID_PARAMETER))?;
        if offset
            .checked_add(bytes.len())
            .is_none_or(|end| end > kernel::page::PAGE_SIZE)
        {
            return Err(HvError(HvStatus::INVALID_PARAMETER));
        }
        // SAFETY: the page is this CPU's input page, `offset + len` is within
        // it (checked), and with interrupts off nothing else on this CPU uses
        // it; other CPUs use their own.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), page.as_ptr().add(offset), bytes.len())
        };
        let result = self.call(Control::new(code), page.phys() + offset as u64, 0);
        drop(irqs);
        result
    }

    #[cfg(hv_guest_selftest)]
    /// A raw call for the guest fuzzer ([`crate::selftest::hostfuzz`]):
    /// `fill` is copied into this CPU's input page at `offset` (both cut to
    /// the page), then the page is called with RCX `control`, RDX `input`
    /// (or that page's GPA plus `offset` when `None`) and R8 `output`
    /// (`u64::MAX`: the input page itself), interrupts off throughout.
    ///
    /// The host only reads a call's input; it writes an output only for
    /// calls that have one, and hvhost serves none, so a GPA anywhere
    /// cannot make it write this kernel's memory. The output choices keep
    /// it away from RAM the kernel uses anyway.
    pub(crate) fn raw_with_input(
        &self,
        control: u64,
        fill: &[u8],
        offset: usize,
        input: Option<u64>,
        output: u64,
    ) -> CallResult {
        let irqs = IrqsOff::new();
        // INVARIANT use: `input` has an entry for every possible CPU.
        let page = &self.input[irqs.cpu() as usize];
        let offset = offset.min(kernel::page::PAGE_SIZE);
        let len = fill.len().min(kernel::page::PAGE_SIZE - offset);
        // SAFETY: `offset + len` is within the page (cut above); with
        // interrupts off nothing else on this CPU uses it, and other CPUs use
        // their own.
        unsafe { core::ptr::copy_nonoverlapping(fill.as_ptr(), page.as_ptr().add(offset), len) };
        let input = input.unwrap_or(page.phys() + offset as u64);
        let output = if output == u64::MAX { page.phys() } else { output };
        let result = self.raw(control, input, output);
        drop(irqs);
        result
    }

    /// Copies `input` to this CPU's input page and runs `f` with its GPA,
    /// all with interrupts off.
    fn with_input<T, R>(&self, input: &T, f: impl FnOnce(u64) -> R) -> R
    where
        T: zerocopy::IntoBytes + zerocopy::Immutable,
    {
        const { assert!(core::mem::size_of::<T>() <= 4096) };
        let bytes = input.as_bytes();
        let irqs = IrqsOff::new();
        // INVARIANT use: `input` has an entry for every possible CPU.
        let page = &self.input[irqs.cpu() as usize];
        // SAFETY: the page is this CPU's and at least 4096 bytes (asserted
        // above for `T`); with interrupts off nothing else on this CPU uses it.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), page.as_ptr(), bytes.len()) };
        let r = f(page.phys());
        drop(irqs);
        r
    }
}

impl Drop for Hypercalls {
    fn drop(&mut self) {
        // The page goes away with the module text: disable it first, then
        // clear the guest OS ID (the last thing, per the TLFS order).
        if let Err(e) = shim::wrmsr(msr::HYPERCALL, 0) {
            pr_warn!("disabling the hypercall page failed: {:?}\n", e);
        }
        if let Err(e) = shim::wrmsr(msr::GUEST_OS_ID, 0) {
            pr_warn!("clearing the guest OS ID failed: {:?}\n", e);
        }
    }
}

#[cfg(hv_guest_selftest)]
/// Runs a rep hypercall to completion: `call(start)` issues the call from
/// rep index `start` and returns its result. A call that stops early with
/// success is resumed at the reps it completed; one that makes no progress,
/// or claims more reps than asked for, ends the loop with an error, so the
/// loop runs at most `count` + 1 times. Returns the reps completed.
pub(crate) fn rep_call(
    count: u16,
    mut call: impl FnMut(u16) -> CallResult,
) -> Result<u16, (HvError, u16)> {
    let mut done = 0u16;
    while done < count {
        let r = call(done);
        if !r.status.is_success() {
            // A failure reports how far it got, for the caller to undo.
            return Err((HvError(r.status), r.reps_completed.clamp(done, count)));
        }
        if r.reps_completed <= done || r.reps_completed > count {
            // No progress, or nonsense from the host.
            return Err((HvError(HvStatus::INVALID_PARAMETER), done));
        }
        done = r.reps_completed;
    }
    Ok(done)
}
