// SPDX-License-Identifier: GPL-2.0

//! One vCPU: its initial state (CPUID, MSRs, LAPIC pins, and for the boot vCPU the
//! 64-bit entry state) and its run loop.
//!
//! The run loop turns KVM exits into bus accesses and counts them. It never decides what
//! a port means; devices do. It stops when [`VmControl`] says so, and it ends the VM itself
//! only for exits that leave this vCPU unable to continue (triple fault, internal error,
//! failed entry, an ioctl error), always naming the vCPU, the exit and RIP.

use std::fmt;
use std::sync::Arc;

use kvm_bindings::{
    kvm_cpuid_entry2, CpuId, Msrs, KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET,
    KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};
use vm_memory::GuestMemoryMmap;

use crate::boot::{self, lapic};
use crate::control::{VmControl, VmExitReason};
use crate::devices::{MmioBus, PioBus};
use crate::hyperv::msrs::VpHv;
use crate::hyperv::HYPERCALL_PORT;

use super::VstateError;

/// Exit counters of one vCPU; plain integers, owned by the vCPU thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// IN instructions.
    pub io_in: u64,
    /// OUT instructions.
    pub io_out: u64,
    /// MMIO reads.
    pub mmio_read: u64,
    /// MMIO writes.
    pub mmio_write: u64,
    /// HLT exits (rare with the in-kernel LAPIC).
    pub hlt: u64,
    /// KVM_EXIT_SHUTDOWN.
    pub shutdown: u64,
    /// KVM_RUN interrupted by a signal (EINTR or KVM_EXIT_INTR).
    pub intr: u64,
    /// KVM_EXIT_INTERNAL_ERROR.
    pub internal_error: u64,
    /// KVM_EXIT_FAIL_ENTRY.
    pub fail_entry: u64,
    /// KVM_EXIT_SYSTEM_EVENT.
    pub system_event: u64,
    /// Any other exit.
    pub other: u64,
    /// Port accesses no device claimed.
    pub unclaimed_io: u64,
    /// MMIO accesses no device claimed.
    pub unclaimed_mmio: u64,
    /// MSR reads and writes handed to user space.
    pub msr: u64,
    /// Hypercalls (trampoline exits).
    pub hypercall: u64,
}

/// The counts as `key=value` fields, space-separated (the log and the
/// exit report).
impl fmt::Display for ExitStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "io_in={} io_out={} mmio_read={} mmio_write={} hlt={} shutdown={} intr={} \
             internal_error={} fail_entry={} system_event={} other={} unclaimed_io={} \
             unclaimed_mmio={} msr={} hypercall={}",
            self.io_in,
            self.io_out,
            self.mmio_read,
            self.mmio_write,
            self.hlt,
            self.shutdown,
            self.intr,
            self.internal_error,
            self.fail_entry,
            self.system_event,
            self.other,
            self.unclaimed_io,
            self.unclaimed_mmio,
            self.msr,
            self.hypercall
        )
    }
}

/// Exits kept per vCPU for the report of a fatal exit.
pub const EXIT_HISTORY: usize = 64;

/// One exit as the run loop saw it: KVM's exit reason, the port (I/O) or MSR
/// index and value (MSR exits), and the registers KVM stored in the sync area.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitRecord {
    /// `kvm_run.exit_reason`.
    pub reason: u32,
    /// I/O: the port. MSR exits: the index.
    pub what: u32,
    /// MSR exits: the value written or read.
    pub value: u64,
    /// Guest RIP at the exit.
    pub rip: u64,
    /// Guest RSP at the exit.
    pub rsp: u64,
    /// Guest RFLAGS at the exit.
    pub rflags: u64,
}

impl fmt::Display for ExitRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.reason {
            kvm_bindings::KVM_EXIT_IO => "io",
            kvm_bindings::KVM_EXIT_MMIO => "mmio",
            kvm_bindings::KVM_EXIT_X86_RDMSR => "rdmsr",
            kvm_bindings::KVM_EXIT_X86_WRMSR => "wrmsr",
            kvm_bindings::KVM_EXIT_SHUTDOWN => "shutdown",
            kvm_bindings::KVM_EXIT_INTR => "intr",
            _ => "other",
        };
        write!(f, "{name}({})", self.reason)?;
        match self.reason {
            kvm_bindings::KVM_EXIT_IO => write!(f, " port {:#x}", self.what)?,
            kvm_bindings::KVM_EXIT_X86_RDMSR | kvm_bindings::KVM_EXIT_X86_WRMSR => {
                write!(f, " msr {:#x} value {:#x}", self.what, self.value)?
            }
            _ => {}
        }
        write!(
            f,
            " rip {:#x} rsp {:#x} rflags {:#x}",
            self.rip, self.rsp, self.rflags
        )
    }
}

