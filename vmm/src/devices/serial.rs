// SPDX-License-Identifier: GPL-2.0

//! COM1: a 16550A UART ([`super::uart::Uart`]) on ports 0x3f8..0x3ff, IRQ 4; COM2, the
//! same on 0x2f8..0x2ff, IRQ 3 (`--serial2`).
//!
//! The interrupt line is an `EventFd` that the builder registers with KVM_IRQFD on the
//! port's GSI, so raising it never takes a lock in KVM's path. Input from the host is
//! queued in the receive FIFO; bytes that do not fit wait in `pending` until the guest
//! empties the FIFO, which this module tells the event loop through the `rx_drained`
//! eventfd.
//!
//! This device never looks at what the guest prints: the VM ends through the ACPI and
//! reset devices only, as it would on a real machine.

use std::collections::VecDeque;
use std::io::{self, Write};

use vmm_sys_util::eventfd::EventFd;

use super::uart::{Uart, UartWiring};
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
pub const LSR_THRE: u8 = super::uart::LSR_THRE;

/// Where the guest's serial output goes.
pub type SerialOutput = Box<dyn Write + Send>;

/// What a UART drives here: KVM's interrupt eventfd, the host's output,
/// and the event loop's eventfd for "the FIFO has room".
struct Wiring {
    irq: EventFd,
    rx_drained: EventFd,
    out: SerialOutput,
    /// Interrupt edges raised.
    irqs: u64,
    /// Bytes the guest transmitted.
    tx_bytes: u64,
}

impl UartWiring for Wiring {
    fn raise_irq(&mut self) {
        self.irqs += 1;
        if let Err(e) = self.irq.write(1) {
            log::warn!("cannot raise the serial interrupt: {e}");
        }
    }

    fn transmit(&mut self, byte: u8) -> io::Result<()> {
        self.tx_bytes += 1;
        self.out.write_all(&[byte])?;
        self.out.flush()
    }

    fn receiver_empty(&mut self) {
        if let Err(e) = self.rx_drained.write(1) {
            log::warn!("cannot signal that the serial receive FIFO is empty: {e}");
        }
    }
}

/// A UART as seen by the port I/O bus, with its host input.
pub struct SerialDevice {
    uart: Uart,
    wiring: Wiring,
    /// Host input that did not fit in the UART's receive FIFO yet.
    pending: VecDeque<u8>,
    /// Host input bytes put in the receive FIFO.
    rx_queued: u64,
    /// Set once an output error was reported, so that a closed stdout does not flood the log.
    output_error_reported: bool,
}

impl SerialDevice {
    /// A UART that raises `irq` (an eventfd KVM watches), signals
    /// `rx_drained` when its receiver empties, and writes to `out`.
    pub fn new(irq: EventFd, rx_drained: EventFd, out: SerialOutput) -> Self {
        Self {
            uart: Uart::new(),
            wiring: Wiring {
                irq,
                rx_drained,
                out,
                irqs: 0,
                tx_bytes: 0,
            },
            pending: VecDeque::new(),
            rx_queued: 0,
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
        while !self.pending.is_empty() && self.uart.rx_room() > 0 {
            let (chunk, _) = self.pending.as_slices();
            let taken = self.uart.receive(chunk, &mut self.wiring);
            if taken == 0 {
                break; // loopback: the line is not connected to the host.
            }
            self.pending.drain(..taken);
            self.rx_queued += taken as u64;
        }
    }

    /// Whether host input is still waiting for FIFO space.
    pub fn has_pending_input(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The UART's registers and counters as one `serial port=NAME ...`
    /// record (`hvctl serial`, the exit report): what a test reads when a
    /// stream stalls, to tell a byte hvhost never queued (`rx_pending`) from
    /// one the guest never read (`rx_fifo`, with `iir` and `ier` saying
    /// whether its interrupt is raised and enabled). The guest has read
    /// `rx_queued - rx_fifo` bytes (outside loopback mode). Reading it
    /// changes nothing.
    pub fn record(&self, port: &str) -> String {
        let [ier, iir, lcr, mcr, lsr, msr] = self.uart.registers();
        format!(
            "serial port={port} ier={ier:#04x} iir={iir:#04x} lcr={lcr:#04x} mcr={mcr:#04x} \
             lsr={lsr:#04x} msr={msr:#04x} rx_fifo={} rx_pending={} rx_queued={} tx_bytes={} \
             irqs={}",
            self.uart.rx_len(),
            self.pending.len(),
            self.rx_queued,
            self.wiring.tx_bytes,
            self.wiring.irqs,
        )
    }
}

impl PioDevice for SerialDevice {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        // The UART's registers are 8 bits wide; a wider access reads the addressed register
        // and floating lines above it.
        data.fill(0xff);
        if let (Some(first), Ok(reg)) = (data.first_mut(), u8::try_from(offset)) {
            *first = self.uart.read(reg, &mut self.wiring);
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        let (Some(&value), Ok(reg)) = (data.first(), u8::try_from(offset)) else {
            return;
        };
        if let Err(e) = self.uart.write(reg, value, &mut self.wiring) {
            if !self.output_error_reported {
                self.output_error_reported = true;
                log::warn!("serial output is lost: {e}");
            }
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
            irq.try_clone().expect("clone"),
            drained.try_clone().expect("clone"),
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
        // IIR says "THR empty" (0x2), without the FIFO bits until FCR enables it.
        assert_eq!(read(&mut dev, 2), 0x02);
        dev.write(0, b"x");
        assert_eq!(irq.read().expect("irq raised again"), 1);
    }

    #[test]
    fn input_waits_for_fifo_space_and_drain_is_signalled() {
        let (mut dev, _sink, _irq, drained) = device();
        dev.write(2, &[0x01]); // FCR: FIFO on.
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

    /// The record's `key=value` fields, as a test reads them.
    fn field(record: &str, key: &str) -> String {
        record
            .split_ascii_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {record}"))
            .to_string()
    }

    #[test]
    fn record_counts_what_moved_and_shows_the_interrupt_state() {
        let (mut dev, _sink, irq, _drained) = device();
        dev.write(2, &[0x01]); // FCR: FIFO on.
        dev.write(1, &[0x01]); // IER: received data available.
        dev.queue_input(&[7u8; 70]);
        let r = dev.record("com2");
        assert!(r.starts_with("serial port=com2 "), "{r}");
        assert_eq!(field(&r, "ier"), "0x01");
        assert_eq!(field(&r, "iir"), "0xc4", "received data reported");
        assert_eq!(field(&r, "rx_fifo"), "64");
        assert_eq!(field(&r, "rx_pending"), "6");
        assert_eq!(field(&r, "rx_queued"), "64");
        assert_eq!(field(&r, "irqs"), "1");
        assert_eq!(irq.read().expect("irq raised"), 1);
        for _ in 0..10 {
            read(&mut dev, 0);
        }
        // The divisor latch is not the transmit register.
        dev.write(3, &[0x83]);
        dev.write(0, &[1]);
        dev.write(3, &[0x03]);
        dev.write(0, b"x");
        let r = dev.record("com2");
        assert_eq!(field(&r, "rx_fifo"), "54");
        assert_eq!(field(&r, "tx_bytes"), "1");
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
