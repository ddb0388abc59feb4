// SPDX-License-Identifier: GPL-2.0

//! hvhost, the host half of the contract. The VMM itself (KVM, memory,
//! boot, devices) is built by the hvhost issue; this crate exists so that
//! the workspace layout is final and the shared crates are already compiled
//! for the host side.
