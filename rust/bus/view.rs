// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/hv_guest/vmbus/`: the bus (`state`), every channel
//! (`channels`: one block per channel: class and instance GUIDs, relid,
//! state, driver, ring sizes, counters) and what the IC drivers saw
//! (`ic`: heartbeats, shutdown requests, timesync offset).

use core::fmt::{self, Formatter};

use kernel::sync::atomic::Relaxed;

use super::VmBus;
use crate::ic::timesync;

/// `state`: phase, version, message connection and the bus counters.
pub(crate) fn show_state(bus: Option<&VmBus>, f: &mut Formatter<'_>) -> fmt::Result {
    let Some(vm) = bus else {
        return writeln!(f, "phase none (no VMBus host)");
    };
    let bus = vm.bus();
    let (phase, version, conn) = bus.connection();
    writeln!(f, "phase {:?}", phase)?;
    writeln!(f, "version {}", version)?;
    writeln!(f, "msg_conn_id {}", conn)?;
    // Named to the host in INITIATE_CONTACT below 5.0 only.
    if version.contact_names_sint() {
        writeln!(f, "interrupt_page none")?;
    } else {
        writeln!(f, "interrupt_page {:#x}", bus.interrupt_page.phys())?;
    }
    writeln!(f, "target_vp {}", bus.target_vp)?;
    writeln!(f, "channels {}", bus.channels().len())?;
    writeln!(
        f,
        "ring_pages live {} leaked {}",
        super::ring::LIVE_PAGES.load(Relaxed),
        super::ring::LEAKED_PAGES.load(Relaxed)
    )?;
    let c = &bus.counters;
    writeln!(
        f,
        "messages {} inbox_full {} rejected {} offers {} rescinds {} unsolicited {} events_unknown_relid {}",
        c.messages.load(Relaxed),
        c.inbox_full.load(Relaxed),
        c.rejected.load(Relaxed),
        c.offers.load(Relaxed),
        c.rescinds.load(Relaxed),
        c.unsolicited.load(Relaxed),
        c.events_unknown_relid.load(Relaxed)
    )
}

/// `channels`: one block per channel, a blank line between.
pub(crate) fn show_channels(bus: Option<&VmBus>, f: &mut Formatter<'_>) -> fmt::Result {
    let Some(vm) = bus else {
        return Ok(());
    };
    for ch in vm.bus().channels().iter() {
        let i = ch.info();
        let (state, driver, gpadl, send, recv) = ch.status();
        writeln!(f, "relid {}", i.relid)?;
        writeln!(
            f,
            "  class {} {}",
            i.class,
            i.class.class_name().unwrap_or("unknown")
        )?;
        writeln!(f, "  instance {}", i.instance)?;
        writeln!(f, "  connection_id {:#x}", i.connection_id)?;
        writeln!(f, "  sub_channel_index {}", i.sub_channel_index)?;
        writeln!(
            f,
            "  monitor_allocated {} dedicated_interrupt {}",
            i.monitor_allocated as u8, i.dedicated_interrupt as u8
        )?;
        writeln!(f, "  state {:?}", state)?;
        writeln!(f, "  driver {}", driver.unwrap_or("none"))?;
        writeln!(f, "  rescinded {}", ch.is_rescinded() as u8)?;
        writeln!(f, "  gpadl {:#x}", gpadl)?;
        writeln!(f, "  target_vp {}", ch.target_vp())?;
        writeln!(f, "  ring_send {} ring_recv {}", send, recv)?;
        let c = &ch.counters;
        writeln!(
            f,
            "  tx_packets {} rx_packets {} signals {} events {} errors {} ring_full {} space_waits {}",
            c.tx_packets.load(Relaxed),
            c.rx_packets.load(Relaxed),
            c.signals.load(Relaxed),
            c.events.load(Relaxed),
            c.errors.load(Relaxed),
            c.ring_full.load(Relaxed),
            c.space_waits.load(Relaxed)
        )?;
        writeln!(f)?;
    }
    Ok(())
}

/// `ic`: what the utility drivers did.
pub(crate) fn show_ic(f: &mut Formatter<'_>) -> fmt::Result {
    use crate::ic::{heartbeat, shutdown};
    writeln!(
        f,
        "heartbeat beats {} last_seq {}",
        heartbeat::BEATS.load(Relaxed),
        heartbeat::LAST_SEQ.load(Relaxed)
    )?;
    writeln!(f, "shutdown requests {}", shutdown::REQUESTS.load(Relaxed))?;
    writeln!(
        f,
        "timesync samples {} applied {} offset_ns {} last_flags {}",
        timesync::SAMPLES.load(Relaxed),
        timesync::APPLIED.load(Relaxed),
        timesync::OFFSET_NS.load(Relaxed),
        timesync::LAST_FLAGS.load(Relaxed)
    )
}
