// SPDX-License-Identifier: GPL-2.0

//! The synthetic interrupt controller, per CPU.
//!
//! On each online CPU (a CPU hotplug state, so CPUs that come and go are
//! handled too) this programs the message page (SIMP) and the event flags
//! page (SIEFP), gives each SINT this module uses an interrupt vector of its
//! own on that CPU, and enables the SynIC. A SINT's interrupt handler first
//! takes the event flags of that SINT, then the message in its slot:
//!
//! * the message is copied out of the shared page before anything looks at
//!   it (the host may rewrite the slot at any time), checked (payload size,
//!   a type the SINT's consumer accepts), handed to the consumer, and the
//!   slot is freed; if the host flagged another message as pending, EOM
//!   tells it to deliver the next one;
//! * event flags are taken with an atomic exchange per 32-bit word, so a
//!   flag the host sets concurrently is never lost; flags beyond what the
//!   consumer declared are dropped.
//!
//! Anything dropped is counted in [`SintCounters`], never trusted.
//!
//! Consumers ([`SintConsumer`]) register per SINT and run in hard-irq
//! context on the CPU the interrupt came in on.

use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_mutex, new_spinlock_irq, Arc, Mutex, SpinLockIrq};
use kernel::{c_str, str::CStr};

use crate::hvcall::msr;
use crate::hvcall::synic::{
    event_flag_word, message_slot_offset, HvMessage, PageMsr, Scontrol, SintReg, EVENT_FLAGS_COUNT,
    HV_MESSAGE_PAYLOAD_BYTE_COUNT, HV_MESSAGE_SIZE, MESSAGE_FLAGS_OFFSET, MESSAGE_FLAG_PENDING,
    MESSAGE_TYPE_OFFSET, VMBUS_SINT,
};
use crate::shim::{self, CpuVector, Hotplug, HotplugCallbacks, SharedPage, VectorHandler};

/// The SINT the contract tests use (with the hosts' test devices).
#[cfg(hv_guest_selftest)]
pub(crate) const TEST_SINT: u8 = 5;

/// The SINTs this module programs, with the irq name shown in
/// `/proc/interrupts`. Index into this table = "slot". The production
/// module programs VMBus's SINT only; the selftest build adds the test
/// SINT.
#[cfg(not(hv_guest_selftest))]
pub(crate) const SINTS: [(u8, &CStr); 1] = [(VMBUS_SINT, c_str!("hv_guest-sint2"))];
#[cfg(hv_guest_selftest)]
pub(crate) const SINTS: [(u8, &CStr); 2] = [
    (VMBUS_SINT, c_str!("hv_guest-sint2")),
    (TEST_SINT, c_str!("hv_guest-sint5")),
];

fn slot_of(sint: u8) -> Option<usize> {
    SINTS.iter().position(|(s, _)| *s == sint)
}

/// What a SINT delivers to whoever registered for it. Both methods run in
/// hard-irq context on the CPU that got the interrupt; they must be short
/// and must not sleep.
pub(crate) trait SintConsumer: Send + Sync {
    /// Whether messages of `message_type` are meant for this consumer;
    /// others are dropped and counted as unknown.
    fn accepts(&self, message_type: u32) -> bool;
    /// A message arrived; `msg` is a private copy, already checked to have a
    /// payload size of at most 240 bytes and an accepted type. `false`:
    /// not now (the consumer is full); the message stays in the slot, which
    /// holds the host's next ones back, until the consumer asks for it
    /// again ([`Synic::poll`] on `cpu`).
    fn message(&self, cpu: u32, msg: &HvMessage) -> bool;
    /// Event flags `0..flag_count()` are this consumer's; others are dropped.
    fn flag_count(&self) -> u32 {
        0
    }
    /// Event flag `flag` (below `flag_count()`) was set.
    fn event(&self, _cpu: u32, _flag: u32) {}
}

/// Counters of one SINT over all CPUs (debugfs `synic/sintN`).
pub(crate) struct SintCounters {
    pub(crate) interrupts: Atomic<u64>,
    pub(crate) messages: Atomic<u64>,
    pub(crate) events: Atomic<u64>,
    pub(crate) eom: Atomic<u64>,
    pub(crate) dropped_oversize: Atomic<u64>,
    pub(crate) dropped_unknown_type: Atomic<u64>,
    pub(crate) dropped_no_consumer: Atomic<u64>,
    pub(crate) dropped_bad_flag: Atomic<u64>,
    /// Messages left in the slot because the consumer was full.
    pub(crate) deferred: Atomic<u64>,
}