/// The last [`EXIT_HISTORY`] exits of one vCPU, oldest first when listed. A
/// triple fault resets the vCPU (SVM INITs it), so its registers say nothing;
/// what the guest did just before, as seen from its exits, is all there is.
pub struct ExitHistory {
    records: [ExitRecord; EXIT_HISTORY],
    next: usize,
}

impl Default for ExitHistory {
    fn default() -> Self {
        Self {
            records: [ExitRecord::default(); EXIT_HISTORY],
            next: 0,
        }
    }
}

impl ExitHistory {
    /// Records one exit.
    pub fn push(&mut self, record: ExitRecord) {
        self.records[self.next % EXIT_HISTORY] = record;
        self.next = self.next.wrapping_add(1);
    }

    /// The exits kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &ExitRecord> {
        let kept = self.next.min(EXIT_HISTORY);
        (self.next - kept..self.next).map(|i| &self.records[i % EXIT_HISTORY])
    }
}

/// What the vCPU threads share.
#[derive(Clone)]
pub struct VcpuContext {
    /// Port I/O devices.
    pub pio: Arc<PioBus>,
    /// MMIO devices.
    pub mmio: Arc<MmioBus>,
    /// How the VM ends.
    pub control: Arc<VmControl>,
    /// Guest RAM, kept mapped while this vCPU's fd is open.
    pub memory: Arc<GuestMemoryMmap>,
}

/// Entry state of the boot vCPU.
#[derive(Clone, Copy, Debug)]
pub struct BootEntry {
    /// 64-bit entry point.
    pub entry: u64,
}

/// A vCPU and what it needs to run.
pub struct Vcpu {
    index: u8,
    // Declared before `ctx`: the fd is closed before the memory reference is dropped.
    fd: VcpuFd,
    ctx: VcpuContext,
    stats: ExitStats,
    hv: VpHv,
    history: ExitHistory,
}

/// What to do after an exit has been handled.
enum Next {
    Continue,
    /// The guest ran the hypercall trampoline; its registers are in the sync area.
    Hypercall,
    Stop(VmExitReason),
    Fatal(FatalExit),
}

/// Exits that need the vCPU's registers to report, read after the exit is released.
enum FatalExit {
    Shutdown,
    InternalError,
    FailEntry(u64),
}

impl Vcpu {
    /// Wraps a created vCPU.
    pub fn new(index: u8, fd: VcpuFd, ctx: VcpuContext, hv: VpHv) -> Self {
        Self {
            index,
            fd,
            ctx,
            stats: ExitStats::default(),
            hv,
            history: ExitHistory::default(),
        }
    }

