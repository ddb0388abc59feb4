// SPDX-License-Identifier: GPL-2.0

//! Shutdown: the host asks the guest to power off (or restart); the guest
//! answers first, then starts an orderly poweroff
//! (`shutdown_onchannelcallback` in Linux's `hv_util.c`).

use kernel::sync::atomic::{Atomic, Relaxed};

use super::{After, IcService};
use crate::vmbus::ic::{
    shutdown_flags, IcMsgType, IcVersion, ShutdownMsg, HV_E_FAIL, HV_S_OK, SHUTDOWN_VERSIONS,
};

/// Shutdown requests received (debugfs).
pub(crate) static REQUESTS: Atomic<u64> = Atomic::new(0);

pub(crate) struct Shutdown;

impl IcService for Shutdown {
    const NAME: &'static str = "shutdown";
    const ID_TABLE: kernel::auxiliary::IdTable<()> = &super::SHUTDOWN_IDS;
    const MSG_TYPE: IcMsgType = IcMsgType::SHUTDOWN;
    const VERSIONS: &'static [IcVersion] = &SHUTDOWN_VERSIONS;

    fn new() -> Self {
        Self
    }

    fn handle(&self, _version: IcVersion, body: &mut [u8]) -> (u32, After) {
        const LEN: usize = core::mem::size_of::<ShutdownMsg>();
        if body.len() < LEN {
            kernel::pr_err!("shutdown: message of {} bytes, need {}\n", body.len(), LEN);
            return (HV_E_FAIL, After::Nothing);
        }
        REQUESTS.add(1, Relaxed);
        let flags = u32::from_le_bytes([body[8], body[9], body[10], body[11]]);
        match flags {
            shutdown_flags::SHUTDOWN | shutdown_flags::FORCE => {
                kernel::pr_info!("shutdown: request received - graceful shutdown initiated\n");
                (HV_S_OK, After::PowerOff)
            }
            f if f == shutdown_flags::RESTART
                || f == shutdown_flags::RESTART | shutdown_flags::FORCE =>
            {
                kernel::pr_info!(
                    "shutdown: restart request received - graceful restart initiated\n"
                );
                (HV_S_OK, After::Reboot)
            }
            f => {
                kernel::pr_err!("shutdown: request with flags {:#x} not supported\n", f);
                (HV_E_FAIL, After::Nothing)
            }
        }
    }
}
