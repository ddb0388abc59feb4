// SPDX-License-Identifier: GPL-2.0

//! What the VMBus server needs from the partition ([`GuestPort`]: the
//! SynIC, guest memory, the connection table, the reference clock), so
//! that the server runs unchanged on a fake in tests, and the fault
//! injection switches ([`Faults`]).

use std::sync::Arc;

use hvcall::hypercall::HvStatus;

use crate::hyperv::connections::ConnectionError;
use crate::hyperv::guest_mem::GuestPages;

/// How the server reaches the guest: the SynIC and guest memory in hvhost,
/// a recorder in tests.
pub trait GuestPort: Send + Sync {
    /// Number of VPs (valid VP indices are below it).
    fn vp_count(&self) -> u32;
    /// Guest memory.
    fn memory(&self) -> &Arc<dyn GuestPages>;
    /// Posts a VMBus message (header and body, at most 240 bytes) to the
    /// SINT 2 slot of VP `vp`.
    fn post_message(&self, vp: u32, message: &[u8]) -> Result<(), HvStatus>;
    /// Sets event flag `relid` of SINT 2 on VP `vp` (interrupting it if the
    /// flag was clear).
    fn signal_channel(&self, vp: u32, relid: u32);
    /// Routes HvSignalEvent on `connection_id` to channel `relid`.
    fn register_channel_event(&self, connection_id: u32, relid: u32)
        -> Result<(), ConnectionError>;
    /// Stops routing `connection_id`.
    fn unregister_channel_event(&self, connection_id: u32);
    /// The partition reference time (TIME_REF_COUNT) now.
    fn reference_time(&self) -> u64;
    /// Asks the server's thread to poll channel `relid`'s device soon; any
    /// thread may call it (a device's I/O thread, when work completes).
    fn wake_channel(&self, relid: u32);
    /// What VP `vp` is doing now, if that can be known ([`GuestActivity`]).
    /// Without it a drain never polls for the guest's next packet.
    fn vcpu_sample(&self, _vp: u32) -> Option<VcpuSample> {
        None
    }
}

/// One reading of a VP's progress: both halves move only with the guest's
/// own execution, not with the time that passes around it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSample {
    /// The VP's thread sleeps: in HLT waiting for an interrupt, or blocked
    /// in the VMM. It publishes nothing until something wakes it.
    pub asleep: bool,
    /// CPU time its thread has run, in ns (guest code, KVM, exit handling).
    /// It stands still while the host does not schedule the thread.
    pub run_ns: u64,
}

/// Where [`VcpuSample`]s come from (KVM's statistics and the vCPU threads'
/// CPU clocks in hvhost; a script in tests).
pub trait GuestActivity: Send + Sync {
    /// VP `vp` now, or `None` when it cannot be read (no such VP, its
    /// thread gone, no statistic).
    fn sample(&self, vp: u32) -> Option<VcpuSample>;
}

/// Deliberate protocol violations for testing a guest's defences
/// (`--vmbus-fault`). Each fires once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Send one OFFERCHANNEL shorter than Linux's minimum before the real
    /// offers.
    pub malformed_offer: bool,
    /// Answer the first GPADL with a GPADL_CREATED for a handle the guest
    /// never sent (then the real answer).
    pub bogus_gpadl_reply: bool,
    /// After the first channel opens, write an out-of-range write index into
    /// its host-to-guest ring.
    pub corrupt_ring: bool,
}
