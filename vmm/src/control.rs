// SPDX-License-Identifier: GPL-2.0

//! How a running VM ends: the reason, and the handle every thread and device uses to end it.
//!
//! The first [`VmControl::request_exit`] wins; later ones are ignored (after a triple fault
//! on vCPU 0, the other vCPUs being kicked is not news). The stop flag is what vCPU loops
//! poll; the eventfd wakes the main event loop, which then kicks and joins the vCPUs.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use vmm_sys_util::eventfd::EventFd;

/// hvhost's exit status when the guest powered off.
pub const EXIT_POWER_OFF: u8 = 0;
/// hvhost's exit status when the VM failed (triple fault, KVM error, host error).
pub const EXIT_FAILURE: u8 = 1;
/// hvhost's exit status when the guest asked for a reset or reboot.
pub const EXIT_RESET: u8 = 2;

/// Why the VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmExitReason {
    /// The guest entered ACPI S5 (or KVM reported a shutdown system event).
    PowerOff,
    /// The guest asked for a reset (ACPI reset register, 8042 pulse, or KVM reset event).
    Reset,
    /// KVM_EXIT_SHUTDOWN: the vCPU triple-faulted.
    TripleFault {
        /// vCPU index.
        vcpu: u8,
        /// RIP at the exit, if it could be read.
        rip: Option<u64>,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError {
        /// vCPU index.
        vcpu: u8,
        /// `kvm_run.internal.suberror` (1 = emulation failure).
        suberror: u32,
        /// RIP at the exit, if it could be read.
        rip: Option<u64>,
    },
    /// KVM_EXIT_FAIL_ENTRY: the hardware refused to enter the guest.
    FailEntry {
        /// vCPU index.
        vcpu: u8,
        /// `hardware_entry_failure_reason`.
        hardware_reason: u64,
        /// RIP at the exit, if it could be read.
        rip: Option<u64>,
    },
    /// KVM reported a guest crash system event.
    GuestCrash {
        /// vCPU index.
        vcpu: u8,
    },
    /// A vCPU could not continue (an ioctl failed, an unexpected exit, a panic).
    VcpuFailed {
        /// vCPU index.
        vcpu: u8,
        /// What happened.
        message: String,
    },
    /// The host asked hvhost to stop (SIGINT, SIGTERM, SIGHUP, SIGQUIT).
    Signal(i32),
    /// The host-side event loop failed.
    HostError(String),
}

impl VmExitReason {
    /// The process exit status for this reason, so that a caller tells the guest's ends
    /// apart without reading the log:
    ///
    /// | status | end |
    /// |---|---|
    /// | 0 | the guest powered off ([`EXIT_POWER_OFF`]) |
    /// | 1 | triple fault, KVM internal error, failed entry, guest crash report, vCPU or host failure ([`EXIT_FAILURE`]) |
    /// | 2 | the guest asked for a reset or reboot ([`EXIT_RESET`]); hvhost does not reboot it |
    /// | 128 + N | hvhost was stopped by signal N before the guest powered off |
    ///
    /// A kernel that panics with `panic=-1` resets the machine, so a panic reads as 2, not 0.
    pub fn exit_code(&self) -> u8 {
        match self {
            VmExitReason::PowerOff => EXIT_POWER_OFF,
            VmExitReason::Reset => EXIT_RESET,
            VmExitReason::Signal(sig) => 128u8.saturating_add(u8::try_from(*sig).unwrap_or(0)),
            _ => EXIT_FAILURE,
        }
    }

    /// Whether the guest ended the VM the way a machine is meant to be ended (power-off).
    pub fn is_clean(&self) -> bool {
        self.exit_code() == EXIT_POWER_OFF
    }
}

fn rip_text(rip: &Option<u64>) -> String {
    match rip {
        Some(r) => format!("{r:#x}"),
        None => "unknown".to_string(),
    }
}

