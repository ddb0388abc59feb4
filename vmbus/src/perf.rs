// SPDX-License-Identifier: GPL-2.0

//! The wire protocol of hvhost's benchmark sink ([`super::guid::HVHOST_PERF`],
//! offered by `hvhost --vmbus-perf`), a device class of this project, not of
//! Hyper-V:
//!
//! - The guest sends in-band packets (`VM_PKT_DATA_INBAND`) of any length;
//!   the host counts them and their data bytes (as they lie in the ring:
//!   padded to 8) and drops them.
//! - A packet with [`PacketFlags::COMPLETION_REQUESTED`] is answered with a
//!   completion (`VM_PKT_COMP`, same transaction ID) whose data is
//!   [`PerfCounters`], the host's counts *including that packet*. The ring
//!   is in order, so the answer also says that everything sent before it
//!   arrived: a guest brackets a stream with two such requests and knows
//!   how many of its packets the host saw, and what the host did meanwhile.
//! - Any other packet type or flag is a protocol violation: the host closes
//!   the channel.
//!
//! [`PacketFlags::COMPLETION_REQUESTED`]: super::packet::PacketFlags::COMPLETION_REQUESTED

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The data of the host's completion: its counters of this channel since
/// it was opened, all little-endian.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct PerfCounters {
    /// In-band packets received, this one included.
    pub packets: u64,
    /// Their data bytes (padded to 8, as in the ring).
    pub bytes: u64,
    /// Channel signals (HvSignalEvent) the host took from the guest; the
    /// host coalesces signals that arrive while one is still queued.
    pub guest_signals: u64,
    /// Interrupts (event flags) the host sent the guest on this channel,
    /// not counting the one this completion may cause.
    pub guest_interrupts: u64,
    /// Completions the host could not send because the guest's receive
    /// ring was full.
    pub completions_dropped: u64,
}

/// Size of [`PerfCounters`] on the wire.
pub const PERF_COUNTERS_SIZE: usize = core::mem::size_of::<PerfCounters>();
const _: () = assert!(PERF_COUNTERS_SIZE == 40);

impl PerfCounters {
    /// Reads the counters from a completion's data (which may carry
    /// padding after them); `None` if it is too short.
    pub fn from_completion(data: &[u8]) -> Option<Self> {
        super::message::read_prefix(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes as _;

    #[test]
    fn counters_round_trip_and_short_data_is_refused() {
        let c = PerfCounters {
            packets: 1,
            bytes: 2,
            guest_signals: 3,
            guest_interrupts: 4,
            completions_dropped: 5,
        };
        let mut padded = c.as_bytes().to_vec();
        assert_eq!(padded.len(), 40);
        assert_eq!(&padded[..8], &1u64.to_le_bytes());
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(PerfCounters::from_completion(&padded), Some(c));
        assert_eq!(PerfCounters::from_completion(&padded[..39]), None);
    }
}
