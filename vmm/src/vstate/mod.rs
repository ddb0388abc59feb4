// SPDX-License-Identifier: GPL-2.0

//! KVM state: the VM ([`vm`]) and its vCPUs ([`vcpu`]), and the threads that run them.
//!
//! Each vCPU runs KVM_RUN in its own thread. To stop them, hvhost sets the stop flag in
//! [`crate::control::VmControl`] and sends the kick signal (SIGRTMIN) to every vCPU thread
//! until it has returned: a vCPU in KVM_RUN (running, halted in the in-kernel LAPIC, or
//! waiting for SIPI) comes back with EINTR, sees the flag and leaves its loop. A kick
//! that lands just before KVM_RUN is entered is covered by the next one, so no vCPU can be
//! left behind without the signal handler touching `kvm_run`.

pub mod activity;
pub mod tsc;
pub mod vcpu;
pub mod vm;

use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use vcpu::ExitStats;

/// Why KVM state (the VM, its memory slots, its vCPUs) could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VstateError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm (is KVM enabled and accessible?): {0}")]
    OpenKvm(#[source] kvm_ioctls::Error),

    /// A KVM ioctl failed.
    #[error("KVM could not {what}: {source}")]
    Kvm {
        /// What hvhost asked KVM to do, as a verb phrase.
        what: &'static str,
        /// The errno KVM returned.
        #[source]
        source: kvm_ioctls::Error,
    },

    /// A KVM ioctl on one vCPU failed.
    #[error("KVM could not {what} for vCPU {vcpu}: {source}")]
    KvmVcpu {
        /// What hvhost asked KVM to do, as a verb phrase.
        what: &'static str,
        /// Index of the vCPU.
        vcpu: u8,
        /// The errno KVM returned.
        #[source]
        source: kvm_ioctls::Error,
    },

    /// The host's KVM lacks a capability hvhost depends on.
    #[error("this KVM lacks the {0} capability, which hvhost needs")]
    MissingCapability(&'static str),

    /// A KVM_GET_SUPPORTED_CPUID result could not be turned back into a CPUID list.
    #[error("cannot build the CPUID table for vCPU {vcpu}: {reason}")]
    Cpuid {
        /// Index of the vCPU.
        vcpu: u8,
        /// What went wrong.
        reason: String,
    },

    /// A guest RAM region has no host mapping to hand to KVM as a memory slot.
    #[error("cannot find the host address of a guest memory region for its KVM memory slot: {0}")]
    MemorySlotHostAddress(#[source] vm_memory::GuestMemoryError),

    /// Guest RAM has more regions than KVM memory slot numbers can name.
    #[error("guest memory has more regions than KVM memory slots can number")]
    TooManyMemorySlots,

    /// The signal handler that kicks vCPUs out of KVM_RUN could not be installed.
    #[error("cannot install the vCPU kick signal handler: {0}")]
    KickHandler(#[source] io::Error),
}

impl VstateError {
    /// Shorthand for [`VstateError::Kvm`].
    pub fn kvm(what: &'static str, source: kvm_ioctls::Error) -> Self {
        VstateError::Kvm { what, source }
    }
}

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
pub fn install_kick_handler() -> Result<(), VstateError> {
    register_signal_handler(kick_signal(), handle_kick)
        .map_err(|e| VstateError::KickHandler(e.into()))
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
