// SPDX-License-Identifier: GPL-2.0

//! COM1: a 16550A UART (vm-superio's `Serial`) on ports 0x3f8..0x3ff, IRQ 4; COM2, the
//! same on 0x2f8..0x2ff, IRQ 3 (`--serial2`).
//!
//! The interrupt line is an `EventFd` that the builder registers with KVM_IRQFD on GSI 4,
//! so raising it never takes a lock in KVM's path. Input from the host terminal is queued
//! in the 64-byte receive FIFO; bytes that do not fit wait in `pending` until the guest
//! drains the FIFO, which vm-superio reports through [`SerialEvents::in_buffer_empty`] and
//! this module forwards to the event loop as the `rx_drained` eventfd.
//!
//! This device never looks at what the guest prints: the VM ends through the ACPI and
//! reset devices only, as it would on a real machine.

use std::collections::VecDeque;
use std::io::{self, Write};

use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::PioDevice;

/// First port of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// Number of COM1 ports.
pub const COM1_LEN: u16 = 8;
/// ISA IRQ (and GSI, with identity routing) of COM1.
pub const COM1_GSI: u32 = 4;
/// First port of COM2 (8 ports, as COM1).
pub const COM2_BASE: u16 = 0x2f8;
/// ISA IRQ (and GSI) of COM2.
pub const COM2_GSI: u32 = 3;

/// Line status register offset (for tests and documentation).
pub const LSR_OFFSET: u16 = 5;
/// LSR: transmitter holding register empty.
pub const LSR_THRE: u8 = 0x20;

/// An interrupt line backed by an eventfd that KVM watches (KVM_IRQFD).
pub struct IrqLine(EventFd);

impl IrqLine {
    /// Wraps `evt`; the caller registers a clone of it with KVM.
    pub fn new(evt: EventFd) -> Self {
        Self(evt)
    }
}

impl Trigger for IrqLine {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Tells the event loop that the guest emptied the receive FIFO.
pub struct RxDrained(EventFd);

impl RxDrained {
    /// Wraps `evt`; the event loop polls a clone of it.
    pub fn new(evt: EventFd) -> Self {
        Self(evt)
    }
}

impl SerialEvents for RxDrained {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        if let Err(e) = self.0.write(1) {
            log::warn!("cannot signal that the serial receive FIFO is empty: {e}");
        }
    }
}

/// Where the guest's serial output goes.
pub type SerialOutput = Box<dyn Write + Send>;

/// COM1 as seen by the port I/O bus.
pub struct SerialDevice {
    uart: Serial<IrqLine, RxDrained, SerialOutput>,
    /// Host input that did not fit in the UART's receive FIFO yet.
    pending: VecDeque<u8>,
    /// Set once an output error was reported, so that a closed stdout does not flood the log.
    output_error_reported: bool,
}

impl SerialDevice {
    /// A UART that raises `irq`, signals `rx_drained` and writes to `out`.
    pub fn new(irq: IrqLine, rx_drained: RxDrained, out: SerialOutput) -> Self {
        Self {
            uart: Serial::with_events(irq, rx_drained, out),
            pending: VecDeque::new(),
            output_error_reported: false,
        }
    }

    /// Queues host input for the guest: as much as fits goes into the FIFO now (raising the
    /// receive interrupt if enabled), the rest waits for [`Self::flush_pending_input`].
    pub fn queue_input(&mut self, bytes: &[u8]) {
        self.pending.extend(bytes);
        self.flush_pending_input();
    }

    /// Moves waiting input into the receive FIFO as space allows.
    pub fn flush_pending_input(&mut self) {
        while !self.pending.is_empty() && self.uart.fifo_capacity() > 0 {
            let (chunk, _) = self.pending.as_slices();
            let n = chunk.len().min(self.uart.fifo_capacity());
            match self.uart.enqueue_raw_bytes(&chunk[..n]) {
                Ok(0) => break, // loopback mode: the line is not connected to the host.
                Ok(written) => {
                    self.pending.drain(..written);
                }
                Err(e) => {
                    log::warn!("cannot pass input to the serial port: {e}");
                    break;
                }
            }
        }
    }

