// SPDX-License-Identifier: GPL-2.0

//! The Hyper-V enlightenment contract served from user space: synthetic
//! MSRs ([`msrs`]), the hypercall page trampoline and hypercalls
//! ([`hypercalls`]), reference time ([`clock`]), synthetic timers
//! ([`stimer`]), the SynIC ([`synic`]) and the connection table devices
//! register with ([`connections`]). What is advertised comes from
//! `hvcall::advertise`; this module implements exactly that.
//!
//! State: a [`Partition`] is shared by every vCPU thread, the timer thread
//! and devices. Its partition-wide MSRs (GUEST_OS_ID, HYPERCALL,
//! REFERENCE_TSC) sit behind one mutex; each VP's SynIC has its own mutex
//! ([`synic::Synic`]); all synthetic timers share the [`stimer::Stimers`]
//! mutex. Lock order: stimers → SynIC; the partition mutex is never held
//! while taking another. Per-VP state that only its vCPU thread touches
//! (VP_ASSIST_PAGE) lives in [`msrs::VpHv`], owned by that thread.
//!
//! This module never issues KVM ioctls itself: interrupts go through an
//! [`synic::InterruptSink`] (KVM_SIGNAL_MSI in hvhost, a recorder in tests)
//! and guest memory through [`guest_mem::GuestPages`].

pub mod clock;
pub mod connections;
pub mod guest_mem;
pub mod hypercalls;
#[allow(unsafe_code)]
pub mod msrs;
pub mod stimer;
pub mod synic;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use clock::RefClock;
use connections::Connections;
use guest_mem::GuestPages;
use stimer::Stimers;
use synic::{InterruptSink, Synic};

/// The port of the hypercall trampoline `endbr64; out HYPERCALL_PORT, al;
/// ret`. Below 0x100 so that `out imm8` reaches it; not 0x7e (KVM's own
/// fast-PIO special case), 0x80 (POST codes) or 0xed (I/O delay), and not
/// used by any PC device. Reserved on the port bus so no device can claim it.
pub const HYPERCALL_PORT: u8 = 0x99;

/// The hypercall page contents: ENDBR64 (F3 0F 1E FA), OUT imm8, AL (E6 ib), RET (C3).
pub const TRAMPOLINE: [u8; 7] = [0xf3, 0x0f, 0x1e, 0xfa, 0xe6, HYPERCALL_PORT, 0xc3];

/// Partition-wide MSRs.
#[derive(Default)]
struct PartitionRegs {
    guest_os_id: u64,
    hypercall: u64,
    reference_tsc: u64,
    /// Last sequence written to the reference TSC page.
    tsc_sequence: u32,
}

/// Counters for the exit summary and benchmarks.
#[derive(Default)]
pub struct HvStats {
    /// Hypercalls served.
    pub hypercalls: AtomicU64,
    /// Hypercalls answered with a status other than success.
    pub hypercalls_refused: AtomicU64,
    /// Synthetic MSR reads and writes served.
    pub msr_accesses: AtomicU64,
    /// Synthetic MSR reads and writes answered with a #GP.
    pub msr_gp: AtomicU64,
}

/// One partition's Hyper-V state.
pub struct Partition {
    // Declared first: the timer thread stops before anything it uses goes.
    stimers: Stimers,
    irq: Arc<dyn InterruptSink>,
    mem: Arc<dyn GuestPages>,
    synics: Vec<Arc<Synic>>,
    clock: Arc<RefClock>,
    connections: Connections,
    regs: Mutex<PartitionRegs>,
    /// Counters.
    pub stats: HvStats,
}

impl Partition {
    /// A partition of `vcpus` VPs (VP index = vCPU index = APIC ID) over
    /// `mem`, interrupting through `irq`, with a guest TSC of `tsc_khz`.
    pub fn new(
        vcpus: u32,
        mem: Arc<dyn GuestPages>,
        irq: Arc<dyn InterruptSink>,
        tsc_khz: Option<u64>,
    ) -> std::io::Result<Arc<Self>> {
        let clock = Arc::new(RefClock::new(tsc_khz));
        let synics: Vec<Arc<Synic>> = (0..vcpus)
            .map(|vp| Arc::new(Synic::new(vp, vp, mem.clone(), irq.clone())))
            .collect();
        let stimers = Stimers::new(
            clock.clone(),
            irq.clone(),
            synics.clone(),
            (0..vcpus).collect(),
        )?;
        Ok(Arc::new(Self {
            stimers,
            irq,
            mem,
            synics,
            clock,
            connections: Connections::new(),
            regs: Mutex::new(PartitionRegs::default()),
            stats: HvStats::default(),
        }))
    }

    fn regs(&self) -> MutexGuard<'_, PartitionRegs> {
        self.regs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection table devices register their handlers in.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// VP `vp`'s SynIC, for devices that deliver messages and events.
    pub fn synic(&self, vp: u32) -> Option<&Arc<Synic>> {
        self.synics.get(usize::try_from(vp).ok()?)
    }

    /// Number of VPs.
    pub fn vp_count(&self) -> u32 {
        self.synics.len() as u32
    }

    /// The reference clock.
    pub fn clock(&self) -> &RefClock {
        &self.clock
    }

    /// Guest memory.
    pub fn memory(&self) -> &Arc<dyn GuestPages> {
        &self.mem
    }

    /// The interrupt sink.
    pub fn interrupts(&self) -> &Arc<dyn InterruptSink> {
        &self.irq
    }

    /// Stops the timer thread; the partition is inert afterwards.
    pub fn shutdown(&self) {
        self.stimers.shutdown();
    }

    fn count_msr(&self) {
        self.stats.msr_accesses.fetch_add(1, Ordering::Relaxed);
    }

    fn count_gp(&self) {
        self.stats.msr_gp.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holds [`HYPERCALL_PORT`] on the port bus. OUTs to it never arrive here (the vCPU
/// loop serves them as hypercalls); an IN reads as a floating bus.
pub struct TrampolinePort;

impl crate::devices::PioDevice for TrampolinePort {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u16, _data: &[u8]) {}
}