impl SintCounters {
    const fn new() -> Self {
        Self {
            interrupts: Atomic::new(0),
            messages: Atomic::new(0),
            events: Atomic::new(0),
            eom: Atomic::new(0),
            dropped_oversize: Atomic::new(0),
            dropped_unknown_type: Atomic::new(0),
            dropped_no_consumer: Atomic::new(0),
            dropped_bad_flag: Atomic::new(0),
            deferred: Atomic::new(0),
        }
    }

    /// Name and value of every counter, for debugfs and the tests.
    pub(crate) fn values(&self) -> [(&'static str, u64); 9] {
        [
            ("interrupts", self.interrupts.load(Relaxed)),
            ("messages", self.messages.load(Relaxed)),
            ("events", self.events.load(Relaxed)),
            ("eom", self.eom.load(Relaxed)),
            ("dropped_oversize", self.dropped_oversize.load(Relaxed)),
            (
                "dropped_unknown_type",
                self.dropped_unknown_type.load(Relaxed),
            ),
            (
                "dropped_no_consumer",
                self.dropped_no_consumer.load(Relaxed),
            ),
            ("dropped_bad_flag", self.dropped_bad_flag.load(Relaxed)),
            ("deferred", self.deferred.load(Relaxed)),
        ]
    }
}

/// The interrupt context of one SINT on one CPU: the `dev_id` of its irq.
///
/// # Invariants
///
/// `simp` and `siefp` point to the CPU's SIMP and SIEFP pages, and `synic`
/// to the [`Synic`]; all three outlive the irq whose handler this is (the
/// irq is freed before the pages, and every irq before the `Synic`).
struct SintIrq {
    cpu: u32,
    slot: usize,
    simp: *mut u8,
    siefp: *mut u8,
    synic: *const Synic,
}

// SAFETY: the pointers are addresses of pages and of the `Synic`, all of
// which are `Sync`; the handler only reads them and uses atomics or copies
// on the memory behind them.
unsafe impl Sync for SintIrq {}
// SAFETY: as above.
unsafe impl Send for SintIrq {}

impl VectorHandler for SintIrq {
    fn handle(&self) {
        // SAFETY: the `Synic` outlives this irq (type invariant).
        let synic = unsafe { &*self.synic };
        synic.counters[self.slot].interrupts.add(1, Relaxed);
        self.take_all();
    }
}

impl SintIrq {
    /// Serves the SINT: event flags first, then the message. Runs on this
    /// SINT's CPU with interrupts off (the handler, or [`Synic::poll`]).
    fn take_all(&self) {
        // SAFETY: the `Synic` outlives this irq (type invariant).
        let synic = unsafe { &*self.synic };
        let sint = SINTS[self.slot].0;
        let counters = &synic.counters[self.slot];
        let consumer = synic.consumers.lock()[self.slot].clone();
        self.take_events(consumer.as_deref(), counters, sint);
        self.take_message(consumer.as_deref(), counters, sint);
    }

    #[cfg(hv_guest_selftest)]
    /// The type in this SINT's slot (0: free).
    fn slot_type(&self) -> u32 {
        let Some(base) = message_slot_offset(usize::from(SINTS[self.slot].0)) else {
            return 0;
        };
        // SAFETY: the slot's first, aligned u32 in the live SIMP page (type
        // invariant), read atomically.
        let ty = unsafe {
            Atomic::<u32>::from_ptr(self.simp.add(base + MESSAGE_TYPE_OFFSET).cast::<u32>())
        };
        ty.load(kernel::sync::atomic::Acquire)
    }

    fn take_events(&self, consumer: Option<&dyn SintConsumer>, c: &SintCounters, sint: u8) {
        let limit = consumer.map_or(0, |c| c.flag_count().min(EVENT_FLAGS_COUNT as u32));
        let mut flag = 0usize;
        while flag < EVENT_FLAGS_COUNT {
            let Some((offset, _)) = event_flag_word(usize::from(sint), flag) else {
                break;
            };
            // SAFETY: `offset` is a 4-byte aligned offset inside the SIEFP
            // page (from the shared geometry), which lives as long as this
            // irq (type invariant). The host sets bits in it concurrently,
            // which is why the word is exchanged atomically.
            let word = unsafe { Atomic::<u32>::from_ptr(self.siefp.add(offset).cast::<u32>()) };
            if word.load(Relaxed) != 0 {
                let mut bits = word.xchg(0, kernel::sync::atomic::Full);
                while bits != 0 {
                    let bit = bits.trailing_zeros();
                    bits &= bits - 1;
                    let n = (flag + bit as usize) as u32;
                    match consumer {
                        Some(consumer) if n < limit => {
                            c.events.add(1, Relaxed);
                            consumer.event(self.cpu, n);
                        }
                        _ => c.dropped_bad_flag.add(1, Relaxed),
                    }
                }
            }
            flag += 32;
        }
    }

