// SPDX-License-Identifier: GPL-2.0

//! Timesync: the host sends its wall-clock time (100 ns units since
//! 1601). A sample flagged SYNC sets the guest clock, as Linux's
//! `adj_guesttime` does; plain SAMPLEs are recorded but, as in Linux by
//! default, not applied. From message version 4.0 the sample carries the
//! partition reference time it was taken at, and the delay since is added
//! before use. The last offset (host minus guest) is shown in debugfs.

use kernel::sync::atomic::{Atomic, Relaxed};

use super::{After, IcService};
use crate::hvcall::msr;
use crate::vmbus::ic::{
    timesync_flags, IcMsgType, IcVersion, TimesyncMsg, TimesyncRefMsg, HV_E_FAIL, HV_S_OK,
    TIMESYNC_VERSIONS, WLTIMEDELTA,
};

/// Samples seen, clock settings applied, the offset (host minus guest, in
/// ns) the last sample showed before anything was applied, its flags.
pub(crate) static SAMPLES: Atomic<u64> = Atomic::new(0);
pub(crate) static APPLIED: Atomic<u64> = Atomic::new(0);
pub(crate) static OFFSET_NS: Atomic<i64> = Atomic::new(0);
pub(crate) static LAST_FLAGS: Atomic<u32> = Atomic::new(0);

pub(crate) struct Timesync;

fn le_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

fn now_ns() -> i64 {
    crate::shim::real_time_ns()
}

impl IcService for Timesync {
    const NAME: &'static str = "timesync";
    const ID_TABLE: kernel::auxiliary::IdTable<()> = &super::TIMESYNC_IDS;
    const MSG_TYPE: IcMsgType = IcMsgType::TIMESYNC;
    const VERSIONS: &'static [IcVersion] = &TIMESYNC_VERSIONS;

    fn new() -> Self {
        Self
    }

    fn handle(&self, version: IcVersion, body: &mut [u8]) -> (u32, After) {
        let with_ref = version.major >= 4;
        let need = if with_ref {
            core::mem::size_of::<TimesyncRefMsg>()
        } else {
            core::mem::size_of::<TimesyncMsg>()
        };
        if body.len() < need {
            kernel::pr_err!(
                "timesync: message of {} bytes, need {} for version {}\n",
                body.len(),
                need,
                version
            );
            return (HV_E_FAIL, After::Nothing);
        }
        let mut host = le_u64(body);
        let flags = if with_ref { body[16] } else { body[24] };
        if with_ref {
            // Add the time since the host took the sample; a reference time
            // from the future or absurdly old (over a minute) is ignored.
            let sample_ref = le_u64(&body[8..]);
            if let Ok(now_ref) = crate::shim::rdmsr(msr::TIME_REF_COUNT) {
                let delay = now_ref.wrapping_sub(sample_ref);
                if now_ref >= sample_ref && delay < 600_000_000 {
                    host = host.saturating_add(delay);
                }
            }
        }
        let Some(host_ns) = host
            .checked_sub(WLTIMEDELTA)
            .and_then(|t| t.checked_mul(100))
            .and_then(|t| i64::try_from(t).ok())
        else {
            kernel::pr_err!("timesync: host time {:#x} out of range\n", host);
            return (HV_E_FAIL, After::Nothing);
        };
        SAMPLES.add(1, Relaxed);
        LAST_FLAGS.store(u32::from(flags), Relaxed);
        OFFSET_NS.store(host_ns.saturating_sub(now_ns()), Relaxed);
        if flags & timesync_flags::SYNC != 0 {
            match crate::shim::set_real_time_ns(host_ns) {
                Ok(()) => {
                    APPLIED.add(1, Relaxed);
                    kernel::pr_debug!(
                        "timesync: clock set from the host (offset {} ns)\n",
                        OFFSET_NS.load(Relaxed)
                    );
                }
                Err(e) => kernel::pr_err!("timesync: setting the clock failed: {:?}\n", e),
            }
        }
        (HV_S_OK, After::Nothing)
    }
}
