// SPDX-License-Identifier: GPL-2.0

//! GPADLs: handles, GPADL_HEADER and GPADL_BODY messages (split by the
//! shared `vmbus::gpadl`), GPADL_CREATED, teardown.

use kernel::prelude::*;

use super::{Bus, Expect, Reply, FIRST_GPADL, REPLY_TIMEOUT_MS};
use crate::vmbus::gpadl::{GpadlRange, GpadlSplitter};
use crate::vmbus::message::{GpadlTeardown, MAX_MESSAGE_SIZE};

impl Bus {
    /// Allocates a GPADL handle.
    pub(crate) fn next_gpadl(&self) -> u32 {
        let mut st = self.state.lock();
        let g = st.next_gpadl;
        st.next_gpadl = st.next_gpadl.wrapping_add(1).max(FIRST_GPADL);
        g
    }

    /// Sends GPADL_HEADER and GPADL_BODY messages for `pfns` (one range
    /// from offset 0) and waits for GPADL_CREATED with status 0.
    pub(crate) fn create_gpadl(
        &self,
        relid: u32,
        pfns: &[u64],
        abort: impl Fn() -> bool,
    ) -> Result<u32> {
        let gpadl = self.next_gpadl();
        let bytes = pfns.len().checked_mul(4096).ok_or(EINVAL)?;
        let range = [GpadlRange {
            byte_count: u32::try_from(bytes).map_err(|_| EINVAL)?,
            byte_offset: 0,
            pfns,
        }];
        let mut split = GpadlSplitter::new(relid, gpadl, &range).map_err(|e| {
            pr_err!("vmbus: GPADL for relid {}: {}\n", relid, e);
            EINVAL
        })?;
        let conn = self.state.lock().msg_conn;
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let pending = self.expect(Expect::GpadlCreated(gpadl))?;
        while let Some(n) = split.next_message(&mut buf) {
            let n = n.map_err(|_| EINVAL)?;
            self.post_raw(conn, &buf[..n]).map_err(|e| {
                pr_err!("vmbus: posting GPADL {:#x} failed: {}\n", gpadl, e);
                e.to_errno()
            })?;
        }
        let status = pending.wait(
            REPLY_TIMEOUT_MS,
            |r| match r {
                Reply::GpadlCreated(c) if c.gpadl == gpadl && c.child_relid == relid => {
                    Some(c.creation_status)
                }
                _ => None,
            },
            abort,
        )?;
        if status != 0 {
            pr_err!(
                "vmbus: host refused GPADL {:#x} of relid {}: status {:#x}\n",
                gpadl,
                relid,
                status
            );
            return Err(EIO);
        }
        Ok(gpadl)
    }

    /// Sends GPADL_TEARDOWN and, unless `no_wait`, waits for GPADL_TORNDOWN.
    /// Without waiting, the expectation stays until the answer comes, so a
    /// late answer is not mistaken for a bogus one.
    pub(crate) fn teardown_gpadl(&self, relid: u32, gpadl: u32, no_wait: bool) -> Result {
        let pending = self.expect(Expect::GpadlTorndown(gpadl))?;
        self.post(&GpadlTeardown {
            child_relid: relid,
            gpadl,
        })?;
        if no_wait {
            pending.keep();
            return Ok(());
        }
        pending.wait(
            REPLY_TIMEOUT_MS,
            |r| matches!(r, Reply::GpadlTorndown(g) if *g == gpadl).then_some(()),
            || false,
        )
    }
}
