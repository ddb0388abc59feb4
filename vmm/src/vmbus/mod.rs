// SPDX-License-Identifier: GPL-2.0

//! The VMBus server: channel messages over the SynIC, channels with ring
//! GPADLs, and the devices behind them.
//!
//! - [`server`]: the protocol state machine (versions, offers, GPADLs,
//!   open/close, rescind, unload), reaching the guest through
//!   [`port::GuestPort`];
//! - [`gpadl`]: GPADL assembly and validation against guest RAM;
//! - [`channel`] and [`guest_ring`]: an open channel's two rings in guest
//!   memory, run by the shared `vmbus::ring` code;
//! - [`device`]: the [`device::VmbusDevice`] trait devices implement;
//! - [`ic`]: the integration components (heartbeat, shutdown, timesync);
//! - [`perf`]: the benchmark sink (`--vmbus-perf`);
//! - [`worker`]: the thread everything runs on and its hooks into the
//!   partition's connection table.
//!
//! This module owns the VMBus protocol state; it never touches KVM, and
//! it must never let a guest's input panic it or stall a vCPU thread.

pub mod channel;
pub mod device;
pub mod gpadl;
pub mod guest_ring;
pub mod ic;
pub mod perf;
pub mod port;
pub mod server;
pub mod storvsp;
pub mod worker;

#[cfg(test)]
mod tests;

pub use worker::{Vmbus, VmbusConfig};
