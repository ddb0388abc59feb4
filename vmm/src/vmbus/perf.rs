// SPDX-License-Identifier: GPL-2.0

//! The benchmark sink (`--vmbus-perf`): a device of class
//! [`HVHOST_PERF`] that takes the guest's in-band packets, counts them and
//! drops them, and answers a packet that asks for a completion with the
//! channel's counters ([`PerfCounters`]; protocol in `vmbus::perf`). It
//! exists to measure the guest-to-host data path (packets per second,
//! signals and interrupts per packet) with no device work in the way.
//!
//! The guest is not trusted: a packet of another type or with unknown
//! flags closes the channel with a logged error; a completion that does not
//! fit the guest's receive ring (a guest that asks and never reads) is
//! dropped and counted, never waited for.

use std::time::Instant;

use vmbus::guid::{Guid, HVHOST_PERF};
use vmbus::packet::{Packet, PacketFlags, PacketType};
use vmbus::perf::PerfCounters;
use vmbus::ring::RingError;
use zerocopy::IntoBytes as _;

use super::channel::ChannelIo;
use super::device::{DeviceError, VmbusDevice};

/// The sink device.
#[derive(Debug, Default)]
pub struct PerfSink {
    /// Counters of the open channel (reset when it opens); the signal and
    /// interrupt counts are the server's, copied at each packet.
    counters: PerfCounters,
}

impl PerfSink {
    /// A sink with nothing received.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the sink has counted since the channel opened.
    pub fn counters(&self) -> PerfCounters {
        self.counters
    }
}

impl VmbusDevice for PerfSink {
    fn name(&self) -> &'static str {
        "perf"
    }

    fn class_id(&self) -> Guid {
        HVHOST_PERF
    }

    fn instance_id(&self) -> Guid {
        super::ic::instance_guid(0x10)
    }

    fn open(&mut self, _io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        *self = Self::default();
        Ok(())
    }

    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError> {
        let desc = &packet.desc;
        if desc.ty != PacketType::DATA_INBAND {
            return Err(DeviceError::Protocol(format!(
                "perf: packet of type {:?}, only in-band data is accepted",
                desc.ty
            )));
        }
        if desc.flags.0 & !PacketFlags::COMPLETION_REQUESTED.0 != 0 {
            return Err(DeviceError::Protocol(format!(
                "perf: unknown packet flags {:#x}",
                desc.flags.0
            )));
        }
        let c = &mut self.counters;
        c.packets = c.packets.wrapping_add(1);
        c.bytes = c.bytes.wrapping_add(packet.data().len() as u64);
        let counts = io.counts();
        c.guest_signals = counts.guest_signals;
        c.guest_interrupts = counts.guest_interrupts;
        if desc.flags.contains(PacketFlags::COMPLETION_REQUESTED) {
            match io.send_completion(desc, self.counters.as_bytes()) {
                Ok(()) => {}
                Err(RingError::Full { need, free }) => {
                    let c = &mut self.counters;
                    c.completions_dropped = c.completions_dropped.saturating_add(1);
                    if c.completions_dropped == 1 {
                        log::warn!(
                            "vmbus: perf: the guest's receive ring is full ({free} bytes free, \
                             {need} needed): completion dropped (counted from now on)"
                        );
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn poll(&mut self, _io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        Ok(None)
    }

    fn counters(&self) -> String {
        let c = &self.counters;
        format!(
            "packets={} bytes={} completions_dropped={}",
            c.packets, c.bytes, c.completions_dropped
        )
    }

    fn close(&mut self) {
        let c = &self.counters;
        log::info!(
            "vmbus: perf: channel closed after {} packets, {} bytes, {} completions dropped",
            c.packets,
            c.bytes,
            c.completions_dropped
        );
    }
}
