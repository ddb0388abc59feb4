// SPDX-License-Identifier: GPL-2.0

//! The synthetic MSR state machine: what a guest RDMSR/WRMSR of
//! 0x40000000..0x400001FF reads, changes or faults.
//!
//! #GP exactly where KVM's in-kernel emulation (`arch/x86/kvm/hyperv.c`)
//! gives one for a guest access: writes to read-only MSRs (VP_INDEX,
//! VP_RUNTIME, TIME_REF_COUNT, SVERSION, the frequency MSRs), an unmasked
//! SINT with a vector below 16, a SIMP/SIEFP/HYPERCALL page outside RAM,
//! and any synthetic MSR hvhost does not advertise. Enabling HYPERCALL
//! while GUEST_OS_ID is 0 is ignored, and clearing GUEST_OS_ID clears the
//! enable bit, as KVM does.

use std::sync::Arc;

use hvcall::msr;
use hvcall::synic::{HypercallMsr, PageMsr, StimerConfig, HV_PAGE_SIZE, STIMER_COUNT};
use zerocopy::IntoBytes;

use super::synic::Gp;
use super::{Partition, TRAMPOLINE};

/// KVM's LAPIC timer runs at 1 GHz (`APIC_BUS_CYCLE_NS_DEFAULT` = 1 ns).
pub const APIC_FREQUENCY_HZ: u64 = 1_000_000_000;

/// One VP's view of the synthetic MSRs; owned by its vCPU thread.
pub struct VpHv {
    vp_index: u32,
    vp_assist: u64,
    partition: Arc<Partition>,
}

/// CPU time of the calling thread in 100 ns units: VP_RUNTIME, read on the
/// vCPU's own thread.
fn thread_cpu_time_100ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(10_000_000)
        .saturating_add(ts.tv_nsec as u64 / 100)
}

/// STIMERn CONFIG/COUNT: (timer, is_count).
fn stimer_reg(index: u32) -> Option<(usize, bool)> {
    let rel = index.checked_sub(msr::STIMER0_CONFIG)?;
    let timer = (rel / 2) as usize;
    (timer < STIMER_COUNT).then_some((timer, rel % 2 == 1))
}

impl VpHv {
    /// VP `vp_index` of `partition`.
    pub fn new(vp_index: u32, partition: Arc<Partition>) -> Self {
        Self {
            vp_index,
            vp_assist: 0,
            partition,
        }
    }

    /// The VP index.
    pub fn vp_index(&self) -> u32 {
        self.vp_index
    }

    /// The partition.
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    fn synic(&self) -> Result<&super::synic::Synic, Gp> {
        self.partition
            .synic(self.vp_index)
            .map(|s| s.as_ref())
            .ok_or(Gp)
    }

    /// Guest RDMSR of a synthetic MSR.
    pub fn read(&self, index: u32) -> Result<u64, Gp> {
        self.partition.count_msr();
        let r = self.read_msr(index);
        if r.is_err() {
            self.partition.count_gp();
        }
        r
    }

    fn read_msr(&self, index: u32) -> Result<u64, Gp> {
        let p = &self.partition;
        let sint = index
            .checked_sub(msr::SINT0)
            .filter(|n| *n < msr::SINT_COUNT);
        Ok(match index {
            msr::GUEST_OS_ID => p.regs().guest_os_id,
            msr::HYPERCALL => p.regs().hypercall,
            msr::VP_INDEX => u64::from(self.vp_index),
            msr::VP_RUNTIME => thread_cpu_time_100ns(),
            msr::VP_ASSIST_PAGE => self.vp_assist,
            msr::TIME_REF_COUNT => p.clock.now(),
            msr::REFERENCE_TSC => p.regs().reference_tsc,
            msr::TSC_FREQUENCY => p.clock.tsc_khz().ok_or(Gp)?.saturating_mul(1000),
            msr::APIC_FREQUENCY => APIC_FREQUENCY_HZ,
            msr::SCONTROL => self.synic()?.scontrol(),
            msr::SVERSION => self.synic()?.sversion(),
            msr::SIEFP => self.synic()?.siefp(),
            msr::SIMP => self.synic()?.simp(),
            msr::EOM => 0,
            _ if sint.is_some() => self
                .synic()?
                .sint(sint.unwrap_or_default() as usize)
                .ok_or(Gp)?,
            _ => match stimer_reg(index) {
                Some((t, false)) => p.stimers.config(self.vp_index as usize, t).ok_or(Gp)?,
                Some((t, true)) => p.stimers.count(self.vp_index as usize, t).ok_or(Gp)?,
                None => return Err(Gp),
            },
        })
    }

    /// Guest WRMSR of a synthetic MSR.
    pub fn write(&mut self, index: u32, value: u64) -> Result<(), Gp> {
        self.partition.count_msr();
        let r = self.write_msr(index, value);
        if r.is_err() {
            self.partition.count_gp();
        }
        r
    }

