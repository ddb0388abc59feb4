// SPDX-License-Identifier: GPL-2.0

//! hvhost, the host half of the contract: a VMM on KVM built from rust-vmm crates.
//!
//! [`builder`] assembles a VM from a [`cli::VmConfig`]; [`run`] boots it and returns when
//! the guest powers off, resets or fails. The binary in `main.rs` only parses the command
//! line, sets up logging and maps the outcome to an exit status.

// Unsafe code only where a module says why it needs it: the terminal and
// signalfd (console), the thread CPU clock (hyperv::msrs), and KVM's run
// structure and memory slots (vstate).
#![deny(unsafe_code)]

pub mod acpi;
pub mod api;
pub mod boot;
pub mod builder;
pub mod cli;
#[allow(unsafe_code)]
pub mod console;
pub mod control;
pub mod cpuid;
pub mod devices;
pub mod event_loop;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod hyperv;
pub mod loader;
pub mod logger;
pub mod memory;
pub mod named;
pub mod sandbox;
pub mod storage;
pub mod vmbus;
pub mod vsock;
#[allow(unsafe_code)]
pub mod vstate;

pub use builder::run;
pub use builder::{Error, Result};
pub use control::VmExitReason;