    fn take_message(&self, consumer: Option<&dyn SintConsumer>, c: &SintCounters, sint: u8) {
        let Some(base) = message_slot_offset(usize::from(sint)) else {
            return;
        };
        // SAFETY: the slot is inside the SIMP page, alive (type invariant).
        let slot = unsafe { self.simp.add(base) };
        // SAFETY: `message_type` is the slot's first, aligned u32.
        let ty = unsafe { Atomic::<u32>::from_ptr(slot.add(MESSAGE_TYPE_OFFSET).cast::<u32>()) };
        if ty.load(kernel::sync::atomic::Acquire) == 0 {
            return; // an event-only interrupt, or a slot already taken
        }
        let mut msg: HvMessage = zerocopy::FromZeros::new_zeroed();
        // SAFETY: the slot is `HV_MESSAGE_SIZE` bytes of the live SIMP page
        // and `msg` a local of that size; the host may be writing the slot:
        // `copy_shared` copies some bytes, which is all we rely on:
        // everything below looks at the copy.
        unsafe {
            crate::shim::copy_shared(
                zerocopy::IntoBytes::as_mut_bytes(&mut msg).as_mut_ptr(),
                slot.cast_const(),
                HV_MESSAGE_SIZE,
            )
        };
        if usize::from(msg.header.payload_size) > HV_MESSAGE_PAYLOAD_BYTE_COUNT {
            c.dropped_oversize.add(1, Relaxed);
        } else {
            match consumer {
                None => c.dropped_no_consumer.add(1, Relaxed),
                Some(consumer) if !consumer.accepts(msg.header.message_type) => {
                    c.dropped_unknown_type.add(1, Relaxed)
                }
                Some(consumer) => {
                    if !consumer.message(self.cpu, &msg) {
                        // Left in the slot: the host keeps the rest.
                        c.deferred.add(1, Relaxed);
                        return;
                    }
                    c.messages.add(1, Relaxed);
                }
            }
        }
        // Free the slot, then look at the pending flag: the host sets it
        // when it found the slot busy, and delivers the next message only
        // after EOM. The full barrier orders our store of the type before
        // the load of the flag (as the TLFS requires).
        ty.store(0, kernel::sync::atomic::Release);
        kernel::sync::barrier::smp_mb(kernel::sync::barrier::Full);
        // SAFETY: inside the live slot; a plain byte read of a flag.
        let flags = unsafe { core::ptr::read_volatile(slot.add(MESSAGE_FLAGS_OFFSET)) };
        if flags & MESSAGE_FLAG_PENDING != 0 {
            c.eom.add(1, Relaxed);
            if shim::wrmsr(msr::EOM, 0).is_err() {
                pr_warn!("EOM write failed on CPU {}\n", self.cpu);
            }
        }
    }
}

/// What one online CPU owns: its pages and its vectors.
struct CpuSynic {
    // Drop order matters: the vectors (irqs) go before the pages and the
    // `SintIrq`s their handlers use.
    vectors: KVec<CpuVector<SintIrq>>,
    simp: SharedPage,
    siefp: SharedPage,
}

/// Vector of one SINT on one CPU, for debugfs and the tests.
#[derive(Clone, Copy)]
pub(crate) struct SintVector {
    pub(crate) cpu: u32,
    pub(crate) sint: u8,
    pub(crate) vector: u8,
    pub(crate) irq: u32,
}

/// The SynIC of all CPUs and the consumers of its SINTs.
#[pin_data]
pub(crate) struct Synic {
    /// The consumer of each slot of [`SINTS`]; taken in the interrupt
    /// handlers, hence an irq-safe spinlock, held only to clone the `Arc`.
    #[pin]
    consumers: SpinLockIrq<[Option<Arc<dyn SintConsumer>>; SINTS.len()]>,
    /// Per possible CPU, what it owns while online. Changed only by the
    /// hotplug callbacks (on that CPU) and read by debugfs and tests.
    #[pin]
    cpus: Mutex<KVec<Option<KBox<CpuSynic>>>>,
    /// Counters per slot of [`SINTS`].
    pub(crate) counters: [SintCounters; SINTS.len()],
}

/// A [`Synic`] programmed on every online CPU, and on every CPU that comes
/// online later (a CPU hotplug state whose instance is the `Synic`);
/// dropping it tears every CPU down and returns every vector and page.
pub(crate) struct SynicHandle {
    hotplug: Hotplug<Synic>,
}

impl SynicHandle {
    /// Sets up the SynIC on every online CPU, and on every CPU that comes
    /// online later.
    pub(crate) fn new() -> Result<Self> {
        let mut cpus = KVec::new();
        for _ in 0..kernel::cpu::nr_cpu_ids() {
            cpus.push(None, GFP_KERNEL)?;
        }
        let synic = Arc::pin_init(
            pin_init!(Synic {
                consumers <- new_spinlock_irq!([const { None }; SINTS.len()], "hv_guest_consumers"),
                cpus <- new_mutex!(cpus, "hv_guest_synic_cpus"),
                counters: [const { SintCounters::new() }; SINTS.len()],
            }),
            GFP_KERNEL,
        )?;
        Ok(Self {
            hotplug: Hotplug::new(c_str!("hv_guest/synic:online"), synic)?,
        })
    }

