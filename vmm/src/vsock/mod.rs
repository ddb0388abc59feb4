// SPDX-License-Identifier: GPL-2.0

//! Hyper-V sockets on the host (issue 15): guest streams relayed to host
//! Unix sockets.
//!
//! - [`hybrid`]: the host programs' side, the hybrid-vsock convention of
//!   Firecracker and Cloud Hypervisor (`PATH_N`, `CONNECT N`, `OK PORT`);
//! - [`service`]: `--vsock PATH`, the server's [`SocketService`]: guest
//!   connects go to `PATH_N`, host programs' connects come from `PATH`;
//! - [`relay`]: one connection, a VMBus device of its own relaying the
//!   stream packets of [`::vmbus::hvsock`] to a Unix stream;
//! - [`poller`]: the thread that wakes a connection when its stream can
//!   move bytes;
//! - [`fault`]: what a hostile host does to a guest's sockets, on request
//!   (`hvctl vsock-fault`), for tests.
//!
//! [`SocketService`]: crate::vmbus::device::SocketService

pub mod fault;
pub mod hybrid;
pub mod poller;
pub mod relay;
pub mod service;