impl fmt::Display for VmExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmExitReason::PowerOff => write!(f, "guest powered off"),
            VmExitReason::Reset => write!(f, "guest requested reset"),
            VmExitReason::TripleFault { vcpu, rip } => write!(
                f,
                "vCPU {vcpu} stopped the VM: triple fault (KVM_EXIT_SHUTDOWN) at RIP {}",
                rip_text(rip)
            ),
            VmExitReason::InternalError {
                vcpu,
                suberror,
                rip,
            } => write!(
                f,
                "vCPU {vcpu} stopped the VM: KVM internal error (KVM_EXIT_INTERNAL_ERROR, \
                 suberror {suberror}) at RIP {}",
                rip_text(rip)
            ),
            VmExitReason::FailEntry {
                vcpu,
                hardware_reason,
                rip,
            } => write!(
                f,
                "vCPU {vcpu} stopped the VM: VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware \
                 reason {hardware_reason:#x}) at RIP {}",
                rip_text(rip)
            ),
            VmExitReason::GuestCrash { vcpu } => {
                write!(f, "vCPU {vcpu} stopped the VM: the guest reported a crash")
            }
            VmExitReason::VcpuFailed { vcpu, message } => {
                write!(f, "vCPU {vcpu} stopped the VM: {message}")
            }
            VmExitReason::Signal(sig) => write!(f, "hvhost was stopped by signal {sig}"),
            VmExitReason::HostError(msg) => write!(f, "the host event loop failed: {msg}"),
        }
    }
}

/// Shared by vCPU threads, devices and the event loop to end the VM.
pub struct VmControl {
    /// Set once the VM is ending; vCPU loops check it before each KVM_RUN.
    stop: AtomicBool,
    /// The first reason given. Protects nothing else.
    reason: Mutex<Option<VmExitReason>>,
    /// Written on every request, to wake the event loop.
    exit_evt: EventFd,
}

impl VmControl {
    /// A control handle whose requests are signalled on `exit_evt`.
    pub fn new(exit_evt: EventFd) -> Self {
        Self {
            stop: AtomicBool::new(false),
            reason: Mutex::new(None),
            exit_evt,
        }
    }

    /// Ends the VM for `reason` unless it is already ending for an earlier one.
    pub fn request_exit(&self, reason: VmExitReason) {
        {
            let mut r = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
            if r.is_none() {
                log::debug!("VM exit requested: {reason}");
                *r = Some(reason);
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.exit_evt.write(1) {
            log::error!("cannot wake the event loop: {e}");
        }
    }

    /// Whether the VM is ending.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The reason the VM ended, if it has.
    pub fn reason(&self) -> Option<VmExitReason> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The eventfd that becomes readable when the VM should end.
    pub fn exit_evt(&self) -> &EventFd {
        &self.exit_evt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_wins_and_wakes_the_loop() {
        let evt = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let ctl = VmControl::new(evt.try_clone().expect("clone"));
        assert!(!ctl.should_stop());
        ctl.request_exit(VmExitReason::PowerOff);
        ctl.request_exit(VmExitReason::TripleFault {
            vcpu: 1,
            rip: Some(0x1000),
        });
        assert!(ctl.should_stop());
        assert_eq!(ctl.reason(), Some(VmExitReason::PowerOff));
        assert_eq!(evt.read().expect("woken"), 2);
    }

    #[test]
    fn exit_codes_and_messages() {
        assert_eq!(VmExitReason::PowerOff.exit_code(), 0);
        assert_eq!(VmExitReason::Reset.exit_code(), 2);
        assert!(!VmExitReason::Reset.is_clean());
        assert!(VmExitReason::PowerOff.is_clean());
        assert_eq!(VmExitReason::Reset.to_string(), "guest requested reset");
        assert_eq!(VmExitReason::Signal(15).exit_code(), 143);
        let tf = VmExitReason::TripleFault {
            vcpu: 2,
            rip: Some(0xffff_ffff_8100_0000),
        };
        assert_eq!(tf.exit_code(), 1);
        let msg = tf.to_string();
        assert!(
            msg.contains("vCPU 2") && msg.contains("KVM_EXIT_SHUTDOWN"),
            "{msg}"
        );
        assert!(msg.contains("0xffffffff81000000"), "{msg}");
    }
}
