// SPDX-License-Identifier: GPL-2.0

//! A misbehaving storage guest, on request (selftest build only): VSTOR
//! packets no correct driver sends, written on the controller's primary
//! channel through the `misbehave` file of its debugfs directory, to test
//! that the host survives them. Each command checks the host's answer and
//! fails with `EPROTO` if it is not the refusal the protocol wants:
//!
//! - `garbage`: 7 bytes, no VSTOR packet: status INVALID_PARAMETER;
//! - `unknown-operation`: operation 0x77: status NOT_SUPPORTED;
//! - `bad-cdb`: a command with opcode 0xff: CHECK CONDITION, ILLEGAL
//!   REQUEST (an outcome of `Target`);
//! - `short-range`: READ (16) of 4 KiB with a 2 KiB range;
//! - `foreign-range`: READ (16) into a page far outside any guest's RAM;
//! - `data-in-band`: READ (16) of 4 KiB with no range at all: each of
//!   these three refused, INVALID_PARAMETER and SRB INVALID_REQUEST;
//! - `flood N`: N TEST UNIT READY commands sent as fast as the ring
//!   takes them, their completions left to the channel's handler (which
//!   counts them as unknown, their IDs being nobody's): afterwards the
//!   host must still answer a command.
//!
//! Reading the file gives the last command's report line.

use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

use super::{Controller, INIT_TIMEOUT_MS};
use crate::bus::channel::Channel;
use crate::shim::SharedPage;
use crate::vmbus::gpadl::GpadlRange;
use crate::vmbus::packet::PacketFlags;
use crate::vmbus::scsi::{Command, Transfer};
use crate::vmbus::vstor::{
    direction, operation, srb, status, Outcome, VmscsiRequest, VstorPacket, VSTOR_PACKET_SIZE,
};

/// A page frame far above the RAM of any guest the rig runs.
const FOREIGN_PFN: u64 = 1 << 40;
/// Most packets of a flood.
const MAX_FLOOD: u32 = 100_000;

