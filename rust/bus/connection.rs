// SPDX-License-Identifier: GPL-2.0

//! Connecting: INITIATE_CONTACT for each version in Linux's order until the
//! host accepts one, then REQUESTOFFERS. (Unloading is [`super::VmBus`]'s
//! drop.)

use kernel::prelude::*;

use super::{Bus, Expect, Phase, Reply, REPLY_TIMEOUT_MS};
use crate::hvcall::hypercall::HvStatus;
use crate::hvcall::synic::VMBUS_SINT;
use crate::hypercall::HvError;
use crate::vmbus::message::{ConnectionState, InitiateContact, MessageType};
use crate::vmbus::version::Version;

impl Bus {
    /// Proposes each version in Linux's order; `Ok(false)` if the host
    /// has no VMBus message connection at all.
    pub(super) fn negotiate(&self) -> Result<bool> {
        let mut any_connection = false;
        for v in Version::GUEST_PROPOSALS {
            let conn = v.contact_connection();
            let mut msg = InitiateContact {
                vmbus_version_requested: v.0,
                target_vcpu: self.target_vp,
                msg_sint: VMBUS_SINT,
                msg_vtl: 0,
                reserved: [0; 2],
                feature_flags: 0,
                monitor_page1: self.monitor[0].phys(),
                monitor_page2: self.monitor[1].phys(),
            };
            if !v.contact_names_sint() {
                // Below 5.0 the union carries the interrupt page instead.
                msg.set_interrupt_page(self.interrupt_page.phys());
            }
            let pending = self.expect(Expect::Version)?;
            match self.post_to(conn, &msg) {
                Ok(()) => any_connection = true,
                Err(HvError(HvStatus::INVALID_CONNECTION_ID)) => {
                    pr_debug!("vmbus: version {}: host has no connection {}\n", v, conn);
                    continue;
                }
                Err(e) => {
                    pr_err!("vmbus: INITIATE_CONTACT {} failed: {}\n", v, e);
                    return Err(e.to_errno());
                }
            }
            let reply = pending.wait(
                REPLY_TIMEOUT_MS,
                |r| match r {
                    Reply::Version(v) => Some(*v),
                    _ => None,
                },
                || false,
            );
            let r = match reply {
                Ok(r) => r,
                Err(e) => {
                    pr_err!("vmbus: no VERSION_RESPONSE to {}: {:?}\n", v, e);
                    return Err(e);
                }
            };
            if r.version_supported == 0 {
                pr_debug!("vmbus: host refused version {}\n", v);
                continue;
            }
            if r.connection_state != ConnectionState::SUCCESSFUL {
                pr_err!(
                    "vmbus: host accepted {} but the connection failed (state {})\n",
                    v,
                    r.connection_state.0
                );
                return Err(EIO);
            }
            let msg_conn = v.message_connection(r.msg_conn_id);
            {
                let mut st = self.state.lock();
                st.version = v;
                st.msg_conn = msg_conn;
                st.phase = Phase::Connected;
            }
            pr_info!(
                "vmbus: Vmbus version:{} (message connection {})\n",
                v,
                msg_conn
            );
            return Ok(true);
        }
        if any_connection {
            pr_err!("vmbus: host refused every version from 6.0 to 4.0\n");
            return Err(ENODEV);
        }
        pr_info!("vmbus: no VMBus host\n");
        Ok(false)
    }

    pub(super) fn request_offers(&self) -> Result {
        let pending = self.expect(Expect::AllOffers)?;
        self.post_empty(MessageType::REQUESTOFFERS)?;
        match pending.wait(
            REPLY_TIMEOUT_MS,
            |r| matches!(r, Reply::AllOffers).then_some(()),
            || false,
        ) {
            Ok(()) => {
                let n = {
                    let mut st = self.state.lock();
                    st.offers_done = true;
                    st.channels.len()
                };
                pr_debug!("vmbus: all offers delivered: {} channel(s)\n", n);
                Ok(())
            }
            Err(e) => {
                pr_err!("vmbus: no ALLOFFERS_DELIVERED: {:?}\n", e);
                Err(e)
            }
        }
    }
}
