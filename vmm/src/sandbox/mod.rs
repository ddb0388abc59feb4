// SPDX-License-Identifier: GPL-2.0

//! hvhost's sandbox: what a guest that took over one of hvhost's threads could still do.
//!
//! - [`seccomp`]: each thread runs under a seccomp filter of its own that lets through the
//!   system calls its work needs and nothing else (`--seccomp=off` turns them off, for
//!   debugging). A forbidden call ends the process with [`seccomp::EXIT_FORBIDDEN_SYSCALL`],
//!   after one `seccomp thread=... syscall=...` record on stderr.
//! - [`user`]: `--user` drops root once `/dev/kvm`, the images and the sockets are open,
//!   before the guest runs.
//!
//! Order in [`crate::builder::run`]: the filters are compiled first (a kernel without
//! seccomp is an error then, not later), threads enter theirs as they start, the user is
//! dropped before the vCPUs start, and the main thread enters its filter last, when it has
//! nothing left to open.

#[allow(unsafe_code)]
pub mod seccomp;
#[allow(unsafe_code)]
pub mod user;