    /// The SynIC.
    pub(crate) fn synic(&self) -> &Arc<Synic> {
        self.hotplug.ctx()
    }
}

impl HotplugCallbacks for Synic {
    fn online(&self, cpu: u32) -> Result {
        Synic::online(self, cpu).inspect_err(|e| {
            pr_err!("SynIC setup failed on CPU {}: {:?}\n", cpu, e);
        })
    }

    fn offline(&self, cpu: u32) {
        Synic::offline(self, cpu);
    }
}

impl Synic {
    /// Programs this CPU's SynIC (runs on `cpu`).
    fn online(&self, cpu: u32) -> Result {
        let mut cpus = self.cpus.lock();
        let entry = cpus.get_mut(cpu as usize).ok_or(EINVAL)?;
        if entry.is_some() {
            return Ok(());
        }
        let simp = SharedPage::new()?;
        let siefp = SharedPage::new()?;
        let mut vectors = KVec::with_capacity(SINTS.len(), GFP_KERNEL)?;
        for (slot, (_, name)) in SINTS.iter().enumerate() {
            let ctx = SintIrq {
                cpu,
                slot,
                simp: simp.as_ptr(),
                siefp: siefp.as_ptr(),
                synic: self,
            };
            // INVARIANT (SintIrq): the vector is stored in `CpuSynic` with
            // the pages, and dropped before them (field order) and before
            // `self` (every CPU is torn down before the `Synic` goes).
            vectors.push(CpuVector::new(cpu, name, ctx)?, GFP_KERNEL)?;
        }
        // Boxed before the host learns the pages' addresses, so that no
        // failure after programming can free them while the host still
        // writes there.
        let setup = KBox::new(
            CpuSynic {
                vectors,
                simp,
                siefp,
            },
            GFP_KERNEL,
        )?;
        if let Err(e) = program(&setup) {
            unprogram();
            return Err(e);
        }
        *entry = Some(setup);
        Ok(())
    }

    /// Tears this CPU's SynIC down (runs on `cpu`).
    fn offline(&self, cpu: u32) {
        let mut cpus = self.cpus.lock();
        let Some(entry) = cpus.get_mut(cpu as usize) else {
            return;
        };
        if entry.is_some() {
            unprogram();
            // Frees the irqs (waiting for running handlers), then the pages.
            *entry = None;
        }
    }

    /// Registers `consumer` for `sint`; `EBUSY` if it has one, `EINVAL` if
    /// this module does not program that SINT.
    pub(crate) fn register(
        self: &Arc<Self>,
        sint: u8,
        consumer: Arc<dyn SintConsumer>,
    ) -> Result<ConsumerRegistration> {
        let slot = slot_of(sint).ok_or(EINVAL)?;
        let mut consumers = self.consumers.lock();
        if consumers[slot].is_some() {
            return Err(EBUSY);
        }
        consumers[slot] = Some(consumer);
        Ok(ConsumerRegistration {
            synic: self.clone(),
            slot,
        })
    }

