// SPDX-License-Identifier: GPL-2.0

//! Offers and rescinds: OFFERCHANNEL checked and added to the channel table
//! (a device for its driver), RESCIND_CHANNELOFFER, and the scan work that
//! binds new channels and releases rescinded ones (RELID_RELEASED).

use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Relaxed};
use kernel::sync::Arc;
use kernel::workqueue;

use super::channel::Channel;
use super::{Bus, Phase, MAX_CHANNELS, MAX_RELID};
use crate::vmbus::message::{OfferChannel, RelidReleased};

impl Bus {
    fn reject_offer(&self, relid: u32, why: &str) {
        self.counters.rejected_offer.add(1, Relaxed);
        pr_err!("vmbus: rejected offer of relid {}: {}\n", relid, why);
    }

    pub(super) fn on_offer(&self, o: &OfferChannel) {
        self.counters.offers.add(1, Relaxed);
        let relid = o.child_relid;
        if relid == 0 || relid >= MAX_RELID {
            return self.reject_offer(relid, "relid out of range");
        }
        let hot = {
            let st = self.state.lock();
            if st.phase != Phase::Connected {
                drop(st);
                return self.reject_offer(relid, "bus not connected");
            }
            if st.channels.iter().any(|c| c.relid() == relid) {
                drop(st);
                return self.reject_offer(relid, "relid already in use");
            }
            if st.channels.len() >= MAX_CHANNELS {
                drop(st);
                return self.reject_offer(relid, "too many channels");
            }
            st.offers_done
        };
        let ch = match Channel::new(self.self_arc(), o) {
            Ok(ch) => ch,
            Err(e) => {
                pr_err!("vmbus: offer of relid {}: {:?}\n", relid, e);
                return;
            }
        };
        pr_debug!(
            "vmbus: offer relid {} class {} ({}) instance {} connection {:#x}{}\n",
            relid,
            ch.info().class,
            ch.info().class.class_name().unwrap_or("unknown"),
            ch.info().instance,
            ch.info().connection_id,
            if ch.info().monitor_allocated {
                " (monitored: signalled by hypercall)"
            } else {
                ""
            }
        );
        {
            let mut st = self.state.lock();
            if st.channels.push(ch.clone(), GFP_KERNEL).is_err() {
                return;
            }
        }
        // A driver may be waiting for its sub-channels.
        self.cond.notify_all();
        if let Some(slot) = self.relids.lock().get_mut(relid as usize) {
            *slot = Some(ch.clone());
        }
        if hot && !self.closing.load(Acquire) {
            let _ = workqueue::system_highpri().enqueue::<Arc<Bus>, 2>(self.self_arc());
        }
    }

    pub(super) fn on_rescind(&self, relid: u32) {
        self.counters.rescinds.add(1, Relaxed);
        let ch = self
            .state
            .lock()
            .channels
            .iter()
            .find(|c| c.relid() == relid)
            .cloned();
        let Some(ch) = ch else {
            self.counters.rejected_rescind.add(1, Relaxed);
            pr_err!("vmbus: rescind of unknown relid {}\n", relid);
            return;
        };
        pr_info!("vmbus: relid {} rescinded\n", relid);
        ch.mark_rescinded();
        self.cond.notify_all();
        if !self.closing.load(Acquire) {
            let _ = workqueue::system_highpri().enqueue::<Arc<Bus>, 2>(self.self_arc());
        }
    }

    /// Waits until `done` holds of the channel table (checked under its
    /// lock, again after every offer, rescind or reply), at most
    /// `timeout_ms` or until a signal; returns whether it held.
    pub(super) fn wait_channels(
        &self,
        timeout_ms: u32,
        done: impl Fn(&[Arc<Channel>]) -> bool,
    ) -> bool {
        let mut left = kernel::time::msecs_to_jiffies(timeout_ms);
        let mut st = self.state.lock();
        loop {
            if done(&st.channels) {
                return true;
            }
            if left == 0 {
                return false;
            }
            left = match self.cond.wait_interruptible_timeout(&mut st, left) {
                kernel::sync::CondVarTimeoutResult::Woken { jiffies } => jiffies,
                _ => 0,
            };
        }
    }

    /// Binds drivers to new channels, releases rescinded ones: one at a
    /// time, binds first. A bind is what somebody waits on (a socket's
    /// connect gives up after 2 s), while a release (the driver's
    /// removal, the close and the GPADL teardown, each a round trip to
    /// the host) only hands a relid back; a storm of connections that
    /// end while others start must not put the new ones behind the
    /// teardowns of the old.
    pub(super) fn scan(&self) {
        let _guard = self.scan_lock.lock();
        loop {
            if self.closing.load(Acquire) {
                return;
            }
            let chans = self.channels();
            if let Some(ch) = chans.iter().find(|c| !c.is_rescinded() && c.needs_bind()) {
                ch.bind();
            } else if let Some(ch) = chans.iter().find(|c| c.is_rescinded()) {
                ch.unbind();
                // Leaves the table: the loop ends.
                self.release(ch);
            } else {
                return;
            }
        }
    }

    /// Forgets a rescinded, unbound channel and tells the host.
    fn release(&self, ch: &Arc<Channel>) {
        let relid = ch.relid();
        if let Some(slot) = self.relids.lock().get_mut(relid as usize) {
            if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, ch)) {
                *slot = None;
            }
        }
        ch.flush();
        self.state.lock().channels.retain(|c| !Arc::ptr_eq(c, ch));
        if let Err(e) = self.post(&RelidReleased { child_relid: relid }) {
            pr_err!("vmbus: RELID_RELEASED {} failed: {:?}\n", relid, e);
        } else {
            self.counters.releases.add(1, Relaxed);
            pr_info!("vmbus: relid {} released\n", relid);
        }
    }
}
