// SPDX-License-Identifier: GPL-2.0

//! Partition reference time: TIME_REF_COUNT and the reference TSC page.
//!
//! Reference time is 100 ns units since the partition was created, read
//! from the host's monotonic clock, so it is the same on every vCPU and
//! never goes back. The reference TSC page lets the guest compute the same
//! time from its TSC without an exit: `KVM_GET_TSC_KHZ` gives the scale,
//! and one sample of the guest TSC against the host clock (taken when vCPU
//! 0 is configured) gives the offset. The two agree as long as the guest
//! TSC runs at the rate KVM reports, which is what KVM promises.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hvcall::synic::{reference_time, tsc_scale, ReferenceTscPage};

/// The reference clock of one partition.
pub struct RefClock {
    start: Instant,
    tsc_khz: Option<u64>,
    /// Scale and offset of the page, once calibrated.
    page: Mutex<Option<(u64, i64)>>,
}

/// 100 ns units in `d`, saturating.
pub fn to_100ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos() / 100).unwrap_or(u64::MAX)
}

impl RefClock {
    /// A clock starting now, for a guest TSC of `tsc_khz` (unknown: no page).
    pub fn new(tsc_khz: Option<u64>) -> Self {
        Self {
            start: Instant::now(),
            tsc_khz,
            page: Mutex::new(None),
        }
    }

    /// TSC frequency in kHz, if KVM told us.
    pub fn tsc_khz(&self) -> Option<u64> {
        self.tsc_khz
    }

    /// Reference time now (TIME_REF_COUNT).
    pub fn now(&self) -> u64 {
        to_100ns(self.start.elapsed())
    }

    /// Reference time at `at`.
    pub fn at(&self, at: Instant) -> u64 {
        to_100ns(at.saturating_duration_since(self.start))
    }

    /// The host instant at which reference time reaches `time`.
    pub fn instant_of(&self, time: u64) -> Instant {
        self.start + Duration::from_nanos(time.saturating_mul(100))
    }

    /// Fixes the page's offset from the guest TSC `guest_tsc` read at `at`.
    pub fn calibrate(&self, guest_tsc: u64, at: Instant) {
        let Some(scale) = self.tsc_khz.and_then(tsc_scale) else {
            return;
        };
        let offset = (self.at(at) as i64).wrapping_sub(reference_time(guest_tsc, scale, 0) as i64);
        *self.page.lock().unwrap_or_else(PoisonError::into_inner) = Some((scale, offset));
    }

    /// The page contents for `sequence`, or an invalid page (sequence 0:
    /// "use TIME_REF_COUNT") when the clock could not be calibrated.
    pub fn page(&self, sequence: u32) -> ReferenceTscPage {
        match *self.page.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((scale, offset)) => ReferenceTscPage {
                sequence,
                reserved: 0,
                scale,
                offset,
            },
            None => ReferenceTscPage::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_agrees_with_counter() {
        let clock = RefClock::new(Some(2_000_000)); // 2 GHz
        let at = clock.start + Duration::from_millis(5);
        clock.calibrate(1_000_000_000, at);
        let page = clock.page(1);
        // At the sample the page gives the counter's value ...
        assert_eq!(
            reference_time(1_000_000_000, page.scale, page.offset),
            50_000
        );
        // ... and one second of TSC later, one second more.
        let later = reference_time(3_000_000_000, page.scale, page.offset);
        assert!((10_049_999..=10_050_000).contains(&later), "{later}");
        assert_eq!(RefClock::new(None).page(1).sequence, 0);
        assert_eq!(clock.at(clock.instant_of(12_345)), 12_345);
    }
}
