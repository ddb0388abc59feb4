// SPDX-License-Identifier: GPL-2.0

//! Shutdown: on a host request ([`DeviceCommand::Shutdown`]) hvhost sends
//! one SHUTDOWN message (flags 0: power off); Linux answers HV_S_OK and
//! runs `orderly_poweroff`. [`Shutdown::ready`] (shared) says whether a
//! request can be delivered now: the channel is open and negotiated.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vmbus::guid::{Guid, SHUTDOWN};
use vmbus::ic::{
    shutdown_flags, IcMessage, IcMsgType, IcVersion, ShutdownMsg, HV_S_OK, SHUTDOWN_MESSAGE_LEN,
    SHUTDOWN_VERSIONS,
};
use zerocopy::IntoBytes;

use super::{request, IcService, IcVersions, Next};
use crate::vmbus::device::DeviceCommand;

/// Seconds the guest is told it has.
pub const SHUTDOWN_TIMEOUT_SECONDS: u32 = 60;

/// The shutdown service.
pub struct Shutdown {
    ready: Arc<AtomicBool>,
    requested: bool,
    sent: bool,
    /// Requests the guest answered, accepting and refusing.
    accepted: u64,
    refused: u64,
}

impl Shutdown {
    /// The service; `ready` is kept up to date for the signal handler.
    pub fn new(ready: Arc<AtomicBool>) -> Self {
        Self {
            ready,
            requested: false,
            sent: false,
            accepted: 0,
            refused: 0,
        }
    }
}

impl IcService for Shutdown {
    fn name(&self) -> &'static str {
        "shutdown"
    }

    fn class_id(&self) -> Guid {
        SHUTDOWN
    }

    fn instance_id(&self) -> Guid {
        super::instance_guid(2)
    }

    fn versions(&self) -> &'static [IcVersion] {
        &SHUTDOWN_VERSIONS
    }

    fn ready(&mut self, _versions: IcVersions, _now: Instant) {
        self.ready.store(true, Ordering::SeqCst);
    }

    fn next_request(
        &mut self,
        versions: IcVersions,
        _now: Instant,
        _reference_time: u64,
        buf: &mut [u8],
    ) -> Next {
        if !self.requested || self.sent {
            return Next::Wait(None);
        }
        self.sent = true;
        let body = ShutdownMsg {
            reason_code: 0,
            timeout_seconds: SHUTDOWN_TIMEOUT_SECONDS,
            flags: shutdown_flags::SHUTDOWN,
            display_message: [0; SHUTDOWN_MESSAGE_LEN],
        };
        log::info!("vmbus: shutdown: asking the guest to power off");
        match request(versions, IcMsgType::SHUTDOWN, body.as_bytes(), buf) {
            Some(n) => Next::Send(n),
            None => Next::Wait(None),
        }
    }

    fn response(&mut self, msg: &IcMessage<'_>) {
        if msg.header.status == HV_S_OK {
            self.accepted += 1;
            log::info!("vmbus: shutdown: the guest accepted the request");
        } else {
            self.refused += 1;
            log::warn!(
                "vmbus: shutdown: the guest refused (status {:#x})",
                msg.header.status
            );
        }
    }

    fn closed(&mut self) {
        self.ready.store(false, Ordering::SeqCst);
        // A request not yet delivered waits for the next open.
        if self.sent {
            self.requested = false;
            self.sent = false;
        }
    }

    fn counters(&self) -> String {
        format!("accepted={} refused={}", self.accepted, self.refused)
    }

    fn command(&mut self, cmd: DeviceCommand) -> bool {
        match cmd {
            DeviceCommand::Shutdown => {
                if !self.ready.load(Ordering::SeqCst) {
                    log::info!("vmbus: shutdown: requested; waits until the guest opens the shutdown channel");
                }
                // Every request is sent, a repeated one too (the guest
                // may have ignored or refused the last).
                self.requested = true;
                self.sent = false;
                true
            }
        }
    }
}
