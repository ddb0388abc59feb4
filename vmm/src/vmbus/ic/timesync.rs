// SPDX-License-Identifier: GPL-2.0

//! Time synchronisation: host time samples in 100 ns units since 1601.
//! The first sample after negotiation carries ICTIMESYNCFLAG_SYNC (Linux
//! sets its clock to it); the later ones, every interval, SAMPLE. With
//! message version 4.0 a sample also carries the partition reference time
//! at which the host time was read (`ictimesync_ref_data`), so the guest
//! can add the delivery delay; older versions get `ictimesync_data`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vmbus::guid::{Guid, TIMESYNC};
use vmbus::ic::{
    timesync_flags, IcMessage, IcMsgType, IcVersion, TimesyncMsg, TimesyncRefMsg,
    TIMESYNC_VERSIONS, WLTIMEDELTA,
};
use zerocopy::IntoBytes;

use super::{request, IcService, IcVersions, Next};

/// Host wall-clock time in 100 ns units since 1601-01-01.
pub fn host_time_1601() -> u64 {
    let since_1970 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    WLTIMEDELTA.saturating_add(u64::try_from(since_1970.as_nanos() / 100).unwrap_or(u64::MAX))
}

/// The timesync service.
pub struct Timesync {
    interval: Duration,
    next: Option<Instant>,
    synced: bool,
    answered: u64,
}

impl Timesync {
    /// Samples every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
            synced: false,
            answered: 0,
        }
    }
}

impl IcService for Timesync {
    fn name(&self) -> &'static str {
        "timesync"
    }

    fn class_id(&self) -> Guid {
        TIMESYNC
    }

    fn instance_id(&self) -> Guid {
        super::instance_guid(3)
    }

    fn versions(&self) -> &'static [IcVersion] {
        &TIMESYNC_VERSIONS
    }

    fn ready(&mut self, _versions: IcVersions, now: Instant) {
        self.next = Some(now);
        self.synced = false;
    }

    fn next_request(
        &mut self,
        versions: IcVersions,
        now: Instant,
        reference_time: u64,
        buf: &mut [u8],
    ) -> Next {
        match self.next {
            Some(at) if at <= now => {
                self.next = Some(now + self.interval);
                let flags = if self.synced {
                    timesync_flags::SAMPLE
                } else {
                    timesync_flags::SYNC
                };
                self.synced = true;
                let parenttime = host_time_1601();
                let n = if versions.message.major >= 4 {
                    let body = TimesyncRefMsg {
                        parenttime,
                        vmreferencetime: reference_time,
                        flags,
                        ..Default::default()
                    };
                    request(versions, IcMsgType::TIMESYNC, body.as_bytes(), buf)
                } else {
                    let body = TimesyncMsg {
                        parenttime,
                        flags,
                        ..Default::default()
                    };
                    request(versions, IcMsgType::TIMESYNC, body.as_bytes(), buf)
                };
                log::debug!("vmbus: timesync: sample {parenttime} (flags {flags}, reference time {reference_time})");
                match n {
                    Some(n) => Next::Send(n),
                    None => Next::Wait(self.next),
                }
            }
            other => Next::Wait(other),
        }
    }

    fn response(&mut self, _msg: &IcMessage<'_>) {
        self.answered += 1;
        if self.answered == 1 {
            log::info!("vmbus: timesync: the guest took the first sample (SYNC)");
        }
    }

    fn closed(&mut self) {
        self.next = None;
    }

    fn counters(&self) -> String {
        format!("samples_answered={}", self.answered)
    }
}