    /// Whether host input is still waiting for FIFO space.
    pub fn has_pending_input(&self) -> bool {
        !self.pending.is_empty()
    }
}

impl PioDevice for SerialDevice {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        // The UART's registers are 8 bits wide; a wider access reads the addressed register
        // and floating lines above it.
        data.fill(0xff);
        if let (Some(first), Ok(reg)) = (data.first_mut(), u8::try_from(offset)) {
            *first = self.uart.read(reg);
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        let (Some(&value), Ok(reg)) = (data.first(), u8::try_from(offset)) else {
            return;
        };
        match self.uart.write(reg, value) {
            Ok(()) => {}
            Err(vm_superio::serial::Error::IOError(e)) => {
                if !self.output_error_reported {
                    self.output_error_reported = true;
                    log::warn!("serial output is lost: {e}");
                }
            }
            Err(e) => log::warn!("serial port error: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A `Write` sink tests can inspect.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn device() -> (SerialDevice, Sink, EventFd, EventFd) {
        let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let drained = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let sink = Sink::default();
        let dev = SerialDevice::new(
            IrqLine::new(irq.try_clone().expect("clone")),
            RxDrained::new(drained.try_clone().expect("clone")),
            Box::new(sink.clone()),
        );
        (dev, sink, irq, drained)
    }

    fn read(dev: &mut SerialDevice, offset: u16) -> u8 {
        let mut b = [0u8; 1];
        dev.read(offset, &mut b);
        b[0]
    }

    #[test]
    fn thr_write_reaches_output_and_lsr_reports_thre() {
        let (mut dev, sink, _irq, _drained) = device();
        assert_ne!(read(&mut dev, LSR_OFFSET) & LSR_THRE, 0);
        for b in b"hi\n" {
            dev.write(0, &[*b]);
        }
        assert_eq!(sink.0.lock().expect("lock").as_slice(), b"hi\n");
        assert_ne!(read(&mut dev, LSR_OFFSET) & LSR_THRE, 0);
    }

    #[test]
    fn thre_interrupt_fires_when_enabled() {
        let (mut dev, _sink, irq, _drained) = device();
        dev.write(1, &[0x02]); // IER: THR empty interrupt.
        assert_eq!(irq.read().expect("irq raised"), 1);
        // IIR says "THR empty" (0x2) with FIFO bits.
        assert_eq!(read(&mut dev, 2), 0xc2);
        dev.write(0, b"x");
        assert_eq!(irq.read().expect("irq raised again"), 1);
    }

    #[test]
    fn input_waits_for_fifo_space_and_drain_is_signalled() {
        let (mut dev, _sink, _irq, drained) = device();
        let input: Vec<u8> = (0..100u8).collect();
        dev.queue_input(&input);
        assert!(dev.has_pending_input());
        assert_eq!(read(&mut dev, LSR_OFFSET) & 1, 1, "data ready");
        for expected in 0..64u8 {
            assert_eq!(read(&mut dev, 0), expected);
        }
        assert_eq!(drained.read().expect("drained signalled"), 1);
        dev.flush_pending_input();
        assert!(!dev.has_pending_input());
        for expected in 64..100u8 {
            assert_eq!(read(&mut dev, 0), expected);
        }
        assert_eq!(read(&mut dev, LSR_OFFSET) & 1, 0, "no data");
    }

    #[test]
    fn scratch_register_round_trips_and_wide_reads_float() {
        let (mut dev, _sink, _irq, _drained) = device();
        dev.write(7, &[0x5a]);
        assert_eq!(read(&mut dev, 7), 0x5a);
        let mut w = [0u8; 2];
        dev.read(7, &mut w);
        assert_eq!(w, [0x5a, 0xff]);
    }
}