/// Sends `data` (with `ranges`) on `ch`, waits for the answer.
fn ask(ch: &Channel, ranges: &[GpadlRange<'_>], data: &[u8]) -> Result<VstorPacket> {
    let mut reply = [0u8; VSTOR_PACKET_SIZE];
    let n = ch.request_with_pages(ranges, data, &mut reply, INIT_TIMEOUT_MS)?;
    VstorPacket::from_data(&reply[..n]).ok_or_else(|| {
        pr_err!("storage misbehave: answer of {} bytes\n", n);
        EPROTO
    })
}

/// An EXECUTE_SRB of `cdb` moving `len` bytes into the guest.
fn srb_packet(cdb: &[u8], len: u32) -> VstorPacket {
    let vm = VmscsiRequest::command(0, cdb, direction::READ, len);
    VstorPacket::request(operation::EXECUTE_SRB).with_body(&vm)
}

fn expect(what: &str, ok: bool, p: &VstorPacket) -> Result {
    if ok {
        return Ok(());
    }
    let vm: VmscsiRequest = p.body_as().unwrap_or_default();
    pr_err!(
        "storage misbehave: {}: host answered operation {} status {:#x} srb {:#x} scsi {:#x}\n",
        what,
        p.operation,
        p.status,
        vm.srb_status,
        vm.scsi_status
    );
    Err(EPROTO)
}

/// A refusal of a command's data: INVALID_PARAMETER and SRB INVALID_REQUEST.
fn refused_data(what: &str, p: &VstorPacket) -> Result {
    let vm: VmscsiRequest = p.body_as().unwrap_or_default();
    expect(
        what,
        p.operation == operation::COMPLETE_IO
            && p.status == status::INVALID_PARAMETER
            && vm.srb_status & srb::STATUS_MASK == srb::INVALID_REQUEST,
        p,
    )
}

/// Runs `cmd` on the controller; the report line.
pub(super) fn run(ctl: &Arc<Controller>, cmd: &str, out: &mut KVec<u8>) -> Result {
    use zerocopy::IntoBytes;
    let ch = &ctl.primary;
    let (verb, arg) = cmd.split_once(' ').map_or((cmd, ""), |(v, a)| (v, a.trim()));
    let read16 = Command::Read(Transfer {
        lba: 0,
        blocks: 8,
        fua: false,
    })
    .cdb()
    .ok_or(EINVAL)?;
    let page = SharedPage::new()?;
    let own = [page.phys() >> 12];
    let foreign = [FOREIGN_PFN];
    let line = match (verb, arg) {
        ("garbage", "") => {
            let p = ask(ch, &[], &[0x5a; 7])?;
            expect(verb, p.status == status::INVALID_PARAMETER, &p)?;
            CString::try_from_fmt(fmt!("garbage: refused, status {:#x}\n", p.status))?
        }
        ("unknown-operation", "") => {
            let p = ask(ch, &[], VstorPacket::request(0x77).as_bytes())?;
            expect(verb, p.status == status::NOT_SUPPORTED, &p)?;
            CString::try_from_fmt(fmt!("unknown-operation: refused, status {:#x}\n", p.status))?
        }
        ("bad-cdb", "") => {
            let p = ask(ch, &[], srb_packet(&[0xff; 16], 0).as_bytes())?;
            let vm: VmscsiRequest = p.body_as().unwrap_or_default();
            expect(verb, vm.outcome(0) == Outcome::Target, &p)?;
            CString::try_from_fmt(fmt!("bad-cdb: CHECK CONDITION, ILLEGAL REQUEST\n"))?
        }
        ("short-range", "") => {
            let range = [GpadlRange {
                byte_count: 2048,
                byte_offset: 0,
                pfns: &own,
            }];
            refused_data(verb, &ask(ch, &range, srb_packet(read16.as_slice(), 4096).as_bytes())?)?;
            CString::try_from_fmt(fmt!("short-range: refused\n"))?
        }
        ("foreign-range", "") => {
            let range = [GpadlRange {
                byte_count: 4096,
                byte_offset: 0,
                pfns: &foreign,
            }];
            refused_data(verb, &ask(ch, &range, srb_packet(read16.as_slice(), 4096).as_bytes())?)?;
            CString::try_from_fmt(fmt!("foreign-range: refused\n"))?
        }
        ("data-in-band", "") => {
            refused_data(verb, &ask(ch, &[], srb_packet(read16.as_slice(), 4096).as_bytes())?)?;
            CString::try_from_fmt(fmt!("data-in-band: refused\n"))?
        }
        ("flood", n) => {
            let n: u32 = n.parse().map_err(|_| EINVAL)?;
            if n == 0 || n > MAX_FLOOD {
                return Err(EINVAL);
            }
            let tur = Command::TestUnitReady.cdb().ok_or(EINVAL)?;
            let pkt = VstorPacket::request(operation::EXECUTE_SRB)
                .with_body(&VmscsiRequest::command(0, tur.as_slice(), direction::UNKNOWN, 0));
            for i in 0..n {
                // Low 32 bits zero: the ID names no tag of any queue.
                let id = u64::from(i + 1) << 32;
                ch.send_inband_wait(id, PacketFlags::COMPLETION_REQUESTED, pkt.as_bytes(), INIT_TIMEOUT_MS)?;
            }
            // The host still answers (done, or BUSY while it catches up).
            let p = ask(ch, &[], pkt.as_bytes())?;
            expect(verb, p.operation == operation::COMPLETE_IO, &p)?;
            CString::try_from_fmt(fmt!("flood: {} commands sent; the host still answers\n", n))?
        }
        _ => return Err(EINVAL),
    };
    out.clear();
    out.extend_from_slice(line.to_bytes(), GFP_KERNEL)?;
    Ok(())
}
