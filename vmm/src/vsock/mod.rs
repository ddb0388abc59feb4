// SPDX-License-Identifier: GPL-2.0

//! Hyper-V sockets on the host (issue 15): guest streams relayed to host
//! Unix sockets.
//!
//! - [`hybrid`]: the host programs' side, the hybrid-vsock convention of
//!   Firecracker and Cloud Hypervisor (`PATH_N`, `CONNECT N`, `OK PORT`).
//!
//! The VMBus side (TL_CONNECT_REQUEST, one offer per connection, the
//! stream packets of [`::vmbus::hvsock`]) is still to come.

pub mod hybrid;
