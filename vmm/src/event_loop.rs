// SPDX-License-Identifier: GPL-2.0

//! The main thread's epoll loop while the VM runs.
//!
//! It waits for: a VM exit request (eventfd from [`VmControl`]), a termination signal
//! (signalfd), host terminal input for COM1, and "receive FIFO drained" from COM1. It
//! returns once the VM is ending; stopping and joining the vCPUs is the caller's job.
//!
//! The first SIGTERM or SIGINT asks the guest to shut down instead of stopping the VM, if
//! the caller gave a way to ask ([`GracefulShutdown`], VMBus's shutdown service) and it
//! could ask now; the guest then powers off. A second signal, or any other termination
//! signal, stops the VM at once.
//!
//! Back-pressure on input: when COM1's FIFO is full, stdin is taken out of the epoll set
//! (so a level-triggered fd cannot spin the loop) and put back when the guest has read the
//! FIFO empty.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use crate::console::{read_stdin, SignalFd};
use crate::control::{VmControl, VmExitReason};
use crate::devices::serial::SerialDevice;

const TOKEN_EXIT: u64 = 0;
const TOKEN_SIGNAL: u64 = 1;
const TOKEN_STDIN: u64 = 2;
const TOKEN_RX_DRAINED: u64 = 3;

/// Asks the guest to shut down; whether the request could be delivered.
pub type GracefulShutdown<'a> = &'a dyn Fn() -> bool;

/// Terminal input routed to COM1.
pub struct SerialInput {
    /// COM1.
    pub serial: Arc<Mutex<SerialDevice>>,
    /// Signalled by COM1 when the guest empties its receive FIFO.
    pub rx_drained: EventFd,
}

struct Loop<'a> {
    epoll: Epoll,
    control: &'a VmControl,
    input: Option<SerialInput>,
    stdin_registered: bool,
    stdin_closed: bool,
}

impl Loop<'_> {
    fn add(&self, fd: i32, token: u64) -> std::io::Result<()> {
        self.epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, token),
        )
    }

    fn set_stdin(&mut self, registered: bool) -> std::io::Result<()> {
        if registered == self.stdin_registered || (registered && self.stdin_closed) {
            return Ok(());
        }
        let op = if registered {
            ControlOperation::Add
        } else {
            ControlOperation::Delete
        };
        self.epoll.ctl(
            op,
            libc::STDIN_FILENO,
            EpollEvent::new(EventSet::IN, TOKEN_STDIN),
        )?;
        self.stdin_registered = registered;
        Ok(())
    }

    fn on_stdin(&mut self) -> std::io::Result<()> {
        let Some(input) = &self.input else {
            return Ok(());
        };
        let mut buf = [0u8; 64];
        let pending = match read_stdin(&mut buf) {
            Ok(0) | Err(_) => {
                log::debug!("stdin closed; the guest gets no more input");
                self.stdin_closed = true;
                return self.set_stdin(false);
            }
            Ok(n) => {
                let mut serial = input.serial.lock().unwrap_or_else(PoisonError::into_inner);
                serial.queue_input(&buf[..n]);
                serial.has_pending_input()
            }
        };
        self.set_stdin(!pending)
    }

    fn on_rx_drained(&mut self) -> std::io::Result<()> {
        let Some(input) = &self.input else {
            return Ok(());
        };
        let _ = input.rx_drained.read();
        let pending = {
            let mut serial = input.serial.lock().unwrap_or_else(PoisonError::into_inner);
            serial.flush_pending_input();
            serial.has_pending_input()
        };
        self.set_stdin(!pending)
    }
}

/// Runs until the VM is ending; returns why.
pub fn run(
    control: &VmControl,
    signals: &SignalFd,
    input: Option<SerialInput>,
    graceful: Option<GracefulShutdown<'_>>,
) -> VmExitReason {
    match run_inner(control, signals, input, graceful) {
        Ok(()) => {}
        Err(e) => control.request_exit(VmExitReason::HostError(e.to_string())),
    }
    control
        .reason()
        .unwrap_or_else(|| VmExitReason::HostError("the VM stopped without a reason".into()))
}

fn run_inner(
    control: &VmControl,
    signals: &SignalFd,
    input: Option<SerialInput>,
    graceful: Option<GracefulShutdown<'_>>,
) -> std::io::Result<()> {
    let mut asked_guest = false;
    let mut lp = Loop {
        epoll: Epoll::new()?,
        control,
        input,
        stdin_registered: false,
        stdin_closed: false,
    };
    lp.add(control.exit_evt().as_raw_fd(), TOKEN_EXIT)?;
    lp.add(signals.as_raw_fd(), TOKEN_SIGNAL)?;
    if let Some(input) = &lp.input {
        lp.add(input.rx_drained.as_raw_fd(), TOKEN_RX_DRAINED)?;
        lp.set_stdin(true)?;
    }

    let mut events = vec![EpollEvent::default(); 8];
    while !lp.control.should_stop() {
        let n = match lp.epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for ev in &events[..n] {
            match ev.data() {
                TOKEN_EXIT => {
                    let _ = lp.control.exit_evt().read();
                }
                TOKEN_SIGNAL => {
                    if let Some(sig) = signals.read_signal()? {
                        let polite = matches!(sig, libc::SIGTERM | libc::SIGINT) && !asked_guest;
                        if polite && graceful.is_some_and(|ask| ask()) {
                            asked_guest = true;
                            log::info!(
                                "received signal {sig}; asked the guest to shut down (signal again \
                                 to stop the VM at once)"
                            );
                        } else {
                            log::info!("received signal {sig}; stopping the VM");
                            lp.control.request_exit(VmExitReason::Signal(sig));
                        }
                    }
                }
                TOKEN_STDIN => lp.on_stdin()?,
                TOKEN_RX_DRAINED => lp.on_rx_drained()?,
                _ => {}
            }
        }
    }
    Ok(())
}