    /// The vectors programmed, CPU by CPU.
    pub(crate) fn vectors(&self, out: &mut KVec<SintVector>) -> Result {
        let cpus = self.cpus.lock();
        for (cpu, entry) in cpus.iter().enumerate() {
            if let Some(setup) = entry {
                for (slot, v) in setup.vectors.iter().enumerate() {
                    out.push(
                        SintVector {
                            cpu: cpu as u32,
                            sint: SINTS[slot].0,
                            vector: v.vector(),
                            irq: v.irq(),
                        },
                        GFP_KERNEL,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Counters of `sint`, if this module programs it.
    pub(crate) fn counters(&self, sint: u8) -> Option<&SintCounters> {
        slot_of(sint).map(|slot| &self.counters[slot])
    }

    /// Runs `f` with the vector and interrupt context of `sint` on `cpu`,
    /// holding the CPU table so that the CPU cannot go away meanwhile.
    fn with_sint<R>(
        &self,
        cpu: u32,
        sint: u8,
        f: impl FnOnce(&CpuVector<SintIrq>) -> Result<R>,
    ) -> Result<R> {
        let slot = slot_of(sint).ok_or(EINVAL)?;
        let cpus = self.cpus.lock();
        let setup = cpus
            .get(cpu as usize)
            .and_then(|c| c.as_ref())
            .ok_or(ENXIO)?;
        f(setup.vectors.get(slot).ok_or(EINVAL)?)
    }

    #[cfg(hv_guest_selftest)]
    /// Masks or unmasks `sint` on `cpu` (keeping its vector). A masked
    /// SINT still gets messages and flags; only the interrupt is held back.
    pub(crate) fn set_masked(&self, cpu: u32, sint: u8, masked: bool) -> Result {
        let reg = msr::sint(u32::from(sint)).ok_or(EINVAL)?;
        self.with_sint(cpu, sint, |v| {
            let value = SintReg::new(v.vector()).with_masked(masked).0;
            shim::on_cpu(cpu, || shim::wrmsr(reg, value))?
        })
    }

    #[cfg(hv_guest_selftest)]
    /// The message type in `sint`'s SIMP slot on `cpu` (0: free).
    pub(crate) fn slot_type(&self, cpu: u32, sint: u8) -> Result<u32> {
        self.with_sint(cpu, sint, |v| Ok(v.handler().slot_type()))
    }

    /// Takes what `sint` has on `cpu` (flags, then the message) as the
    /// interrupt handler would, on that CPU: how a masked or polling SINT is
    /// served, and how a consumer that was full takes the message it left.
    pub(crate) fn poll(&self, cpu: u32, sint: u8) -> Result {
        self.with_sint(cpu, sint, |v| shim::on_cpu(cpu, || v.handler().take_all()))
    }

    fn synchronize(&self, slot: usize) {
        let cpus = self.cpus.lock();
        for setup in cpus.iter().flatten() {
            if let Some(v) = setup.vectors.get(slot) {
                v.synchronize();
            }
        }
    }
}

/// Writes this CPU's SynIC MSRs: pages, SINTs, then the enable. Runs on the
/// CPU concerned; each write is read back where the host could refuse it.
fn program(setup: &CpuSynic) -> Result {
    shim::wrmsr(msr::SIMP, PageMsr::enabled_at(setup.simp.phys()).0)?;
    shim::wrmsr(msr::SIEFP, PageMsr::enabled_at(setup.siefp.phys()).0)?;
    for (pair, v) in SINTS.iter().zip(setup.vectors.iter()) {
        let reg = msr::sint(u32::from(pair.0)).ok_or(EINVAL)?;
        shim::wrmsr(reg, SintReg::new(v.vector()).0)?;
    }
    let scontrol = Scontrol(shim::rdmsr(msr::SCONTROL)?);
    shim::wrmsr(msr::SCONTROL, scontrol.0 | Scontrol::ENABLE)?;
    let simp = PageMsr(shim::rdmsr(msr::SIMP)?);
    if !simp.enabled() || simp.gpa() != setup.simp.phys() {
        pr_err!(
            "host did not accept the SIMP page: read back {:#x}\n",
            simp.0
        );
        return Err(EIO);
    }
    Ok(())
}

/// Masks our SINTs and disables the pages and the SynIC on this CPU. Errors
/// are logged and ignored: teardown must go on.
fn unprogram() {
    for (sint, _) in SINTS {
        if let Some(reg) = msr::sint(u32::from(sint)) {
            let _ = shim::wrmsr(reg, SintReg::RESET.0);
        }
    }
    let _ = shim::wrmsr(msr::SCONTROL, 0);
    let _ = shim::wrmsr(msr::SIMP, 0);
    let _ = shim::wrmsr(msr::SIEFP, 0);
}

/// A consumer's registration; dropping it unregisters and waits until no
/// handler of that SINT still runs the consumer on any CPU.
pub(crate) struct ConsumerRegistration {
    synic: Arc<Synic>,
    slot: usize,
}

impl Drop for ConsumerRegistration {
    fn drop(&mut self) {
        let old = self.synic.consumers.lock()[self.slot].take();
        self.synic.synchronize(self.slot);
        drop(old);
    }
}