    fn write_msr(&mut self, index: u32, value: u64) -> Result<(), Gp> {
        let p = self.partition.clone();
        let sint = index
            .checked_sub(msr::SINT0)
            .filter(|n| *n < msr::SINT_COUNT);
        match index {
            msr::GUEST_OS_ID => {
                let mut regs = p.regs();
                regs.guest_os_id = value;
                if value == 0 {
                    regs.hypercall &= !HypercallMsr::ENABLE;
                }
            }
            msr::HYPERCALL => self.write_hypercall(value)?,
            msr::VP_ASSIST_PAGE => {
                // Kept, never used: hvhost advertises nothing that lives in
                // the assist page. KVM faults a page outside RAM.
                let page = PageMsr(value);
                if page.enabled() && !p.mem.is_ram(page.gpa(), HV_PAGE_SIZE) {
                    return Err(Gp);
                }
                self.vp_assist = value;
            }
            msr::REFERENCE_TSC => self.write_reference_tsc(value),
            msr::SCONTROL => self.synic()?.set_scontrol(value)?,
            msr::SIEFP => self.synic()?.set_siefp(value)?,
            msr::SIMP => self.synic()?.set_simp(value)?,
            msr::EOM => self.synic()?.eom(),
            _ if sint.is_some() => self
                .synic()?
                .set_sint(sint.unwrap_or_default() as usize, value)?,
            // VP_INDEX, VP_RUNTIME, TIME_REF_COUNT, SVERSION, TSC/APIC
            // frequency: read-only for the guest. Anything else: unknown.
            _ => match stimer_reg(index) {
                Some((_, false)) if !StimerConfig(value).guest_write_ok() => return Err(Gp),
                Some((t, false)) => p
                    .stimers
                    .set_config(self.vp_index as usize, t, value)
                    .ok_or(Gp)?,
                Some((t, true)) => p
                    .stimers
                    .set_count(self.vp_index as usize, t, value)
                    .ok_or(Gp)?,
                None => return Err(Gp),
            },
        }
        Ok(())
    }

    fn write_hypercall(&self, value: u64) -> Result<(), Gp> {
        let p = &self.partition;
        let mut regs = p.regs();
        if HypercallMsr(regs.hypercall).locked() {
            return Ok(());
        }
        if regs.guest_os_id == 0 {
            // KVM: "if guest os id is not set hypercall should remain disabled".
            return Ok(());
        }
        let new = HypercallMsr(value);
        log::debug!("VP {}: HYPERCALL <- {value:#x}", self.vp_index);
        if new.enabled() {
            p.mem.write(new.gpa(), &TRAMPOLINE).map_err(|_| Gp)?;
            log::info!(
                "VP {}: hypercall page enabled at {:#x}",
                self.vp_index,
                new.gpa()
            );
        }
        regs.hypercall = value;
        Ok(())
    }

