// SPDX-License-Identifier: GPL-2.0

//! The guest TSC rate KVM gives the vCPUs, checked against the host's.
//!
//! KVM gives every vCPU the VM's default TSC rate. On a host CPU without
//! constant TSC that default is the `tsc_khz` the host had when KVM
//! started; if the host refined `tsc_khz` since by more than KVM's
//! tolerance (250 ppm) and the CPU cannot scale the TSC, `kvm_set_tsc_khz`
//! gives up ("user requested TSC rate below hardware speed") and leaves the
//! vCPU's TSC scaling ratio at 0. KVM's own view of the guest TSC then
//! stands still, and a guest's TSC-deadline timer fires only after about
//! the host's uptime: the guest hangs. (The test rig met it: a nested host
//! whose early TSC calibration was 600 ppm off.)
//!
//! hvhost finds out by setting each vCPU's rate to KVM's own
//! (`KVM_SET_TSC_KHZ` of `KVM_GET_TSC_KHZ`), which a healthy KVM accepts as
//! a no-op; if KVM refuses, hvhost measures the host's TSC rate and sets
//! that, which KVM accepts without scaling.

use std::time::{Duration, Instant};

use kvm_ioctls::VcpuFd;

/// What [`check_rate`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscRate {
    /// KVM's rate is the host's.
    Sound,
    /// KVM's default was stale; the vCPUs now run at the measured rate.
    Repaired {
        /// KVM's stale default, kHz.
        stale: u32,
        /// The host's measured rate, kHz, now set.
        measured: u32,
    },
    /// KVM refused its own rate and the measured one too.
    Broken {
        /// KVM's default, kHz.
        stale: u32,
        /// The host's measured rate, kHz.
        measured: u32,
    },
    /// KVM does not say its rate (no KVM_CAP_GET_TSC_KHZ).
    Unknown,
}

/// Checks, and if need be repairs, the TSC rate of `vcpus` (before they
/// first run).
pub fn check_rate(vcpus: &[VcpuFd]) -> TscRate {
    let Some(stale) = vcpus
        .first()
        .and_then(|v| v.get_tsc_khz().ok())
        .filter(|k| *k > 0)
    else {
        return TscRate::Unknown;
    };
    if vcpus.iter().all(|v| v.set_tsc_khz(stale).is_ok()) {
        return TscRate::Sound;
    }
    let measured = host_tsc_khz();
    // A refined rate differs from the early one by less than 1%; outside
    // that the measurement is wrong, and a rate above the host's would put
    // KVM in catch-up mode with the ratio still unset.
    let plausible = measured > stale && u64::from(measured) * 100 < u64::from(stale) * 101;
    if plausible && vcpus.iter().all(|v| v.set_tsc_khz(measured).is_ok()) {
        TscRate::Repaired { stale, measured }
    } else {
        TscRate::Broken { stale, measured }
    }
}

/// The host's TSC rate in kHz: the median of seven 50 ms measurements
/// against the monotonic clock. Each end of a measurement is a TSC read
/// bracketed by two clock reads at most 20 µs apart (retried until so), so
/// a preemption between the reads cannot skew it; a nested host preempts
/// often.
fn host_tsc_khz() -> u32 {
    let mut rates: Vec<f64> = (0..7)
        .filter_map(|_| {
            let (t0, c0) = bracketed()?;
            std::thread::sleep(Duration::from_millis(50));
            let (t1, c1) = bracketed()?;
            let secs = t1.duration_since(t0).as_secs_f64();
            (secs > 0.0).then(|| c1.wrapping_sub(c0) as f64 / secs / 1000.0)
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).map_or(0, |r| *r as u32)
}

/// A TSC read and the clock at its middle, from the first of up to 1000
/// tries whose clock reads are at most 20 µs apart.
fn bracketed() -> Option<(Instant, u64)> {
    (0..1000).find_map(|_| {
        let before = Instant::now();
        let tsc = rdtsc();
        let after = Instant::now();
        let gap = after.duration_since(before);
        (gap <= Duration::from_micros(20)).then(|| (before + gap / 2, tsc))
    })
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86-64 CPU (KVM runs on no other here)
    // and reads a counter: no memory is touched.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_tsc_runs_at_a_plausible_rate() {
        // Between 100 MHz and 10 GHz on any machine this runs on.
        let khz = host_tsc_khz();
        assert!((100_000..10_000_000).contains(&khz), "{khz} kHz");
    }
}
