// SPDX-License-Identifier: GPL-2.0

//! Heartbeat: every interval hvhost sends a sequence number; the guest
//! answers with it plus one (Linux `heartbeat_onchannelcallback`), and
//! hvhost logs what came back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vmbus::guid::{Guid, HEARTBEAT};
use vmbus::ic::{HeartbeatMsg, IcMessage, IcMsgType, IcVersion, HEARTBEAT_VERSIONS};
use zerocopy::IntoBytes;

use super::{request, IcService, IcVersions, Next};

/// The heartbeat service.
pub struct Heartbeat {
    interval: Duration,
    seq: u64,
    next: Option<Instant>,
    /// Answers received by every heartbeat device, for the exit summary.
    answered: Arc<AtomicU64>,
    /// Answers received by this one.
    beats: u64,
}

impl Heartbeat {
    /// Beats every `interval`; `answered` counts the guest's answers.
    pub fn new(interval: Duration, answered: Arc<AtomicU64>) -> Self {
        Self {
            interval,
            seq: 0,
            next: None,
            answered,
            beats: 0,
        }
    }
}

impl IcService for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    fn class_id(&self) -> Guid {
        HEARTBEAT
    }

    fn instance_id(&self) -> Guid {
        super::instance_guid(1)
    }

    fn versions(&self) -> &'static [IcVersion] {
        &HEARTBEAT_VERSIONS
    }

    fn ready(&mut self, _versions: IcVersions, now: Instant) {
        self.next = Some(now);
    }

    fn next_request(
        &mut self,
        versions: IcVersions,
        now: Instant,
        _reference_time: u64,
        buf: &mut [u8],
    ) -> Next {
        match self.next {
            Some(at) if at <= now => {
                self.next = Some(now + self.interval);
                self.seq = self.seq.wrapping_add(1);
                let body = HeartbeatMsg {
                    seq_num: self.seq,
                    reserved: [0; 8],
                };
                match request(versions, IcMsgType::HEARTBEAT, body.as_bytes(), buf) {
                    Some(n) => Next::Send(n),
                    None => Next::Wait(self.next),
                }
            }
            other => Next::Wait(other),
        }
    }

    fn response(&mut self, msg: &IcMessage<'_>) {
        match msg.body_as::<HeartbeatMsg>() {
            Ok(hb) => {
                let n = self.answered.fetch_add(1, Ordering::Relaxed) + 1;
                self.beats += 1;
                log::info!(
                    "vmbus: heartbeat: guest sequence {} ({n} answered)",
                    hb.seq_num
                );
            }
            Err(e) => log::warn!("vmbus: heartbeat: bad answer: {e}"),
        }
    }

    fn closed(&mut self) {
        self.next = None;
    }

    fn counters(&self) -> String {
        format!("beats={}", self.beats)
    }
}
