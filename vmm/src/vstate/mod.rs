// SPDX-License-Identifier: GPL-2.0

//! KVM state: the VM ([`vm`]) and its vCPUs ([`vcpu`]), and the threads that run them.
//!
//! Each vCPU runs KVM_RUN in its own thread. To stop them, hvhost sets the stop flag in
//! [`crate::control::VmControl`] and sends the kick signal (SIGRTMIN) to every vCPU thread
//! until it has returned: a vCPU in KVM_RUN (running, halted in the in-kernel LAPIC, or
//! waiting for SIPI) comes back with EINTR, sees the flag and leaves its loop. A kick
//! that lands just before KVM_RUN is entered is covered by the next one, so no vCPU can be
//! left behind without the signal handler touching `kvm_run`.

pub mod vcpu;
pub mod vm;

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::error::{Error, Result};
use vcpu::ExitStats;

/// Interval between kicks while vCPU threads are stopping.
const KICK_INTERVAL: Duration = Duration::from_millis(2);
/// How long to wait for vCPU threads before giving up on them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The signal that kicks a vCPU thread out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

extern "C" fn handle_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Nothing to do: delivering the signal is what makes KVM_RUN return EINTR.
}

/// Installs the kick signal handler (process-wide, once, before vCPU threads start).
pub fn install_kick_handler() -> Result<()> {
    register_signal_handler(kick_signal(), handle_kick)
        .map_err(|e| Error::os("install the vCPU kick signal handler", e.into()))
}

/// A running vCPU thread.
pub struct VcpuThread {
    /// vCPU index.
    pub index: u8,
    /// The thread; it returns the vCPU's exit counters.
    pub handle: JoinHandle<ExitStats>,
}

/// Kicks every vCPU thread until it returns, then joins it. Returns each vCPU's counters,
/// or `None` for a thread that did not stop in time or panicked.
pub fn stop_vcpus(threads: Vec<VcpuThread>) -> Vec<(u8, Option<ExitStats>)> {
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let running: Vec<&VcpuThread> =
            threads.iter().filter(|t| !t.handle.is_finished()).collect();
        if running.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            for t in running {
                log::error!("vCPU {} did not stop within {:?}", t.index, STOP_TIMEOUT);
            }
            break;
        }
        for t in running {
            if let Err(e) = t.handle.kill(kick_signal()) {
                log::debug!("cannot kick vCPU {}: {e}", t.index);
            }
        }
        std::thread::sleep(KICK_INTERVAL);
    }
    threads
        .into_iter()
        .map(|t| {
            if !t.handle.is_finished() {
                return (t.index, None);
            }
            match t.handle.join() {
                Ok(stats) => (t.index, Some(stats)),
                Err(_) => {
                    log::error!("the thread of vCPU {} panicked", t.index);
                    (t.index, None)
                }
            }
        })
        .collect()
}
