// SPDX-License-Identifier: GPL-2.0

//! Contract tests that need this module's own API (a Rust module cannot
//! export it to a test module). They run when user space writes `run` to
//! `/sys/kernel/debug/hv_guest/contract`, and reading that file gives their
//! results as key=value records, one per line (see [`Report`]); the
//! kselftest `hv_guest_contract` drives it and reports them in KTAP.
//!
//! They speak to the host's test device, the port protocol of QEMU's
//! `hyperv-testdev` that hvhost's `--test-device` also implements: 32-bit
//! writes to port 0x3000 of `conn << 24 | cmd << 16 | vp_index << 8 | sint`
//! create and destroy message connections (which echo every posted message
//! into the slot of the given VP and SINT) and event connections (which set
//! flag number `conn` of that SINT). QEMU aborts on misuse, so every test
//! destroys exactly what it created.
//!
//! The expected statuses are the TLFS's. Writing `run qemu` instead of `run`
//! also accepts the documented answers of QEMU with KVM's Hyper-V where they
//! differ (each is named where it is accepted); nothing else changes.

/// What a run covers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suite {
    /// Every test.
    All,
    /// Only the message echo and the event on every CPU: traffic for the
    /// load/unload stress test.
    Traffic,
    /// The error statuses only (no test device needed).
    Statuses,
    /// The test-device round trips only.
    Roundtrip,
    /// One benchmark phase (see [`bench`]).
    Bench(BenchPhase),
    /// hvhost's fault injection: malformed deliveries are dropped and
    /// counted, and the SynIC keeps working.
    Hostile,
}

/// What `bench` measures, one phase per run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BenchPhase {
    /// An OUT to an unclaimed port (0xe0): the raw exit to the VMM.
    RawExit,
    /// HvCallNotifyLongSpinWait, fast: the null hypercall.
    NullHypercall,
    /// HvSignalEvent, fast, to a test-device event connection on this VP.
    SignalEvent,
    /// HvPostMessage to the echo connection until the echo has arrived.
    MessageRoundTrip,
}

impl BenchPhase {
    /// The phase named `name`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "raw_exit" => Self::RawExit,
            "null_hypercall" => Self::NullHypercall,
            "signal_event" => Self::SignalEvent,
            "message_round_trip" => Self::MessageRoundTrip,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::RawExit => "raw_exit",
            Self::NullHypercall => "null_hypercall",
            Self::SignalEvent => "signal_event",
            Self::MessageRoundTrip => "message_round_trip",
        }
    }
}

/// Whose answers the tests expect.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// The TLFS (hvhost).
    Tlfs,
    /// QEMU with KVM's in-kernel Hyper-V.
    Qemu,
}

use core::fmt::Write;

use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_spinlock_irq, Arc, SpinLockIrq};
use kernel::time::{delay::fsleep, Delta};

use crate::hvcall::hypercall::CallResult;
use crate::hvcall::hypercall::{CallCode, Control, HvStatus, PostMessageInput};
use crate::hvcall::msr;
use crate::hvcall::synic::HvMessage;
use crate::cpu::tsc;
use crate::hypercall::{guest_os_id, rep_call, HvError, Hypercalls};
use crate::shim::{self, IrqsOff};
use crate::synic::{SintConsumer, Synic, TEST_SINT};

use crate::hvcall::testdev::cmd::{
    EVT_CONN_CREATE, EVT_CONN_DESTROY, FAULT_EVENT_OUT_OF_RANGE, FAULT_OVERSIZE_MESSAGE,
    FAULT_UNKNOWN_TYPE_MESSAGE, MSG_CONN_CREATE, MSG_CONN_DESTROY,
};
use crate::hvcall::testdev::{Command, FAULT_MESSAGE_TYPE, PORT as TESTDEV_PORT};
/// The message type the tests post (not zero, below 0x80000000); the test
/// device's oversize fault message carries it too.
const TEST_MSG_TYPE: u32 = FAULT_MESSAGE_TYPE;
/// Connection IDs: messages 0x20 + VP, events 0x40 + VP (8 bits in the
/// device's command word).
const MSG_CONN_BASE: u32 = 0x20;
const EVT_CONN_BASE: u32 = 0x40;
/// How long the tests wait for a message or event (the rig is nested
/// emulation; real hosts answer in microseconds).
const WAIT_MS: i64 = 3000;

