// SPDX-License-Identifier: GPL-2.0

//! The VMBus contract shared by hvguest and hvhost. Same rules as `hvcall`:
//! `no_std`, no allocation, no `unsafe`, relative paths only.
//!
//! For now it holds the protocol version numbers; the channel messages and
//! the ring come with the VMBus issue.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod version;
