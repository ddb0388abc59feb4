// SPDX-License-Identifier: GPL-2.0

//! The Hyper-V enlightenment contract (TLFS) as plain data, shared by both
//! sides: hvguest includes these files into the kernel module by `#[path]`,
//! hvhost and the host tests use them as this crate.
//!
//! Rules for every file below: `no_std`, no allocation, no `unsafe`, and only
//! relative paths (`super::`), because in the kernel module these modules do
//! not sit at a crate root. Values the other side hands us are data: every
//! decoder here is total (no panics) over arbitrary input.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod advertise;
pub mod bits;
pub mod cpuid;
pub mod hypercall;
pub mod msr;
pub mod selftest;
pub mod synic;
pub mod testdev;
