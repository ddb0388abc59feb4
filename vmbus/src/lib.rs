// SPDX-License-Identifier: GPL-2.0

//! The VMBus contract shared by hvguest and hvhost. Same rules as `hvcall`:
//! `no_std`, no allocation, no `unsafe`, relative paths only (`super::`
//! between the files, which the kernel module includes by `#[path]`).
//!
//! - [`version`]: protocol version numbers.
//! - [`guid`]: GUIDs and the integration service classes.
//! - [`ic`]: the integration components' message framework (heartbeat, shutdown, timesync).
//! - [`message`]: channel message types and layouts, and their encoders;
//!   [`parse`]: the checked parser for what the other side sends.
//! - [`gpadl`]: splitting a page list into GPADL messages and assembling it.
//! - [`packet`]: ring packets: descriptor, types, GPA-direct ranges.
//! - [`ring`]: the ring buffer, producer and consumer, over [`ring::RingMemory`].
//! - [`perf`]: the wire protocol of hvhost's benchmark sink device.
//! - [`hvsock`]: Hyper-V sockets: port GUIDs, the offer, the stream packets.
//! - [`vstor`]: the storage protocol (storvsc's VSTOR packets);
//!   [`scsi`]: the SCSI commands and data it carries.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod gpadl;
pub mod guid;
pub mod hvsock;
pub mod ic;
pub mod message;
pub mod packet;
pub mod parse;
pub mod perf;
pub mod ring;
pub mod scsi;
pub mod version;
pub mod vstor;
