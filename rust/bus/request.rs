// SPDX-License-Identifier: GPL-2.0

//! Requests to the host and their replies, one typed API for every caller:
//! register for the reply ([`Bus::expect`], which returns a [`Pending`]
//! guard), post the request, then [`Pending::wait`] for the reply, picked
//! and typed by the caller. Dropping the guard withdraws the registration
//! (the request could not be posted, the wait ended), so a late reply is
//! rejected as unasked instead of being taken by the next request.
//! [`Bus::request`] does all three for a channel message.

use kernel::prelude::*;
use kernel::sync::atomic::Relaxed;
use kernel::time::{delay::fsleep, msecs_to_jiffies, Delta};

use super::{Bus, BusState, MAX_QUEUED_REPLIES, REPLY_TIMEOUT_MS};
use crate::vmbus::message::{
    ChannelMessage, GpadlCreated, ModifyChannelResponse, OpenResult, VersionResponse,
};

/// A reply of the host, parsed, waiting for whoever asked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    Version(VersionResponse),
    AllOffers,
    GpadlCreated(GpadlCreated),
    GpadlTorndown(u32),
    OpenResult(OpenResult),
    Modify(ModifyChannelResponse),
    Unload,
}

/// A reply the bus waits for: replies nobody expects are rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Expect {
    Version,
    AllOffers,
    GpadlCreated(u32),
    GpadlTorndown(u32),
    /// OPENCHANNEL_RESULT of this relid.
    Open(u32),
    /// MODIFYCHANNEL_RESPONSE of this relid.
    Modify(u32),
    Unload,
}

impl Reply {
    pub(super) fn key(&self) -> Expect {
        match self {
            Self::Version(_) => Expect::Version,
            Self::AllOffers => Expect::AllOffers,
            Self::GpadlCreated(c) => Expect::GpadlCreated(c.gpadl),
            Self::GpadlTorndown(g) => Expect::GpadlTorndown(*g),
            Self::OpenResult(o) => Expect::Open(o.child_relid),
            Self::Modify(m) => Expect::Modify(m.child_relid),
            Self::Unload => Expect::Unload,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Version(_) => "VERSION_RESPONSE",
            Self::AllOffers => "ALLOFFERS_DELIVERED",
            Self::GpadlCreated(_) => "GPADL_CREATED",
            Self::GpadlTorndown(_) => "GPADL_TORNDOWN",
            Self::OpenResult(_) => "OPENCHANNEL_RESULT",
            Self::Modify(_) => "MODIFYCHANNEL_RESPONSE",
            Self::Unload => "UNLOAD_RESPONSE",
        }
    }
}

/// A registration for a reply this side is about to ask for; dropping it
/// withdraws the registration (see the module documentation).
#[must_use = "dropping the guard withdraws the registration at once"]
pub(crate) struct Pending<'a> {
    bus: &'a Bus,
    expect: Expect,
}

impl Bus {
    /// Registers for the reply `e` before its request is posted.
    pub(crate) fn expect(&self, e: Expect) -> Result<Pending<'_>> {
        self.state.lock().expected.push(e, GFP_KERNEL)?;
        Ok(Pending {
            bus: self,
            expect: e,
        })
    }

    /// Posts `msg` and waits for its reply: the first for which `pick`
    /// gives a value, within [`REPLY_TIMEOUT_MS`]; `ENODEV` as soon as
    /// `abort()` holds (a rescinded channel).
    pub(crate) fn request<M: ChannelMessage, T>(
        &self,
        msg: &M,
        expect: Expect,
        pick: impl Fn(&Reply) -> Option<T>,
        abort: impl Fn() -> bool,
    ) -> Result<T> {
        let pending = self.expect(expect)?;
        self.post(msg)?;
        pending.wait(REPLY_TIMEOUT_MS, pick, abort)
    }

    /// A reply from the host: queued for whoever registered for it, or
    /// rejected and counted if nobody did.
    pub(super) fn queue_reply(&self, r: Reply) {
        let mut st = self.state.lock();
        let Some(i) = st.expected.iter().position(|e| *e == r.key()) else {
            drop(st);
            self.counters.rejected_unexpected.add(1, Relaxed);
            pr_err!(
                "vmbus: rejected {} nobody asked for ({:?})\n",
                r.name(),
                r.key()
            );
            return;
        };
        let _ = st.expected.remove(i);
        if st.replies.len() >= MAX_QUEUED_REPLIES {
            // Nobody took these: the host sent replies nobody asked for.
            let _ = st.replies.remove(0);
            self.counters.unsolicited.add(1, Relaxed);
        }
        if st.replies.push(r, GFP_KERNEL).is_err() {
            pr_err!("vmbus: out of memory queueing a reply\n");
        }
        drop(st);
        self.cond.notify_all();
    }

    fn withdraw(st: &mut BusState, e: Expect) {
        if let Some(i) = st.expected.iter().position(|x| *x == e) {
            let _ = st.expected.remove(i);
        }
    }
}

impl Pending<'_> {
    /// Waits until a reply for which `pick` gives a value arrives, and
    /// takes it; `ENODEV` as soon as `abort()` holds, `ETIMEDOUT` after
    /// `ms`. The registration is withdrawn whatever the outcome.
    pub(crate) fn wait<T>(
        self,
        ms: u32,
        pick: impl Fn(&Reply) -> Option<T>,
        abort: impl Fn() -> bool,
    ) -> Result<T> {
        let bus = self.bus;
        let mut left = msecs_to_jiffies(ms);
        let mut st = bus.state.lock();
        loop {
            let found = st
                .replies
                .iter()
                .enumerate()
                .find_map(|(i, r)| pick(r).map(|t| (i, t)));
            if let Some((i, t)) = found {
                let _ = st.replies.remove(i);
                return Ok(t);
            }
            if abort() || left == 0 {
                return Err(if left == 0 { ETIMEDOUT } else { ENODEV });
            }
            match bus.cond.wait_interruptible_timeout(&mut st, left) {
                kernel::sync::CondVarTimeoutResult::Timeout => left = 0,
                kernel::sync::CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                kernel::sync::CondVarTimeoutResult::Signal { jiffies } => {
                    // A pending signal (rmmod from a shell that got one)
                    // must not turn this into a busy loop, nor cut the
                    // wait short: sleep a little, uninterruptibly.
                    drop(st);
                    fsleep(Delta::from_millis(10));
                    left = jiffies.saturating_sub(msecs_to_jiffies(10));
                    st = bus.state.lock();
                }
            }
        }
    }

    /// Leaves the registration in place after the guard is gone: for a
    /// reply that will come later and must not count as unasked
    /// (GPADL_TORNDOWN that nobody waits for).
    pub(crate) fn keep(self) {
        core::mem::forget(self);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        Bus::withdraw(&mut self.bus.state.lock(), self.expect);
    }
}