fn testdev(cmd: u8, conn: u32, vp: u32, sint: u8) {
    let word = Command {
        conn: conn as u8,
        cmd,
        vp: vp as u8,
        sint,
    }
    .encode();
    // SAFETY: port 0x3000 belongs to the hypervisor's test device, which the
    // test run requires; a port write changes no memory of this kernel. If
    // the device is absent the write goes nowhere and the tests fail.
    unsafe {
        core::arch::asm!(
            "out dx, eax",
            in("dx") TESTDEV_PORT,
            in("eax") word,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// One received message or event, as the test consumer saw it.
#[derive(Clone, Copy, Default)]
struct Seen {
    cpu: u32,
    /// Message type, or `u32::MAX` for an event.
    kind: u32,
    /// Payload size, or the flag number for an event.
    value: u32,
    /// First 8 payload bytes.
    head: u64,
}

const LOG: usize = 64;

/// A bounded log of what arrived (no allocation in the interrupt handler).
struct Log {
    seen: [Seen; LOG],
    len: usize,
    lost: usize,
}

#[pin_data]
struct TestConsumer {
    #[pin]
    log: SpinLockIrq<Log>,
    messages: Atomic<u64>,
}

impl TestConsumer {
    fn push(&self, s: Seen) {
        let mut log = self.log.lock();
        if log.len < LOG {
            let i = log.len;
            log.seen[i] = s;
            log.len += 1;
        } else {
            log.lost += 1;
        }
    }

    fn take(&self) -> KVec<Seen> {
        let mut out = KVec::new();
        let mut log = self.log.lock();
        let n = log.len;
        log.len = 0;
        let seen = log.seen;
        drop(log);
        for s in &seen[..n] {
            // Capacity problems only shorten the list, which fails a test.
            let _ = out.push(*s, GFP_ATOMIC);
        }
        out
    }
}

impl SintConsumer for TestConsumer {
    fn accepts(&self, message_type: u32) -> bool {
        message_type == TEST_MSG_TYPE
    }

    fn message(&self, cpu: u32, msg: &HvMessage) -> bool {
        let mut head = [0u8; 8];
        let body = msg.body();
        let n = body.len().min(8);
        head[..n].copy_from_slice(&body[..n]);
        self.messages.add(1, Relaxed);
        self.push(Seen {
            cpu,
            kind: msg.header.message_type,
            value: u32::from(msg.header.payload_size),
            head: u64::from_le_bytes(head),
        });
        true
    }

    fn flag_count(&self) -> u32 {
        256
    }

    fn event(&self, cpu: u32, flag: u32) {
        self.push(Seen {
            cpu,
            kind: u32::MAX,
            value: flag,
            head: 0,
        });
    }
}

/// The results of a run, as the contract file gives them: one record a
/// line, its kind first, then key=value fields; a free-text field (`why`)
/// comes last and runs to the end of the line.
/// - `plan tests=N`: how many results the run gives;
/// - `result name=NAME ok=1`, or `result name=NAME ok=0 why=TEXT`;
/// - `note TEXT`: context for a reader;
/// - `bench phase=P median_cycles=C ops=N interrupts=I`: a benchmark phase.
struct Report {
    out: KVec<u8>,
}

impl Write for Report {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.out
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

impl Report {
    fn result(&mut self, name: &str, r: core::result::Result<(), KVec<u8>>) {
        match r {
            Ok(()) => {
                let _ = writeln!(self, "result name={} ok=1", name);
            }
            Err(why) => {
                let why = core::str::from_utf8(&why).unwrap_or("?");
                let _ = writeln!(self, "result name={} ok=0 why={}", name, why);
            }
        }
    }

    fn note(&mut self, args: core::fmt::Arguments<'_>) {
        let _ = writeln!(self, "note {}", args);
    }
}

/// Builds a failure reason.
macro_rules! fail {
    ($($arg:tt)*) => {{
        let mut why = Why(KVec::new());
        let _ = write!(why, $($arg)*);
        return Err(why.0);
    }};
}

struct Why(KVec<u8>);

impl Write for Why {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

type TestResult = core::result::Result<(), KVec<u8>>;

fn expect_status(
    what: &str,
    got: core::result::Result<CallResult, HvError>,
    want: &[HvStatus],
    errno: Error,
) -> TestResult {
    let status = match got {
        Ok(r) => r.status,
        Err(e) => e.0,
    };
    if !want.contains(&status) {
        fail!("{}: status {}, expected {}", what, status, want[0]);
    }
    if !status.is_success() && HvError(status).to_errno() != errno {
        fail!(
            "{}: status {} maps to {:?}, expected {:?}",
            what,
            status,
            HvError(status).to_errno(),
            errno
        );
    }
    Ok(())
}

/// VP index of every online CPU, by CPU number.
fn vp_indexes() -> Result<KVec<(u32, u32)>> {
    let mut out = KVec::new();
    for cpu in 0..kernel::cpu::nr_cpu_ids() {
        if shim::cpu_online(cpu) {
            out.push((cpu, crate::cpu::vp_index(cpu)?), GFP_KERNEL)?;
        }
    }
    Ok(out)
}

fn wait_for(consumer: &TestConsumer, want: usize) -> KVec<Seen> {
    let mut all = KVec::new();
    let mut waited = 0;
    loop {
        for s in consumer.take() {
            let _ = all.push(s, GFP_KERNEL);
        }
        if all.len() >= want || waited >= WAIT_MS {
            return all;
        }
        fsleep(Delta::from_millis(2));
        waited += 2;
    }
}

/// Runs every contract test; returns its report (see [`Report`]).
pub(crate) fn run(
    hc: &Hypercalls,
    synic: &Arc<Synic>,
    peer: Peer,
    suite: Suite,
) -> Result<KVec<u8>> {
    let consumer: Arc<TestConsumer> = Arc::pin_init(
        pin_init!(TestConsumer {
            log <- new_spinlock_irq!(Log { seen: [Seen::default(); LOG], len: 0, lost: 0 }, "hv_guest_test_log"),
            messages: Atomic::new(0),
        }),
        GFP_KERNEL,
    )?;
    let registration = synic.register(TEST_SINT, consumer.clone())?;
    let vps = vp_indexes()?;

    let mut k = Report { out: KVec::new() };
    if let Suite::Bench(phase) = suite {
        let r = bench(hc, synic, &consumer, &vps, phase, &mut k);
        drop(registration);
        r?;
        return Ok(k.out);
    }
    let plan = match suite {
        Suite::All => STATUS_TESTS + ROUNDTRIP_TESTS,
        Suite::Statuses => STATUS_TESTS,
        Suite::Roundtrip => ROUNDTRIP_TESTS,
        Suite::Traffic => 2,
        Suite::Hostile => 4,
        Suite::Bench(_) => 0,
    };
    let _ = writeln!(k, "plan tests={}", plan);
    k.note(format_args!(
        "{} CPUs online, test SINT {}, expecting {} answers",
        vps.len(),
        TEST_SINT,
        if peer == Peer::Qemu {
            "QEMU+KVM"
        } else {
            "TLFS"
        }
    ));
    match suite {
        Suite::All => {
            status_tests(hc, peer, &mut k);
            roundtrip_tests(hc, synic, &consumer, &vps, peer, &mut k);
        }
        Suite::Statuses => status_tests(hc, peer, &mut k),
        Suite::Roundtrip => roundtrip_tests(hc, synic, &consumer, &vps, peer, &mut k),
        Suite::Traffic => {
            k.result("message_echo_every_cpu", check_echo(hc, &consumer, &vps));
            k.result("event_every_cpu", check_events(hc, &consumer, &vps));
        }
        Suite::Hostile => {
            hostile(synic, &consumer, &vps, &mut k);
            k.result("still_working_every_cpu", check_echo(hc, &consumer, &vps));
        }
        Suite::Bench(_) => {}
    }
    let lost = consumer.log.lock().lost;
    if lost != 0 {
        k.note(format_args!("{} records lost from the test log", lost));
    }
    drop(registration);
    Ok(k.out)
}

/// Tests in [`status_tests`].
const STATUS_TESTS: usize = 11;

/// The guest OS ID, the hypercall page, the null call, and each call's
/// error statuses with their kernel errors; no test device needed.
fn status_tests(hc: &Hypercalls, peer: Peer, k: &mut Report) {
    k.result("guest_os_id", check_guest_os_id());
    k.result("hypercall_page_enabled", check_hypercall_msr());
    k.result(
        "null_hypercall",
        hc.notify_long_spin_wait()
            .map_err(|e| why(format_args!("{}", e))),
    );
    k.result("unknown_call_code", {
        let r = hc.raw(Control::new(CallCode(0x0fff)).to_bits(), 0, 0);
        expect_status(
            "code 0xfff",
            Ok(r),
            &[HvStatus::INVALID_HYPERCALL_CODE],
            EOPNOTSUPP,
        )
    });
    k.result("reserved_control_bits", {
        let r = hc.raw(
            Control::new(CallCode::POST_MESSAGE).to_bits() | 1 << 63,
            0,
            0,
        );
        expect_status(
            "bit 63",
            Ok(r),
            &[HvStatus::INVALID_HYPERCALL_INPUT],
            EINVAL,
        )
    });
    k.result("post_message_misaligned", {
        match PostMessageInput::new(MSG_CONN_BASE, TEST_MSG_TYPE, b"x") {
            Some(msg) => expect_status(
                "input at +1",
                hc.slow_at_offset(CallCode::POST_MESSAGE, &msg, 1),
                &[HvStatus::INVALID_ALIGNMENT],
                EINVAL,
            ),
            None => Err(why(format_args!("cannot build the message"))),
        }
    });
    k.result("post_message_unknown_connection", {
        let r = hc
            .post_message(0xabcd, TEST_MSG_TYPE, b"nobody")
            .map(|()| CallResult::status(HvStatus::SUCCESS));
        expect_status(
            "connection 0xabcd",
            r,
            &[HvStatus::INVALID_CONNECTION_ID],
            ENOENT,
        )
    });
    k.result("post_message_oversize_payload", {
        let mut msg =
            PostMessageInput::new(MSG_CONN_BASE, TEST_MSG_TYPE, b"").unwrap_or_else(zeroed_input);
        msg.payload_size = 241;
        // The TLFS says INVALID_PARAMETER; QEMU (hyperv_hcall_post_message)
        // answers INVALID_HYPERCALL_INPUT. Both are EINVAL to our callers.
        let want: &[HvStatus] = match peer {
            Peer::Tlfs => &[HvStatus::INVALID_PARAMETER],
            Peer::Qemu => &[HvStatus::INVALID_HYPERCALL_INPUT],
        };
        expect_status(
            "payload_size 241",
            hc.slow_at_offset(CallCode::POST_MESSAGE, &msg, 0),
            want,
            EINVAL,
        )
    });
    k.result("signal_event_unknown_connection", {
        let fast = hc
            .signal_event(0xabcd, 0)
            .map(|()| CallResult::status(HvStatus::SUCCESS));
        let slow = hc
            .signal_event_slow(0xabcd, 0)
            .map(|()| CallResult::status(HvStatus::SUCCESS));
        let tlfs = [HvStatus::INVALID_CONNECTION_ID];
        match peer {
            Peer::Tlfs => expect_status("fast", fast, &tlfs, ENOENT)
                .and_then(|()| expect_status("slow", slow, &tlfs, ENOENT)),
            // KVM does not know the connection (INVALID_PORT_ID) and passes
            // the call to QEMU, which answers INVALID_CONNECTION_ID. For the
            // slow call KVM has already replaced the input GPA with the 8
            // bytes read from it (kvm_hvcall_signal_event), so QEMU takes
            // the connection ID for a GPA: INVALID_ALIGNMENT.
            Peer::Qemu => expect_status(
                "fast",
                fast,
                &[HvStatus::INVALID_CONNECTION_ID, HvStatus::INVALID_PORT_ID],
                ENOENT,
            )
            .and_then(|()| expect_status("slow", slow, &[HvStatus::INVALID_ALIGNMENT], EINVAL)),
        }
    });
    k.result("rep_call_resumes_and_terminates", check_rep_loop());
    k.result("status_to_errno", check_errno_map());
}

/// Tests in [`roundtrip_tests`].
const ROUNDTRIP_TESTS: usize = 4;

/// Through the test device: a message echo and an event on every CPU with
/// the module's own vectors, queued messages in order after EOM, and a
/// masked SINT that gets its message without an interrupt.
fn roundtrip_tests(
    hc: &Hypercalls,
    synic: &Synic,
    consumer: &TestConsumer,
    vps: &[(u32, u32)],
    peer: Peer,
    k: &mut Report,
) {
    k.result("message_echo_every_cpu", check_echo(hc, consumer, vps));
    k.result("event_every_cpu", check_events(hc, consumer, vps));
    k.result(
        "queued_messages_in_order_after_eom",
        check_queue(hc, synic, consumer, vps, peer),
    );
    k.result(
        "masked_sint_gets_message_without_interrupt",
        check_masked(hc, synic, consumer, vps),
    );
}

/// On each CPU: with the test SINT masked there, an echo still lands in
/// that CPU's SIMP slot but raises no interrupt; polling the SINT (as a
/// polling guest would) then delivers it to the consumer.
fn check_masked(
    hc: &Hypercalls,
    synic: &Synic,
    consumer: &TestConsumer,
    vps: &[(u32, u32)],
) -> TestResult {
    let irqs = |s: &Synic| {
        s.counters(TEST_SINT)
            .map_or(0, |c| c.interrupts.load(Relaxed))
    };
    for &(cpu, vp) in vps {
        let conn = MSG_CONN_BASE + vp;
        let before = irqs(synic);
        if let Err(e) = synic.set_masked(cpu, TEST_SINT, true) {
            fail!("CPU {}: masking SINT {}: {:?}", cpu, TEST_SINT, e);
        }
        testdev(MSG_CONN_CREATE, conn, vp, TEST_SINT);
        let payload = (0x3a5c_0000_0000_0000u64 | u64::from(cpu)).to_le_bytes();
        let posted = hc.post_message(conn, TEST_MSG_TYPE, &payload);
        let mut waited = 0;
        while posted.is_ok() && synic.slot_type(cpu, TEST_SINT) == Ok(0) && waited < WAIT_MS {
            fsleep(Delta::from_millis(2));
            waited += 2;
        }
        // Give a wrongly injected interrupt time to show.
        fsleep(Delta::from_millis(20));
        let slot = synic.slot_type(cpu, TEST_SINT);
        let stray = irqs(synic) - before;
        let early = consumer.take();
        let unmasked = synic.set_masked(cpu, TEST_SINT, false);
        let polled = synic.poll(cpu, TEST_SINT);
        let seen = consumer.take();
        testdev(MSG_CONN_DESTROY, conn, vp, TEST_SINT);
        if let Err(e) = posted {
            fail!("CPU {}: post: {}", cpu, e);
        }
        if slot != Ok(TEST_MSG_TYPE) {
            fail!(
                "CPU {}: masked SINT's slot holds {:?}, expected type {:#x}",
                cpu,
                slot,
                TEST_MSG_TYPE
            );
        }
        if stray != 0 || !early.is_empty() {
            fail!(
                "CPU {}: {} interrupts and {} deliveries while masked",
                cpu,
                stray,
                early.len()
            );
        }
        if unmasked.is_err() || polled.is_err() {
            fail!("CPU {}: unmask {:?}, poll {:?}", cpu, unmasked, polled);
        }
        match seen.first() {
            Some(s) if seen.len() == 1 && s.cpu == cpu && s.head == u64::from_le_bytes(payload) => {
            }
            _ => fail!("CPU {}: polling delivered {} messages", cpu, seen.len()),
        }
    }
    Ok(())
}

fn zeroed_input() -> PostMessageInput {
    zerocopy::FromZeros::new_zeroed()
}

fn why(args: core::fmt::Arguments<'_>) -> KVec<u8> {
    let mut w = Why(KVec::new());
    let _ = w.write_fmt(args);
    w.0
}

fn check_guest_os_id() -> TestResult {
    let want = guest_os_id(shim::linux_version_code());
    match shim::rdmsr(msr::GUEST_OS_ID) {
        Ok(v) if v == want => Ok(()),
        Ok(v) => fail!("GUEST_OS_ID reads {:#x}, wrote {:#x}", v, want),
        Err(e) => fail!("GUEST_OS_ID read: {:?}", e),
    }
}

fn check_hypercall_msr() -> TestResult {
    match shim::rdmsr(msr::HYPERCALL) {
        Ok(v) if v & 1 == 1 => Ok(()),
        Ok(v) => fail!("HYPERCALL MSR {:#x} has no enable bit", v),
        Err(e) => fail!("HYPERCALL read: {:?}", e),
    }
}

fn check_rep_loop() -> TestResult {
    let ok = |status, reps| CallResult {
        status,
        reps_completed: reps,
    };
    // Stops early twice, resumes each time from what it completed.
    let mut starts = [0u16; 4];
    let mut i = 0;
    let steps = [3u16, 7, 10];
    let r = rep_call(10, |start| {
        if i < starts.len() {
            starts[i] = start;
        }
        let done = steps.get(i).copied().unwrap_or(10);
        i += 1;
        ok(HvStatus::SUCCESS, done)
    });
    if r != Ok(10) || starts[..3] != [0, 3, 7] {
        fail!(
            "resume: got {:?} with starts {:?}",
            r.map_err(|e| e.1),
            starts
        );
    }
    // A host that makes no progress ends the loop.
    let mut calls = 0;
    let r = rep_call(5, |_| {
        calls += 1;
        ok(HvStatus::SUCCESS, 0)
    });
    if r.is_ok() || calls != 1 {
        fail!("no progress: {} calls", calls);
    }
    // A host that claims more than asked is not believed.
    if rep_call(5, |_| ok(HvStatus::SUCCESS, 9)).is_ok() {
        fail!("overclaim accepted");
    }
    // A failure reports the reps done before it.
    match rep_call(8, |s| {
        if s == 0 {
            ok(HvStatus::SUCCESS, 4)
        } else {
            ok(HvStatus::INSUFFICIENT_BUFFERS, 6)
        }
    }) {
        Err((e, 6)) if e.0 == HvStatus::INSUFFICIENT_BUFFERS && e.to_errno() == EAGAIN => Ok(()),
        other => fail!("failure: {:?}", other.map_err(|e| e.1)),
    }
}

fn check_echo(hc: &Hypercalls, consumer: &TestConsumer, vps: &[(u32, u32)]) -> TestResult {
    for &(cpu, vp) in vps {
        let conn = MSG_CONN_BASE + vp;
        testdev(MSG_CONN_CREATE, conn, vp, TEST_SINT);
        let payload = (0x1122_3344_0000_0000u64 | u64::from(cpu)).to_le_bytes();
        let before = consumer.messages.load(Relaxed);
        let r = hc.post_message(conn, TEST_MSG_TYPE, &payload);
        let seen = if r.is_ok() {
            wait_for(consumer, 1)
        } else {
            KVec::new()
        };
        testdev(MSG_CONN_DESTROY, conn, vp, TEST_SINT);
        if let Err(e) = r {
            fail!(
                "CPU {} (VP {}): post to echo connection {:#x}: {} (is the test device there?)",
                cpu,
                vp,
                conn,
                e
            );
        }
        let Some(s) = seen.first() else {
            fail!("CPU {} (VP {}): no echo within {} ms", cpu, vp, WAIT_MS);
        };
        if seen.len() != 1 || consumer.messages.load(Relaxed) != before + 1 {
            fail!("CPU {}: {} arrivals for one message", cpu, seen.len());
        }
        if s.cpu != cpu
            || s.kind != TEST_MSG_TYPE
            || s.value != 8
            || s.head != u64::from_le_bytes(payload)
        {
            fail!(
                "CPU {}: echo arrived on CPU {} type {:#x} size {} head {:#x}",
                cpu,
                s.cpu,
                s.kind,
                s.value,
                s.head
            );
        }
    }
    Ok(())
}

fn check_events(hc: &Hypercalls, consumer: &TestConsumer, vps: &[(u32, u32)]) -> TestResult {
    for &(cpu, vp) in vps {
        let conn = EVT_CONN_BASE + vp;
        testdev(EVT_CONN_CREATE, conn, vp, TEST_SINT);
        let fast = hc.signal_event(conn, 0);
        let seen_fast = if fast.is_ok() {
            wait_for(consumer, 1)
        } else {
            KVec::new()
        };
        let slow = hc.signal_event_slow(conn, 0);
        let seen_slow = if slow.is_ok() {
            wait_for(consumer, 1)
        } else {
            KVec::new()
        };
        testdev(EVT_CONN_DESTROY, conn, vp, TEST_SINT);
        for (how, r, seen) in [("fast", fast, seen_fast), ("slow", slow, seen_slow)] {
            if let Err(e) = r {
                fail!(
                    "CPU {} (VP {}): {} signal of connection {:#x}: {}",
                    cpu,
                    vp,
                    how,
                    conn,
                    e
                );
            }
            match seen.first() {
                Some(s)
                    if seen.len() == 1 && s.kind == u32::MAX && s.value == conn && s.cpu == cpu => {
                }
                Some(s) => fail!(
                    "CPU {}: {} event seen as flag {} on CPU {} ({} arrivals)",
                    cpu,
                    how,
                    s.value,
                    s.cpu,
                    seen.len()
                ),
                None => fail!(
                    "CPU {}: {} event: no flag {} within {} ms",
                    cpu,
                    how,
                    conn,
                    WAIT_MS
                ),
            }
        }
    }
    Ok(())
}

/// With interrupts off on this CPU, the first echo fills the slot and the
/// next ones must wait; after interrupts come back, each EOM releases the
/// next. Every message the host accepted must arrive, in posting order; a
/// host may refuse some with INSUFFICIENT_BUFFERS.
///
/// QEMU's test device is the exception: it keeps one message buffer per
/// connection, which every post overwrites (even one it refuses with
/// INSUFFICIENT_BUFFERS), and after the EOM it re-posts that buffer
/// (hw/misc/hyperv_testdev.c `msg_handler`, `msg_cb`). With `Peer::Qemu`
/// the test therefore requires the guest's half (the pending flag seen, EOM
/// written, the first message intact) and that later arrivals are posted
/// messages in posting order.
fn check_queue(
    hc: &Hypercalls,
    synic: &Synic,
    consumer: &TestConsumer,
    vps: &[(u32, u32)],
    peer: Peer,
) -> TestResult {
    const N: usize = 4;
    // 100 us apart: up to 0.5 s per post. QEMU frees its staging area from
    // its main loop, which a busy rig machine schedules late.
    const RETRIES: usize = 5000;
    const TAG: u64 = 0x5e << 32;
    let mut accepted = [0u64; N];
    let mut n_accepted = 0;
    let eom = |s: &Synic| s.counters(TEST_SINT).map_or(0, |c| c.eom.load(Relaxed));
    let eom_before = eom(synic);
    let irqs = IrqsOff::new();
    let cpu = irqs.cpu();
    let Some(&(_, vp)) = vps.iter().find(|(c, _)| *c == cpu) else {
        drop(irqs);
        fail!("CPU {} has no VP index", cpu);
    };
    let conn = MSG_CONN_BASE + vp;
    testdev(MSG_CONN_CREATE, conn, vp, TEST_SINT);
    let mut error = None;
    'post: for i in 0..N as u64 {
        // A full queue is INSUFFICIENT_BUFFERS; a guest retries. A host's
        // queue may also be busy for a moment while it stages the previous
        // message (QEMU frees its staging area from its main loop).
        for _ in 0..RETRIES {
            match hc.post_message(conn, TEST_MSG_TYPE, &(TAG | i).to_le_bytes()) {
                Ok(()) => {
                    accepted[n_accepted] = TAG | i;
                    n_accepted += 1;
                    continue 'post;
                }
                Err(HvError(HvStatus::INSUFFICIENT_BUFFERS)) => {
                    kernel::time::delay::udelay(Delta::from_micros(100))
                }
                Err(e) => {
                    error = Some((i, e));
                    break 'post;
                }
            }
        }
    }
    drop(irqs);
    let seen = wait_for(consumer, n_accepted);
    testdev(MSG_CONN_DESTROY, conn, vp, TEST_SINT);
    let eoms = eom(synic) - eom_before;
    pr_info!(
        "contract: queue test: {} of {} posts accepted, {} arrived, {} EOM written\n",
        n_accepted,
        N,
        seen.len(),
        eoms
    );
    if let Some((i, e)) = error {
        fail!("post {}: {}", i, e);
    }
    if n_accepted < 2 {
        fail!(
            "only {} of {} posts accepted while the slot was busy (need 2 to test queueing)",
            n_accepted,
            N
        );
    }
    if seen.iter().any(|s| s.cpu != cpu) {
        fail!("a message arrived on another CPU than {}", cpu);
    }
    // Arrivals must be the accepted messages in posting order (TLFS), or
    // (QEMU) the first accepted one, then posted ones in posting order.
    let mut next = 0;
    for (i, s) in seen.iter().enumerate() {
        let in_order = match peer {
            Peer::Tlfs => accepted.get(i).filter(|_| i < n_accepted) == Some(&s.head),
            Peer::Qemu if i == 0 => s.head == accepted[0],
            Peer::Qemu => {
                s.head & !0xff == TAG
                    && (s.head & 0xff) as usize >= next
                    && (s.head & 0xff) < N as u64
            }
        };
        if !in_order {
            fail!(
                "arrival {} was {:#x}: out of order (accepted {:x?})",
                i,
                s.head,
                &accepted[..n_accepted]
            );
        }
        next = (s.head & 0xff) as usize + 1;
    }
    match peer {
        Peer::Tlfs if seen.len() != n_accepted => {
            fail!("{} accepted, {} arrived", n_accepted, seen.len())
        }
        Peer::Qemu if seen.first().map(|s| s.head) != Some(accepted[0]) || eoms == 0 => {
            fail!(
                "first message {:?} arrived, {} EOM written",
                seen.first().map(|s| s.head),
                eoms
            )
        }
        _ => Ok(()),
    }
}

/// Operations per benchmark phase: enough that a VMM's per-phase exit count
/// (sampled by the rig every 50 ms) is dominated by the phase.
const BENCH_OPS: usize = 3000;

/// Runs one phase `BENCH_OPS` times, each op timed alone with RDTSC, and
/// writes `bench PHASE median_cycles M ops N interrupts I` (interrupts on
/// the test SINT during the phase). Numbers only mean something as ratios
/// within one run (the rig is nested emulation).
fn bench(
    hc: &Hypercalls,
    synic: &Synic,
    consumer: &TestConsumer,
    vps: &[(u32, u32)],
    phase: BenchPhase,
    k: &mut Report,
) -> Result {
    let irqs = |s: &Synic| {
        s.counters(TEST_SINT)
            .map_or(0, |c| c.interrupts.load(Relaxed))
    };
    let mut samples = KVec::with_capacity(BENCH_OPS, GFP_KERNEL)?;
    // The connections live on VP of the CPU we start on; messages and
    // events come back there (and are counted wherever we are).
    let vp = {
        let irqs_off = IrqsOff::new();
        let cpu = irqs_off.cpu();
        vps.iter()
            .find(|(c, _)| *c == cpu)
            .map(|(_, vp)| *vp)
            .ok_or(EINVAL)?
    };
    let (conn, create, destroy) = match phase {
        BenchPhase::SignalEvent => (EVT_CONN_BASE + vp, EVT_CONN_CREATE, EVT_CONN_DESTROY),
        _ => (MSG_CONN_BASE + vp, MSG_CONN_CREATE, MSG_CONN_DESTROY),
    };
    let uses_device = matches!(
        phase,
        BenchPhase::SignalEvent | BenchPhase::MessageRoundTrip
    );
    if uses_device {
        testdev(create, conn, vp, TEST_SINT);
    }
    let irqs_before = irqs(synic);
    let payload = [0x42u8; 64];
    let mut failed = None;
    for _ in 0..BENCH_OPS {
        let start = tsc();
        let r = match phase {
            BenchPhase::RawExit => {
                // SAFETY: port 0xe0 is claimed by no device of either VMM;
                // the write only exits to the VMM and changes no memory.
                unsafe {
                    core::arch::asm!("out 0xe0, al", in("al") 0u8, options(nomem, nostack, preserves_flags))
                };
                Ok(())
            }
            BenchPhase::NullHypercall => hc.notify_long_spin_wait(),
            BenchPhase::SignalEvent => hc.signal_event(conn, 0),
            BenchPhase::MessageRoundTrip => {
                let before = consumer.messages.load(Relaxed);
                // A host still busy with the previous echo answers
                // INSUFFICIENT_BUFFERS (QEMU frees its staging area from
                // its main loop): retry, as a guest must; it is part of
                // the round trip's cost.
                let mut r = hc.post_message(conn, TEST_MSG_TYPE, &payload);
                let mut retries = 0;
                while r == Err(HvError(HvStatus::INSUFFICIENT_BUFFERS)) && retries < 100_000 {
                    core::hint::spin_loop();
                    r = hc.post_message(conn, TEST_MSG_TYPE, &payload);
                    retries += 1;
                }
                // Wait for the echo (the interrupt comes in on this VP).
                let mut spins = 0u64;
                while r.is_ok() && consumer.messages.load(Relaxed) == before && spins < 1 << 28 {
                    core::hint::spin_loop();
                    spins += 1;
                }
                r
            }
        };
        let end = tsc();
        if let Err(e) = r {
            failed = Some(e);
            break;
        }
        samples.push(end.wrapping_sub(start), GFP_KERNEL)?;
    }
    let interrupts = irqs(synic) - irqs_before;
    if uses_device {
        testdev(destroy, conn, vp, TEST_SINT);
    }
    // Drain what the consumer logged so the log never fills up.
    drop(consumer.take());
    if let Some(e) = failed {
        pr_err!("bench {}: {}\n", phase.name(), e);
        return Err(e.into());
    }
    samples.sort_unstable();
    let median = samples.get(samples.len() / 2).copied().unwrap_or(0);
    let _ = writeln!(
        k,
        "bench phase={} median_cycles={} ops={} interrupts={}",
        phase.name(),
        median,
        samples.len(),
        interrupts
    );
    Ok(())
}

/// Asks the test device for each kind of bad delivery on every CPU's VP and
/// checks that the SynIC dropped and counted it, and that the consumer never
/// saw it.
fn hostile(synic: &Synic, consumer: &TestConsumer, vps: &[(u32, u32)], k: &mut Report) {
    let Some(counters) = synic.counters(TEST_SINT) else {
        k.result(
            "counters",
            Err(why(format_args!("no counters for SINT {}", TEST_SINT))),
        );
        return;
    };
    let cases: [(&str, u8, &Atomic<u64>); 3] = [
        (
            "oversize_message_dropped",
            FAULT_OVERSIZE_MESSAGE,
            &counters.dropped_oversize,
        ),
        (
            "unknown_type_message_dropped",
            FAULT_UNKNOWN_TYPE_MESSAGE,
            &counters.dropped_unknown_type,
        ),
        (
            "out_of_range_flag_dropped",
            FAULT_EVENT_OUT_OF_RANGE,
            &counters.dropped_bad_flag,
        ),
    ];
    for (name, fault, counter) in cases {
        let r = (|| -> TestResult {
            for &(cpu, vp) in vps {
                let before = counter.load(Relaxed);
                testdev(fault, 0, vp, TEST_SINT);
                let mut waited = 0;
                while counter.load(Relaxed) == before && waited < WAIT_MS {
                    fsleep(Delta::from_millis(2));
                    waited += 2;
                }
                let seen = consumer.take();
                if counter.load(Relaxed) != before + 1 {
                    fail!(
                        "CPU {} (VP {}): counter went {} -> {}",
                        cpu,
                        vp,
                        before,
                        counter.load(Relaxed)
                    );
                }
                if !seen.is_empty() {
                    fail!(
                        "CPU {}: the consumer saw {} deliveries of a bad one",
                        cpu,
                        seen.len()
                    );
                }
            }
            Ok(())
        })();
        k.result(name, r);
    }
}

/// Every status the module can meet maps to the kernel error its API
/// documents (rust/hypercall.rs `HvError::to_errno`).
fn check_errno_map() -> TestResult {
    let table: [(HvStatus, Error); 12] = [
        (HvStatus::INVALID_HYPERCALL_CODE, EOPNOTSUPP),
        (HvStatus::INVALID_HYPERCALL_INPUT, EINVAL),
        (HvStatus::INVALID_ALIGNMENT, EINVAL),
        (HvStatus::INVALID_PARAMETER, EINVAL),
        (HvStatus::ACCESS_DENIED, EACCES),
        (HvStatus::OPERATION_DENIED, EACCES),
        (HvStatus::INVALID_PORT_ID, ENOENT),
        (HvStatus::INVALID_CONNECTION_ID, ENOENT),
        (HvStatus::INSUFFICIENT_BUFFERS, EAGAIN),
        (HvStatus::INSUFFICIENT_MEMORY, ENOMEM),
        (HvStatus::TIME_OUT, ETIMEDOUT),
        (HvStatus(0x7777), EIO),
    ];
    for (status, errno) in table {
        if HvError(status).to_errno() != errno {
            fail!(
                "{} maps to {:?}, expected {:?}",
                status,
                HvError(status).to_errno(),
                errno
            );
        }
    }
    Ok(())
}