    /// The guest TSC (IA32_TSC) now, and KVM's TSC frequency in kHz, for the reference
    /// clock's calibration.
    pub fn tsc(&self) -> Result<(u64, Option<u64>), VstateError> {
        const IA32_TSC: u32 = 0x10;
        let mut msrs = Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
            index: IA32_TSC,
            ..Default::default()
        }])
        .map_err(|e| VstateError::Cpuid {
            vcpu: self.index,
            reason: format!("cannot build the MSR list: {e:?}"),
        })?;
        self.fd
            .get_msrs(&mut msrs)
            .map_err(self.kvm_err("read the TSC"))?;
        let tsc = msrs.as_slice().first().map_or(0, |e| e.data);
        let khz = self.fd.get_tsc_khz().ok().map(u64::from).filter(|k| *k > 0);
        Ok((tsc, khz))
    }

    fn kvm_err(&self, what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VstateError {
        let vcpu = self.index;
        move |source| VstateError::KvmVcpu { what, vcpu, source }
    }

    /// Sets CPUID, MSRs and the LAPIC's LINT0 (ExtINT) / LINT1 (NMI); for the boot vCPU
    /// also the 64-bit entry state. Other vCPUs stay in wait-for-SIPI.
    pub fn configure(
        &self,
        cpuid: &[kvm_cpuid_entry2],
        boot: Option<BootEntry>,
    ) -> Result<(), VstateError> {
        let cpuid = CpuId::from_entries(cpuid).map_err(|e| VstateError::Cpuid {
            vcpu: self.index,
            reason: format!("{e:?}"),
        })?;
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(self.kvm_err("set CPUID"))?;

        let entries = boot::boot_msrs();
        let msrs = Msrs::from_entries(&entries).map_err(|e| VstateError::Cpuid {
            vcpu: self.index,
            reason: format!("cannot build the MSR list: {e:?}"),
        })?;
        let set = self.fd.set_msrs(&msrs).map_err(self.kvm_err("set MSRs"))?;
        if set != entries.len() {
            let refused = entries.get(set).map(|e| e.index).unwrap_or_default();
            log::warn!(
                "vCPU {}: KVM refused MSR {refused:#x}; continuing",
                self.index
            );
        }

        let mut lapic_state = self
            .fd
            .get_lapic()
            .map_err(self.kvm_err("read the LAPIC"))?;
        for (reg, mode) in [
            (lapic::APIC_LVT0, lapic::APIC_MODE_EXTINT),
            (lapic::APIC_LVT1, lapic::APIC_MODE_NMI),
        ] {
            let bytes = &mut lapic_state.regs[reg..reg + 4];
            let old = u32::from_le_bytes([
                bytes[0] as u8,
                bytes[1] as u8,
                bytes[2] as u8,
                bytes[3] as u8,
            ]);
            let new = lapic::with_delivery_mode(old, mode).to_le_bytes();
            for (dst, src) in bytes.iter_mut().zip(new) {
                *dst = src as libc::c_char;
            }
        }
        self.fd
            .set_lapic(&lapic_state)
            .map_err(self.kvm_err("write the LAPIC"))?;

        if let Some(boot) = boot {
            let mut sregs = self.fd.get_sregs().map_err(self.kvm_err("read sregs"))?;
            boot::setup_long_mode_sregs(&mut sregs);
            self.fd
                .set_sregs(&sregs)
                .map_err(self.kvm_err("set sregs"))?;
            self.fd
                .set_regs(&boot::boot_regs(boot.entry))
                .map_err(self.kvm_err("set registers"))?;
            self.fd
                .set_fpu(&boot::boot_fpu())
                .map_err(self.kvm_err("set the FPU state"))?;
        }
        Ok(())
    }

    fn rip(&self) -> Option<u64> {
        self.fd.get_regs().ok().map(|r| r.rip)
    }

    /// Runs until the VM stops; returns the exit counters.
    pub fn run(mut self) -> ExitStats {
        self.fd.set_kvm_immediate_exit(0);
        // KVM stores the general registers in kvm_run on every exit, so a hypercall reads
        // RCX/RDX/R8 and writes RAX without a GET/SET_REGS pair.
        self.fd.set_sync_valid_reg(SyncReg::Register);
        while !self.ctx.control.should_stop() {
            let next = self.run_once();
            self.record_exit();
            match next {
                Next::Continue => {}
                Next::Hypercall => self.hypercall(),
                Next::Stop(reason) => self.ctx.control.request_exit(reason),
                Next::Fatal(fatal) => {
                    for (i, r) in self.history.iter().enumerate() {
                        log::error!("vCPU {} exit history [{i}]: {r}", self.index);
                    }
                    let reason = self.describe_fatal(fatal);
                    self.ctx.control.request_exit(reason);
                }
            }
        }
        if matches!(self.ctx.control.reason(), Some(VmExitReason::Signal(_))) {
            self.log_where_stopped();
        }
        self.stats
    }

    /// Stopped from outside (a signal to hvhost), typically because the
    /// guest stopped making progress: where this vCPU was, so that a hang
    /// says whether it halted, waited for a SIPI or spun.
    fn log_where_stopped(&self) {
        let regs = self.fd.get_regs().ok();
        let mp_state = self.fd.get_mp_state().ok().map(|m| m.mp_state);
        log::warn!(
            "vCPU {} stopped at RIP {:#x} RSP {:#x} RFLAGS {:#x}, mp_state {:?}, last exit: {}",
            self.index,
            regs.map_or(0, |r| r.rip),
            regs.map_or(0, |r| r.rsp),
            regs.map_or(0, |r| r.rflags),
            mp_state,
            self.history
                .iter()
                .last()
                .map_or_else(|| "none".to_string(), ToString::to_string)
        );
    }

    /// Adds the exit just taken to the history, from the sync area KVM filled
    /// (no ioctl).
    fn record_exit(&mut self) {
        let regs = self.fd.sync_regs().regs;
        let run = self.fd.get_kvm_run();
        let (what, value) = match run.exit_reason {
            // SAFETY: the exit reason says which member of the exit union KVM
            // filled; both are plain integers.
            kvm_bindings::KVM_EXIT_IO => (u32::from(unsafe { run.__bindgen_anon_1.io.port }), 0),
            kvm_bindings::KVM_EXIT_X86_RDMSR | kvm_bindings::KVM_EXIT_X86_WRMSR => {
                // SAFETY: as above, the `msr` member.
                let msr = unsafe { run.__bindgen_anon_1.msr };
                (msr.index, msr.data)
            }
            _ => (0, 0),
        };
        self.history.push(ExitRecord {
            reason: run.exit_reason,
            what,
            value,
            rip: regs.rip,
            rsp: regs.rsp,
            rflags: regs.rflags,
        });
    }

    fn hypercall(&mut self) {
        self.stats.hypercall += 1;
        let regs = &mut self.fd.sync_regs_mut().regs;
        let (rcx, rdx, r8) = (regs.rcx, regs.rdx, regs.r8);
        regs.rax = self
            .hv
            .partition()
            .hypercall(self.hv.vp_index(), rcx, rdx, r8);
        self.fd.set_sync_dirty_reg(SyncReg::Register);
    }

    fn run_once(&mut self) -> Next {
        let Self {
            index,
            fd,
            ctx,
            stats,
            hv,
            ..
        } = self;
        let vcpu = *index;
        match fd.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                stats.io_in += 1;
                if !ctx.pio.read(port, data) {
                    stats.unclaimed_io += 1;
                }
                Next::Continue
            }
            Ok(VcpuExit::IoOut(port, _)) if port == u16::from(HYPERCALL_PORT) => Next::Hypercall,
            Ok(VcpuExit::IoOut(port, data)) => {
                stats.io_out += 1;
                if !ctx.pio.write(port, data) {
                    stats.unclaimed_io += 1;
                }
                Next::Continue
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                stats.mmio_read += 1;
                if !ctx.mmio.read(addr, data) {
                    stats.unclaimed_mmio += 1;
                }
                Next::Continue
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                stats.mmio_write += 1;
                if !ctx.mmio.write(addr, data) {
                    stats.unclaimed_mmio += 1;
                }
                Next::Continue
            }
            Ok(VcpuExit::X86Rdmsr(exit)) => {
                stats.msr += 1;
                match read_msr(hv, exit.index) {
                    Some(value) => *exit.data = value,
                    None => *exit.error = 1,
                }
                Next::Continue
            }
            Ok(VcpuExit::X86Wrmsr(exit)) => {
                stats.msr += 1;
                if !write_msr(hv, exit.index, exit.data) {
                    *exit.error = 1;
                }
                Next::Continue
            }
            Ok(VcpuExit::Hlt) => {
                stats.hlt += 1;
                Next::Continue
            }
            Ok(VcpuExit::Intr) => {
                stats.intr += 1;
                Next::Continue
            }
            Ok(VcpuExit::Shutdown) => {
                stats.shutdown += 1;
                Next::Fatal(FatalExit::Shutdown)
            }
            Ok(VcpuExit::InternalError) => {
                stats.internal_error += 1;
                Next::Fatal(FatalExit::InternalError)
            }
            Ok(VcpuExit::FailEntry(reason, _cpu)) => {
                stats.fail_entry += 1;
                Next::Fatal(FatalExit::FailEntry(reason))
            }
            Ok(VcpuExit::SystemEvent(kind, _data)) => {
                stats.system_event += 1;
                match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => Next::Stop(VmExitReason::PowerOff),
                    KVM_SYSTEM_EVENT_RESET => Next::Stop(VmExitReason::Reset),
                    KVM_SYSTEM_EVENT_CRASH => Next::Stop(VmExitReason::GuestCrash { vcpu }),
                    other => {
                        log::warn!("vCPU {vcpu}: ignoring KVM system event {other}");
                        Next::Continue
                    }
                }
            }
            Ok(other) => {
                stats.other += 1;
                Next::Stop(VmExitReason::VcpuFailed {
                    vcpu,
                    message: format!("unexpected KVM exit {other:?}"),
                })
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                stats.intr += 1;
                Next::Continue
            }
            Err(e) => Next::Stop(VmExitReason::VcpuFailed {
                vcpu,
                message: format!("KVM_RUN failed: {e}"),
            }),
        }
    }

    fn describe_fatal(&mut self, fatal: FatalExit) -> VmExitReason {
        let vcpu = self.index;
        match fatal {
            FatalExit::Shutdown => VmExitReason::TripleFault {
                vcpu,
                rip: self.rip(),
            },
            FatalExit::InternalError => {
                let run = self.fd.get_kvm_run();
                // SAFETY: the last KVM_RUN returned KVM_EXIT_INTERNAL_ERROR and nothing has
                // run since, so `internal` is the active member of the exit union; reading a
                // u32 from it cannot produce an invalid value.
                let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                VmExitReason::InternalError {
                    vcpu,
                    suberror,
                    rip: self.rip(),
                }
            }
            FatalExit::FailEntry(hardware_reason) => VmExitReason::FailEntry {
                vcpu,
                hardware_reason,
                rip: self.rip(),
            },
        }
    }
}