    fn write_reference_tsc(&self, value: u64) {
        let p = &self.partition;
        let mut regs = p.regs();
        regs.reference_tsc = value;
        let page = PageMsr(value);
        if !page.enabled() {
            return;
        }
        // Never 0 (invalid: every clock read would exit) nor all ones.
        let mut seq = regs.tsc_sequence.wrapping_add(1);
        if seq == 0 || seq == u32::MAX {
            seq = 1;
        }
        regs.tsc_sequence = seq;
        let contents = p.clock.page(seq);
        if contents.sequence == 0 {
            log::warn!("reference TSC page published invalid: the TSC frequency is unknown");
        }
        if let Err(e) = p.mem.write(page.gpa(), contents.as_bytes()) {
            // KVM does not fault this write either; the guest just gets no page.
            log::warn!("VP {}: reference TSC page not written: {e}", self.vp_index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::guest_mem::{FakeMemory, GuestPages};
    use super::super::synic::tests::Irqs;
    use super::*;
    use hvcall::advertise;
    use hvcall::synic::{reference_time, ReferenceTscPage, SintReg};
    use std::time::Instant;

    pub(crate) fn partition(vcpus: u32) -> (Arc<FakeMemory>, Arc<Irqs>, Arc<Partition>) {
        let mem = Arc::new(FakeMemory::new(0x10_0000));
        let irqs = Arc::new(Irqs::default());
        let p =
            Partition::new(vcpus, mem.clone(), irqs.clone(), Some(2_000_000)).expect("partition");
        (mem, irqs, p)
    }

    #[test]
    fn every_advertised_msr_is_implemented() {
        let (_m, _i, p) = partition(1);
        let vp = VpHv::new(0, p);
        for index in advertise::implemented_msrs() {
            assert!(
                vp.read(index).is_ok(),
                "advertised MSR {index:#x} faults on read"
            );
        }
    }

    #[test]
    fn read_only_and_unknown_msrs_fault() {
        let (_m, _i, p) = partition(1);
        let mut vp = VpHv::new(0, p);
        for index in msr::READ_ONLY.iter().copied().chain([
            msr::RESET,
            msr::CRASH_CTL,
            msr::GUEST_IDLE,
            msr::TSC_INVARIANT_CONTROL,
            0x4000_01ff,
        ]) {
            assert_eq!(vp.write(index, 0), Err(Gp), "{index:#x}");
        }
        assert_eq!(vp.read(msr::CRASH_P0), Err(Gp));
        assert_eq!(vp.read(msr::STIMER0_CONFIG + 8), Err(Gp));
        assert_eq!(vp.write(msr::SINT0 + 3, 15), Err(Gp));
        assert_eq!(
            vp.write(msr::SINT0 + 3, SintReg::new(15).with_masked(true).0),
            Ok(())
        );
    }

    #[test]
    fn hypercall_enable_needs_guest_os_id() {
        let (mem, _i, p) = partition(1);
        let mut vp = VpHv::new(0, p);
        assert_eq!(vp.write(msr::HYPERCALL, 0x5001), Ok(()));
        assert_eq!(
            vp.read(msr::HYPERCALL),
            Ok(0),
            "ignored without GUEST_OS_ID"
        );
        vp.write(msr::GUEST_OS_ID, 0x8100_0000_0000_0000)
            .expect("os id");
        vp.write(msr::HYPERCALL, 0x5001).expect("enable");
        assert_eq!(vp.read(msr::HYPERCALL), Ok(0x5001));
        let mut page = [0u8; 7];
        mem.read(0x5000, &mut page).expect("page");
        assert_eq!(page, TRAMPOLINE);
        vp.write(msr::GUEST_OS_ID, 0).expect("clear");
        assert_eq!(
            vp.read(msr::HYPERCALL),
            Ok(0x5000),
            "clearing the OS ID clears enable"
        );
        vp.write(msr::GUEST_OS_ID, 1).expect("os id");
        assert_eq!(
            vp.write(msr::HYPERCALL, 0x7fff_f000_0001),
            Err(Gp),
            "page outside RAM"
        );
    }

    #[test]
    fn reference_tsc_page_is_valid_and_agrees_with_counter() {
        let (mem, _i, p) = partition(2);
        p.clock.calibrate(4_000_000_000, Instant::now());
        let mut vp = VpHv::new(1, p.clone());
        vp.write(msr::REFERENCE_TSC, 0x3001).expect("enable");
        let mut buf = [0u8; 24];
        mem.read(0x3000, &mut buf).expect("page");
        let page: ReferenceTscPage = zerocopy::transmute!(buf);
        assert_ne!(page.sequence, 0);
        let t = reference_time(4_000_000_000, page.scale, page.offset);
        assert!(t <= p.clock.now());
        vp.write(msr::REFERENCE_TSC, 0x3001).expect("again");
        mem.read(0x3000, &mut buf).expect("page");
        let again: ReferenceTscPage = zerocopy::transmute!(buf);
        assert_ne!(again.sequence, page.sequence);
        assert_eq!(vp.read(msr::TSC_FREQUENCY), Ok(2_000_000_000));
    }

    #[test]
    fn vp_index_time_ref_count_and_stimer() {
        let (_m, _i, p) = partition(2);
        let vp0 = VpHv::new(0, p.clone());
        let mut vp1 = VpHv::new(1, p.clone());
        assert_eq!(
            (vp0.read(msr::VP_INDEX), vp1.read(msr::VP_INDEX)),
            (Ok(0), Ok(1))
        );
        let a = vp0.read(msr::TIME_REF_COUNT).expect("count");
        let b = vp1.read(msr::TIME_REF_COUNT).expect("count");
        assert!(b >= a);
        vp1.write(msr::STIMER0_CONFIG, 0x1000 | 0xed << 4 | 8)
            .expect("config");
        vp1.write(msr::STIMER0_COUNT, u64::MAX / 2).expect("count");
        assert_eq!(
            vp1.read(msr::STIMER0_CONFIG),
            Ok(0x1000 | 0xed << 4 | 8 | 1)
        );
        assert_eq!(vp0.read(msr::STIMER0_CONFIG), Ok(0));
        vp1.write(msr::VP_ASSIST_PAGE, 0x9001).expect("assist");
        assert_eq!(vp1.read(msr::VP_ASSIST_PAGE), Ok(0x9001));
        p.shutdown();
    }

    /// Found by the `hypercall` fuzz target: a direct-mode timer on vector
    /// 2 was taken, and its expiry interrupted the vCPU on an exception
    /// vector. Such a config is a #GP, as an unmasked SINT below 16 is.
    #[test]
    fn direct_timer_below_vector_16_is_refused() {
        let (_m, _i, p) = partition(1);
        let mut vp = VpHv::new(0, p.clone());
        for vector in [0u64, 2, 15] {
            assert_eq!(
                vp.write(msr::STIMER0_CONFIG, 0x1000 | vector << 4 | 1),
                Err(Gp),
                "vector {vector}"
            );
        }
        assert_eq!(vp.read(msr::STIMER0_CONFIG), Ok(0));
        // The same vectors are fine in message mode (the field is unused).
        vp.write(msr::STIMER0_CONFIG, 2 << 4 | 2 << 16)
            .expect("message mode");
        vp.write(msr::STIMER0_CONFIG, 0x1000 | 16 << 4)
            .expect("vector 16");
        p.shutdown();
    }
}
