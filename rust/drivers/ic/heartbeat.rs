// SPDX-License-Identifier: GPL-2.0

//! Heartbeat: the host sends a sequence number, the guest answers with it
//! plus one (`heartbeat_onchannelcallback` in Linux's `hv_util.c`).

use kernel::sync::atomic::{Atomic, Relaxed};

use super::{After, IcService};
use crate::vmbus::ic::{
    HeartbeatMsg, IcMsgType, IcVersion, HEARTBEAT_VERSIONS, HV_E_FAIL, HV_S_OK,
};

/// Heartbeats answered and the last sequence number (debugfs).
pub(crate) static BEATS: Atomic<u64> = Atomic::new(0);
pub(crate) static LAST_SEQ: Atomic<u64> = Atomic::new(0);

pub(crate) struct Heartbeat;

impl IcService for Heartbeat {
    const NAME: &'static str = "heartbeat";
    const ID_TABLE: kernel::auxiliary::IdTable<()> = &super::HEARTBEAT_IDS;
    const MSG_TYPE: IcMsgType = IcMsgType::HEARTBEAT;
    const VERSIONS: &'static [IcVersion] = &HEARTBEAT_VERSIONS;

    fn new() -> Self {
        Self
    }

    fn handle(&self, _version: IcVersion, body: &mut [u8]) -> (u32, After) {
        const LEN: usize = core::mem::size_of::<HeartbeatMsg>();
        if body.len() < LEN {
            kernel::pr_err!("heartbeat: message of {} bytes, need {}\n", body.len(), LEN);
            return (HV_E_FAIL, After::Nothing);
        }
        let n = u64::from_le_bytes([
            body[0], body[1], body[2], body[3], body[4], body[5], body[6], body[7],
        ]);
        let next = n.wrapping_add(1);
        body[..8].copy_from_slice(&next.to_le_bytes());
        BEATS.add(1, Relaxed);
        LAST_SEQ.store(n, Relaxed);
        (HV_S_OK, After::Nothing)
    }
}