/// A guest RDMSR that KVM handed to user space; `None` is a #GP. Outside the synthetic
/// range these are MSRs KVM does not know, which it would have faulted itself.
fn read_msr(hv: &VpHv, index: u32) -> Option<u64> {
    if !hvcall::msr::is_synthetic(index) {
        log::debug!("VP {}: RDMSR {index:#x} unknown: #GP", hv.vp_index());
        return None;
    }
    let value = hv.read(index).ok();
    if value.is_none() {
        log::debug!("VP {}: RDMSR {index:#x}: #GP", hv.vp_index());
    }
    value
}

/// A guest WRMSR handed to user space; `false` is a #GP.
fn write_msr(hv: &mut VpHv, index: u32, value: u64) -> bool {
    if !hvcall::msr::is_synthetic(index) {
        log::debug!(
            "VP {}: WRMSR {index:#x} <- {value:#x} unknown: #GP",
            hv.vp_index()
        );
        return false;
    }
    let ok = hv.write(index, value).is_ok();
    if !ok {
        log::debug!("VP {}: WRMSR {index:#x} <- {value:#x}: #GP", hv.vp_index());
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_history_keeps_the_last_exits_in_order() {
        let mut h = ExitHistory::default();
        assert_eq!(h.iter().count(), 0);
        for rip in 0..(EXIT_HISTORY as u64 + 5) {
            h.push(ExitRecord {
                rip,
                ..Default::default()
            });
        }
        let rips: Vec<u64> = h.iter().map(|r| r.rip).collect();
        assert_eq!(rips.len(), EXIT_HISTORY);
        assert_eq!(rips[0], 5);
        assert_eq!(*rips.last().expect("one"), EXIT_HISTORY as u64 + 4);
        let w = ExitRecord {
            reason: kvm_bindings::KVM_EXIT_X86_WRMSR,
            what: 0x4000_0083,
            value: 0x8e_4001,
            rip: 0xffff_ffff_a041_68dd,
            rsp: 0x10,
            rflags: 0x246,
        };
        assert_eq!(
            w.to_string(),
            "wrmsr(30) msr 0x40000083 value 0x8e4001 rip 0xffffffffa04168dd rsp 0x10 rflags 0x246"
        );
    }

    #[test]
    fn summary_line_lists_every_counter() {
        let s = ExitStats {
            io_in: 3,
            io_out: 4,
            mmio_read: 1,
            hlt: 2,
            unclaimed_io: 5,
            ..Default::default()
        };
        let line = s.to_string();
        assert!(line.starts_with("io_in=3 io_out=4 mmio_read=1 mmio_write=0 hlt=2 shutdown=0"));
        assert!(line.ends_with("unclaimed_io=5 unclaimed_mmio=0 msr=0 hypercall=0"));
        // Every field is key=value, for the exit report.
        assert_eq!(line.split(' ').count(), 15);
        assert!(line.split(' ').all(|f| f.split_once('=').is_some()));
    }
}
