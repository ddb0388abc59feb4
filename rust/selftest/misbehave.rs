// SPDX-License-Identifier: GPL-2.0

//! A misbehaving guest, on request: protocol violations sent to the host
//! on purpose, to test that the host survives them (debugfs
//! `vmbus/misbehave`, root only). Each command says what the host should
//! do; a host that does something else makes the write fail with
//! `EPROTO`. What the host logs is checked on the host side.
//!
//! - `garbage`: three messages no host may act on: an unknown type, an
//!   OPENCHANNEL cut short, a GPADL_BODY of a GPADL never started. No
//!   answer is expected (the host drops them).
//! - `bad-gpadl`: a GPADL for the first channel naming a page far outside
//!   any guest's RAM: GPADL_CREATED must refuse it.
//! - `open-unknown`: OPENCHANNEL for a relid never offered:
//!   OPENCHANNEL_RESULT must refuse it.
//! - `corrupt-ring DRIVER`: the write index of the send ring of the open
//!   channel bound to DRIVER is set past the ring's end and the host is
//!   signalled: the host must close that channel (no answer to the guest;
//!   the channel stays unusable until the driver closes it) and keep the
//!   others working.
//! - `connect-flood PORT N`: N Hyper-V socket connect requests
//!   (TL_CONNECT_REQUEST) to host port PORT, from N guest ports, without
//!   waiting for anything: the host must offer at most its connection
//!   limit, refuse the rest, and withdraw the offers nobody opens. The
//!   offers bind no driver here; the bus releases them at the rescinds.

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::bus::channel::Channel;
use crate::bus::{Bus, Expect, Reply};
use crate::vmbus::hvsock;
use crate::vmbus::message::{
    encode_empty, MessageType, OpenChannel, MAX_MESSAGE_SIZE,
    MAX_USER_DEFINED_BYTES,
};

/// A relid the host never offers (Linux accepts relids below 2048; hvhost
/// numbers from 1).
const UNOFFERED_RELID: u32 = 2000;
/// The first guest port of `connect-flood`'s endpoints.
const FLOOD_FIRST_PORT: u32 = 0x7000_0000;
/// Most requests one `connect-flood` sends.
const FLOOD_MAX: u32 = 4096;

/// A page frame far above the RAM of any guest the rig runs (2^40 pages:
/// 4 PiB).
const FOREIGN_PFN: u64 = 1 << 40;

/// Runs `cmd`; a line saying what was done.
pub(crate) fn run(bus: &Arc<Bus>, cmd: &str, out: &mut KVec<u8>) -> Result {
    let (verb, arg) = match cmd.split_once(' ') {
        Some((v, a)) => (v, a.trim()),
        None => (cmd, ""),
    };
    let line: &str = match (verb, arg) {
        ("garbage", "") => {
            garbage(bus)?;
            "garbage: 3 messages sent\n"
        }
        ("bad-gpadl", "") => {
            bad_gpadl(bus)?;
            "bad-gpadl: refused by the host\n"
        }
        ("open-unknown", "") => {
            open_unknown(bus)?;
            "open-unknown: refused by the host\n"
        }
        ("corrupt-ring", driver) if !driver.is_empty() => {
            corrupt_ring(bus, driver)?;
            "corrupt-ring: send ring corrupted, host signalled\n"
        }
        ("connect-flood", args) => {
            let (port, n) = args.split_once(' ').ok_or(EINVAL)?;
            let port: u32 = port.trim().parse().map_err(|_| EINVAL)?;
            let n: u32 = n.trim().parse().map_err(|_| EINVAL)?;
            if n == 0 || n > FLOOD_MAX {
                return Err(EINVAL);
            }
            connect_flood(bus, port, n)?;
            "connect-flood: requests sent\n"
        }
        _ => return Err(EINVAL),
    };
    out.clear();
    out.extend_from_slice(line.as_bytes(), GFP_KERNEL)?;
    pr_info!("vmbus: misbehave: {}", line);
    Ok(())
}

fn post(bus: &Bus, bytes: &[u8]) -> Result {
    let conn = bus.connection().msg_conn;
    bus.post_raw(conn, bytes).map_err(|e| e.to_errno())
}

fn garbage(bus: &Bus) -> Result {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    // An unknown message type with a payload.
    let n = encode_empty(MessageType::OPENCHANNEL, &mut buf).map_err(|_| EINVAL)?;
    buf[..4].copy_from_slice(&0x7fu32.to_le_bytes());
    post(bus, &buf[..n + 16])?;
    // OPENCHANNEL with only its header.
    let n = encode_empty(MessageType::OPENCHANNEL, &mut buf).map_err(|_| EINVAL)?;
    post(bus, &buf[..n])?;
    // GPADL_BODY (msgnumber, gpadl, one PFN) of a GPADL never started.
    let n = encode_empty(MessageType::GPADL_BODY, &mut buf).map_err(|_| EINVAL)?;
    buf[n..n + 4].copy_from_slice(&1u32.to_le_bytes());
    buf[n + 4..n + 8].copy_from_slice(&0xdead_0001u32.to_le_bytes());
    buf[n + 8..n + 16].copy_from_slice(&0x100u64.to_le_bytes());
    post(bus, &buf[..n + 16])
}

fn first_channel(bus: &Bus) -> Result<Arc<Channel>> {
    bus.channels().into_iter().next().ok_or(ENODEV)
}

fn bad_gpadl(bus: &Bus) -> Result {
    let ch = first_channel(bus)?;
    match bus.create_gpadl(ch.relid(), &[FOREIGN_PFN, FOREIGN_PFN + 1], || false) {
        Err(e) if e == EIO => Ok(()),
        Err(e) => Err(e),
        Ok(gpadl) => {
            pr_err!(
                "vmbus: misbehave: the host accepted GPADL {:#x} of pages outside RAM\n",
                gpadl
            );
            let _ = bus.teardown_gpadl(ch.relid(), gpadl, false);
            Err(EPROTO)
        }
    }
}

fn open_unknown(bus: &Bus) -> Result {
    let relid = UNOFFERED_RELID;
    let msg = OpenChannel {
        child_relid: relid,
        openid: relid,
        ringbuffer_gpadlhandle: 0xdead_0002,
        target_vp: 0,
        downstream_ringbuffer_pageoffset: 1,
        userdata: [0; MAX_USER_DEFINED_BYTES],
    };
    let status = bus.request(
        &msg,
        Expect::Open(relid),
        |r| match r {
            Reply::OpenResult(o) if o.child_relid == relid => Some(o.status),
            _ => None,
        },
        || false,
    )?;
    if status != 0 {
        return Ok(());
    }
    pr_err!(
        "vmbus: misbehave: the host opened relid {}, never offered\n",
        relid
    );
    Err(EPROTO)
}

fn corrupt_ring(bus: &Bus, driver: &str) -> Result {
    let ch = bus
        .channels()
        .into_iter()
        .find(|c| c.status().driver == Some(driver))
        .ok_or(ENODEV)?;
    ch.corrupt_send_ring()
}

fn connect_flood(bus: &Bus, port: u32, n: u32) -> Result {
    for i in 0..n {
        bus.request_connection(
            hvsock::service_id(FLOOD_FIRST_PORT + i),
            hvsock::service_id(port),
        )?;
    }
    Ok(())
}
