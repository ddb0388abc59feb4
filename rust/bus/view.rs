// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/hv_guest/vmbus/`: the bus (`state`) and every
//! channel (`channels`), one record per line, each field `key=value`
//! (values have no spaces), for scripts.

use core::fmt::{self, Formatter};

use kernel::sync::atomic::Relaxed;

use super::VmBus;

/// `state`: one record: phase, version, message connection, the interrupt
/// page (named to the host below 5.0 only), ring page accounting and the
/// bus counters.
pub(crate) fn show_state(bus: Option<&VmBus>, f: &mut Formatter<'_>) -> fmt::Result {
    let Some(vm) = bus else {
        return writeln!(f, "phase=none");
    };
    let bus = vm.bus();
    let crate::bus::Connection {
        phase,
        version,
        msg_conn,
    } = bus.connection();
    write!(
        f,
        "phase={:?} version={} msg_conn_id={}",
        phase, version, msg_conn
    )?;
    if version.contact_names_sint() {
        write!(f, " interrupt_page=none")?;
    } else {
        write!(f, " interrupt_page={:#x}", bus.interrupt_page.phys())?;
    }
    let c = &bus.counters;
    let rejected = [
        c.rejected_malformed.load(Relaxed),
        c.rejected_unexpected.load(Relaxed),
        c.rejected_offer.load(Relaxed),
        c.rejected_rescind.load(Relaxed),
    ];
    writeln!(
        f,
        " target_vp={} channels={} ring_pages_live={} ring_pages_leaked={} messages={} inbox_full={} rejected={} rejected_malformed={} rejected_unexpected={} rejected_offer={} rejected_rescind={} offers={} rescinds={} releases={} unsolicited={} events_unknown_relid={} connect_requests={} connect_results={}",
        bus.target_vp,
        bus.channels().len(),
        super::ring::LIVE_PAGES.load(Relaxed),
        super::ring::LEAKED_PAGES.load(Relaxed),
        c.messages.load(Relaxed),
        c.inbox_full.load(Relaxed),
        rejected.iter().fold(0u64, |a, n| a.saturating_add(*n)),
        rejected[0],
        rejected[1],
        rejected[2],
        rejected[3],
        c.offers.load(Relaxed),
        c.rescinds.load(Relaxed),
        c.releases.load(Relaxed),
        c.unsolicited.load(Relaxed),
        c.events_unknown_relid.load(Relaxed),
        c.connect_requests.load(Relaxed),
        c.connect_results.load(Relaxed)
    )
}

/// `channels`: one record per channel: its offer (relid, class GUID and
/// name, instance, connection, flags), state, driver, rings and counters.
pub(crate) fn show_channels(bus: Option<&VmBus>, f: &mut Formatter<'_>) -> fmt::Result {
    let Some(vm) = bus else {
        return Ok(());
    };
    for ch in vm.bus().channels().iter() {
        let i = ch.info();
        let crate::bus::channel::ChannelStatus {
            state,
            driver,
            gpadl,
            send_bytes,
            recv_bytes,
        } = ch.status();
        write!(
            f,
            "relid={} class={} name={} instance={} connection_id={:#x} sub_channel_index={} monitor_allocated={} dedicated_interrupt={}",
            i.relid,
            i.class,
            i.class.class_name().unwrap_or("unknown"),
            i.instance,
            i.connection_id,
            i.sub_channel_index,
            u8::from(i.monitor_allocated),
            u8::from(i.dedicated_interrupt)
        )?;
        write!(
            f,
            " state={:?} driver={} rescinded={} gpadl={:#x} target_vp={} ring_send={} ring_recv={}",
            state,
            driver.unwrap_or("none"),
            u8::from(ch.is_rescinded()),
            gpadl,
            ch.target_vp(),
            send_bytes,
            recv_bytes
        )?;
        let c = &ch.counters;
        writeln!(
            f,
            " tx_packets={} rx_packets={} signals={} events={} errors={} ring_full={} space_waits={}",
            c.tx_packets.load(Relaxed),
            c.rx_packets.load(Relaxed),
            c.signals.load(Relaxed),
            c.events.load(Relaxed),
            c.errors.load(Relaxed),
            c.ring_full.load(Relaxed),
            c.space_waits.load(Relaxed)
        )?;
    }
    Ok(())
}
