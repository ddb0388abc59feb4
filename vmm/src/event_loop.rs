// SPDX-License-Identifier: GPL-2.0

//! The main thread's epoll loop while the VM runs.
//!
//! It waits for: a VM exit request (eventfd from [`VmControl`]), a termination signal
//! (signalfd), host input for the UARTs (the terminal for COM1, a Unix socket for COM2),
//! and each UART's "receive FIFO drained". It
//! returns once the VM is ending; stopping and joining the vCPUs is the caller's job.
//!
//! The first SIGTERM or SIGINT asks the guest to shut down instead of stopping the VM, if
//! the caller gave a way to ask ([`GracefulShutdown`], VMBus's shutdown service) and it
//! could ask now; the guest then powers off. A second signal, or any other termination
//! signal, stops the VM at once.
//!
//! Back-pressure on input: when a UART's FIFO is full, its source is taken out of the
//! epoll set (so a level-triggered fd cannot spin the loop) and put back when the guest has
//! read the FIFO empty.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use crate::console::{read_stdin, SignalFd};
use crate::control::{VmControl, VmExitReason};
use crate::devices::serial::SerialDevice;

const TOKEN_EXIT: u64 = 0;
const TOKEN_SIGNAL: u64 = 1;
/// Input `i`'s source is token `TOKEN_INPUT + 2 * i`, its FIFO-drained
/// event the next.
const TOKEN_INPUT: u64 = 2;

/// Asks the guest to shut down; whether the request could be delivered.
pub type GracefulShutdown<'a> = &'a dyn Fn() -> bool;

/// Where a UART's input comes from.
pub enum InputSource {
    /// The host terminal (COM1 with `--serial stdio`).
    Stdin,
    /// A Unix stream (COM2 with `--serial2 unix:PATH`).
    Stream(UnixStream),
}

impl InputSource {
    fn fd(&self) -> RawFd {
        match self {
            Self::Stdin => libc::STDIN_FILENO,
            Self::Stream(s) => s.as_raw_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Stdin => read_stdin(buf),
            Self::Stream(s) => s.read(buf),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Stdin => "stdin",
            Self::Stream(_) => "the serial socket",
        }
    }
}

/// Host input routed to a UART.
pub struct SerialInput {
    /// The UART.
    pub serial: Arc<Mutex<SerialDevice>>,
    /// Signalled by the UART when the guest empties its receive FIFO.
    pub rx_drained: EventFd,
    /// Where the bytes come from.
    pub source: InputSource,
}

struct Input {
    input: SerialInput,
    registered: bool,
    closed: bool,
}

struct Loop<'a> {
    epoll: Epoll,
    control: &'a VmControl,
    inputs: Vec<Input>,
}

impl Loop<'_> {
    fn add(&self, fd: i32, token: u64) -> std::io::Result<()> {
        self.epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, token),
        )
    }

    /// Watches input `i`'s source, or stops (while its UART's FIFO is
    /// full, so a level-triggered source cannot spin the loop).
    fn set_source(&mut self, i: usize, registered: bool) -> std::io::Result<()> {
        let Some(input) = self.inputs.get_mut(i) else {
            return Ok(());
        };
        if registered == input.registered || (registered && input.closed) {
            return Ok(());
        }
        let op = if registered {
            ControlOperation::Add
        } else {
            ControlOperation::Delete
        };
        self.epoll.ctl(
            op,
            input.input.source.fd(),
            EpollEvent::new(EventSet::IN, TOKEN_INPUT + 2 * i as u64),
        )?;
        input.registered = registered;
        Ok(())
    }

    fn on_source(&mut self, i: usize) -> std::io::Result<()> {
        let Some(input) = self.inputs.get_mut(i) else {
            return Ok(());
        };
        let mut buf = [0u8; 64];
        let pending = match input.input.source.read(&mut buf) {
            Ok(0) | Err(_) => {
                log::debug!(
                    "{} closed; the guest gets no more input",
                    input.input.source.name()
                );
                input.closed = true;
                return self.set_source(i, false);
            }
            Ok(n) => {
                let mut serial = input
                    .input
                    .serial
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                serial.queue_input(&buf[..n]);
                serial.has_pending_input()
            }
        };
        self.set_source(i, !pending)
    }

    fn on_rx_drained(&mut self, i: usize) -> std::io::Result<()> {
        let Some(input) = self.inputs.get(i) else {
            return Ok(());
        };
        let _ = input.input.rx_drained.read();
        let pending = {
            let mut serial = input
                .input
                .serial
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            serial.flush_pending_input();
            serial.has_pending_input()
        };
        self.set_source(i, !pending)
    }
}

/// Runs until the VM is ending; returns why.
pub fn run(
    control: &VmControl,
    signals: &SignalFd,
    inputs: Vec<SerialInput>,
    graceful: Option<GracefulShutdown<'_>>,
) -> VmExitReason {
    match run_inner(control, signals, inputs, graceful) {
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
    inputs: Vec<SerialInput>,
    graceful: Option<GracefulShutdown<'_>>,
) -> std::io::Result<()> {
    let mut asked_guest = false;
    let mut lp = Loop {
        epoll: Epoll::new()?,
        control,
        inputs: inputs
            .into_iter()
            .map(|input| Input {
                input,
                registered: false,
                closed: false,
            })
            .collect(),
    };
    lp.add(control.exit_evt().as_raw_fd(), TOKEN_EXIT)?;
    lp.add(signals.as_raw_fd(), TOKEN_SIGNAL)?;
    for i in 0..lp.inputs.len() {
        let fd = lp.inputs[i].input.rx_drained.as_raw_fd();
        lp.add(fd, TOKEN_INPUT + 2 * i as u64 + 1)?;
        lp.set_source(i, true)?;
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
                t if t >= TOKEN_INPUT => {
                    let i = ((t - TOKEN_INPUT) / 2) as usize;
                    if (t - TOKEN_INPUT).is_multiple_of(2) {
                        lp.on_source(i)?;
                    } else {
                        lp.on_rx_drained(i)?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}
