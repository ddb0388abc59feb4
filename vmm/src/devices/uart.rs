// SPDX-License-Identifier: GPL-2.0

//! The register model of a 16550A UART, as a guest driver sees it.
//!
//! What the model keeps from the chip:
//! - **The interrupt output is a level**, the highest-priority condition
//!   that is both pending and enabled in IER: line status (an overrun),
//!   received data, transmitter empty, modem status. IIR reports it. The
//!   model raises an edge (an ISA interrupt through KVM_IRQFD) each time
//!   the output goes from low to high, as the chip's line does.
//! - **Received data stays reported while the FIFO holds data.** Reading
//!   IIR does not clear it, and reading RBR clears it only when the FIFO
//!   is empty. A driver that stops reading with bytes left (Linux's 8250
//!   takes at most 256 a pass) finds them on its next look at IIR.
//!   vm-superio 0.8, which hvhost used before, cleared the condition on
//!   every IIR and RBR read: a guest that stopped early was left with
//!   bytes in the FIFO and no interrupt, and the stream stalled for good
//!   (`uart_stream_hvhost` found it).
//! - **Transmitter empty is an event:** it is set when the guest writes
//!   THR (the byte leaves at once) or enables the interrupt with THR
//!   empty, and cleared by reading IIR while it is the reported
//!   condition, by writing THR, or by disabling it.
//! - FCR enables the FIFO (IIR's top bits then read 11, which is how a
//!   driver tells a 16550A) and clears it. Without the FIFO the receiver
//!   holds one byte. Changing the enable bit clears the FIFO.
//! - Loopback (MCR bit 4): what the guest transmits is received, and the
//!   modem inputs follow the modem outputs.
//!
//! What it leaves out: receive trigger levels and the character timeout
//! (received data is reported from the first byte), baud timing (a byte
//! leaves as soon as it is written), and line errors other than a
//! loopback overrun.

use std::collections::VecDeque;
use std::io;

/// Register offsets.
mod reg {
    /// Receive buffer (read) and transmit holding register (write); the
    /// divisor's low byte with DLAB.
    pub const DATA: u8 = 0;
    /// Interrupt enable; the divisor's high byte with DLAB.
    pub const IER: u8 = 1;
    /// Interrupt identification (read), FIFO control (write).
    pub const IIR_FCR: u8 = 2;
    /// Line control.
    pub const LCR: u8 = 3;
    /// Modem control.
    pub const MCR: u8 = 4;
    /// Line status.
    pub const LSR: u8 = 5;
    /// Modem status.
    pub const MSR: u8 = 6;
    /// Scratch.
    pub const SCR: u8 = 7;
}

/// IER: received data available.
pub const IER_RDI: u8 = 0x01;
/// IER: transmitter holding register empty.
pub const IER_THRI: u8 = 0x02;
/// IER: receiver line status.
pub const IER_RLSI: u8 = 0x04;
/// IER: modem status.
pub const IER_MSI: u8 = 0x08;
const IER_VALID: u8 = 0x0f;

/// IIR: no interrupt pending.
pub const IIR_NO_INT: u8 = 0x01;
/// IIR: modem status.
pub const IIR_MSI: u8 = 0x00;
/// IIR: transmitter holding register empty.
pub const IIR_THRI: u8 = 0x02;
/// IIR: received data available.
pub const IIR_RDI: u8 = 0x04;
/// IIR: receiver line status.
pub const IIR_RLSI: u8 = 0x06;
/// IIR: the FIFOs are enabled (16550A).
pub const IIR_FIFOS: u8 = 0xc0;

const FCR_ENABLE: u8 = 0x01;
const FCR_CLEAR_RX: u8 = 0x02;

const LCR_DLAB: u8 = 0x80;

const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;
const MCR_VALID: u8 = 0x1f;

/// LSR: data ready.
pub const LSR_DR: u8 = 0x01;
/// LSR: overrun error.
pub const LSR_OE: u8 = 0x02;
/// LSR: transmitter holding register empty.
pub const LSR_THRE: u8 = 0x20;
/// LSR: transmitter empty.
pub const LSR_TEMT: u8 = 0x40;

const MSR_DCTS: u8 = 0x01;
const MSR_DDSR: u8 = 0x02;
const MSR_TERI: u8 = 0x04;
const MSR_DDCD: u8 = 0x08;
const MSR_DELTAS: u8 = 0x0f;
const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RI: u8 = 0x40;
const MSR_DCD: u8 = 0x80;
/// The modem inputs outside loopback: a peer that is there and ready.
const MSR_CONNECTED: u8 = MSR_DCD | MSR_DSR | MSR_CTS;

/// The receive FIFO's size.
pub const FIFO_SIZE: usize = 64;

/// What the UART drives: its interrupt line, its transmit line, and the
/// host side's input (told when the receiver has room again).
pub trait UartWiring {
    /// The interrupt output went from low to high.
    fn raise_irq(&mut self);
    /// The guest transmitted `byte` (outside loopback).
    fn transmit(&mut self, byte: u8) -> io::Result<()>;
    /// The receiver went from holding data to empty: the host side may
    /// queue more.
    fn receiver_empty(&mut self);
}

/// A 16550A's registers and receive FIFO.
#[derive(Debug)]
pub struct Uart {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    fifo_enabled: bool,
    rx: VecDeque<u8>,
    /// The transmitter-empty condition, until IIR reports it or THR is
    /// written.
    thr_pending: bool,
    /// LSR's error bits, until LSR is read.
    lsr_errors: u8,
    /// MSR's change bits, until MSR is read.
    msr_deltas: u8,
    /// The level of the interrupt output as last computed.
    irq_high: bool,
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart {
    /// A UART as after reset: 115200 baud 8N1 divisor, nothing enabled.
    pub fn new() -> Self {
        Self {
            ier: 0,
            lcr: 0x03,
            mcr: MCR_OUT2,
            scr: 0,
            dll: 1,
            dlm: 0,
            fifo_enabled: false,
            rx: VecDeque::with_capacity(FIFO_SIZE),
            thr_pending: false,
            lsr_errors: 0,
            msr_deltas: 0,
            irq_high: false,
        }
    }

    fn dlab(&self) -> bool {
        self.lcr & LCR_DLAB != 0
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    /// Room in the receiver: the FIFO's, or one byte without it.
    pub fn rx_room(&self) -> usize {
        let size = if self.fifo_enabled { FIFO_SIZE } else { 1 };
        size.saturating_sub(self.rx.len())
    }

    /// Bytes waiting in the receiver.
    pub fn rx_len(&self) -> usize {
        self.rx.len()
    }

    /// The modem inputs: wired to the outputs in loopback.
    fn modem_inputs(&self) -> u8 {
        if !self.loopback() {
            return MSR_CONNECTED;
        }
        let mut m = 0;
        for (out, inp) in [
            (MCR_RTS, MSR_CTS),
            (MCR_DTR, MSR_DSR),
            (MCR_OUT1, MSR_RI),
            (MCR_OUT2, MSR_DCD),
        ] {
            if self.mcr & out != 0 {
                m |= inp;
            }
        }
        m
    }

    /// The condition IIR reports (its low four bits).
    fn pending(&self) -> u8 {
        if self.ier & IER_RLSI != 0 && self.lsr_errors != 0 {
            IIR_RLSI
        } else if self.ier & IER_RDI != 0 && !self.rx.is_empty() {
            IIR_RDI
        } else if self.ier & IER_THRI != 0 && self.thr_pending {
            IIR_THRI
        } else if self.ier & IER_MSI != 0 && self.msr_deltas != 0 {
            IIR_MSI
        } else {
            IIR_NO_INT
        }
    }

    /// Recomputes the interrupt output; an edge on low to high.
    fn update_irq(&mut self, wiring: &mut impl UartWiring) {
        let high = self.pending() != IIR_NO_INT;
        if high && !self.irq_high {
            wiring.raise_irq();
        }
        self.irq_high = high;
    }

    /// Empties the receiver; tells the host side if it held data.
    fn clear_rx(&mut self, wiring: &mut impl UartWiring) {
        if !self.rx.is_empty() {
            self.rx.clear();
            wiring.receiver_empty();
        }
    }

    /// Host input: takes as much of `bytes` as the receiver has room for
    /// and returns how much. Nothing in loopback, where the line is not
    /// connected.
    pub fn receive(&mut self, bytes: &[u8], wiring: &mut impl UartWiring) -> usize {
        if self.loopback() {
            return 0;
        }
        let n = bytes.len().min(self.rx_room());
        self.rx.extend(&bytes[..n]);
        self.update_irq(wiring);
        n
    }

    /// The guest reads register `offset` (0..7).
    pub fn read(&mut self, offset: u8, wiring: &mut impl UartWiring) -> u8 {
        let value = match offset {
            reg::DATA if self.dlab() => self.dll,
            reg::DATA => match self.rx.pop_front() {
                Some(b) => {
                    if self.rx.is_empty() {
                        wiring.receiver_empty();
                    }
                    b
                }
                None => 0,
            },
            reg::IER if self.dlab() => self.dlm,
            reg::IER => self.ier,
            reg::IIR_FCR => {
                let id = self.pending();
                if id == IIR_THRI {
                    self.thr_pending = false;
                }
                id | if self.fifo_enabled { IIR_FIFOS } else { 0 }
            }
            reg::LCR => self.lcr,
            reg::MCR => self.mcr,
            reg::LSR => {
                let mut lsr = LSR_THRE | LSR_TEMT | self.lsr_errors;
                if !self.rx.is_empty() {
                    lsr |= LSR_DR;
                }
                self.lsr_errors = 0;
                lsr
            }
            reg::MSR => {
                let msr = self.modem_inputs() | (self.msr_deltas & MSR_DELTAS);
                self.msr_deltas = 0;
                msr
            }
            reg::SCR => self.scr,
            _ => 0xff,
        };
        self.update_irq(wiring);
        value
    }

    /// The guest writes `value` to register `offset` (0..7). An error is
    /// the transmit line's (the byte is lost; the UART goes on).
    pub fn write(&mut self, offset: u8, value: u8, wiring: &mut impl UartWiring) -> io::Result<()> {
        let mut result = Ok(());
        match offset {
            reg::DATA if self.dlab() => self.dll = value,
            reg::DATA => {
                if self.loopback() {
                    if self.rx_room() > 0 {
                        self.rx.push_back(value);
                    } else {
                        self.lsr_errors |= LSR_OE;
                    }
                } else {
                    result = wiring.transmit(value);
                }
                // The byte leaves at once: THR is empty again.
                self.thr_pending = true;
            }
            reg::IER if self.dlab() => self.dlm = value,
            reg::IER => {
                let enabled = value & !self.ier & IER_THRI != 0;
                self.ier = value & IER_VALID;
                if self.ier & IER_THRI == 0 {
                    self.thr_pending = false;
                } else if enabled {
                    self.thr_pending = true;
                }
            }
            reg::IIR_FCR => {
                let enable = value & FCR_ENABLE != 0;
                if enable != self.fifo_enabled || value & FCR_CLEAR_RX != 0 {
                    self.clear_rx(wiring);
                }
                self.fifo_enabled = enable;
            }
            reg::LCR => self.lcr = value,
            reg::MCR => {
                let before = self.modem_inputs();
                let was_loopback = self.loopback();
                self.mcr = value & MCR_VALID;
                let after = self.modem_inputs();
                let changed = before ^ after;
                for (input, delta) in [
                    (MSR_CTS, MSR_DCTS),
                    (MSR_DSR, MSR_DDSR),
                    (MSR_DCD, MSR_DDCD),
                ] {
                    if changed & input != 0 {
                        self.msr_deltas |= delta;
                    }
                }
                // RI reports its trailing edge only.
                if before & MSR_RI != 0 && after & MSR_RI == 0 {
                    self.msr_deltas |= MSR_TERI;
                }
                // Into or out of loopback, the receiver changes lines.
                if was_loopback != self.loopback() {
                    self.clear_rx(wiring);
                }
            }
            reg::SCR => self.scr = value,
            // LSR and MSR are read-only.
            _ => {}
        }
        self.update_irq(wiring);
        result
    }

    /// The registers as (IER, IIR without side effects, LCR, MCR, LSR
    /// without side effects, MSR without side effects).
    pub fn registers(&self) -> [u8; 6] {
        let fifos = if self.fifo_enabled { IIR_FIFOS } else { 0 };
        let dr = if self.rx.is_empty() { 0 } else { LSR_DR };
        [
            self.ier,
            self.pending() | fifos,
            self.lcr,
            self.mcr,
            LSR_THRE | LSR_TEMT | self.lsr_errors | dr,
            self.modem_inputs() | self.msr_deltas,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the UART did to its wiring.
    #[derive(Default)]
    struct Wires {
        edges: usize,
        sent: Vec<u8>,
        emptied: usize,
    }

    impl UartWiring for Wires {
        fn raise_irq(&mut self) {
            self.edges += 1;
        }
        fn transmit(&mut self, byte: u8) -> io::Result<()> {
            self.sent.push(byte);
            Ok(())
        }
        fn receiver_empty(&mut self) {
            self.emptied += 1;
        }
    }

    /// A UART set up as Linux's 8250 driver leaves an open port: FIFO on,
    /// received-data and line-status interrupts enabled, OUT2 raised.
    fn open_port() -> (Uart, Wires) {
        let mut u = Uart::new();
        let mut w = Wires::default();
        u.write(reg::IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX, &mut w)
            .expect("write");
        u.write(reg::MCR, MCR_DTR | MCR_RTS | MCR_OUT2, &mut w)
            .expect("write");
        u.write(reg::IER, IER_RDI | IER_RLSI, &mut w)
            .expect("write");
        (u, w)
    }

    fn iir(u: &mut Uart, w: &mut Wires) -> u8 {
        u.read(reg::IIR_FCR, w)
    }

    #[test]
    fn received_data_stays_reported_until_the_fifo_is_empty() {
        let (mut u, mut w) = open_port();
        assert_eq!(u.receive(&[1, 2, 3], &mut w), 3);
        assert_eq!(w.edges, 1);
        // Reading IIR reports the condition and does not clear it.
        assert_eq!(iir(&mut u, &mut w), IIR_FIFOS | IIR_RDI);
        assert_eq!(iir(&mut u, &mut w), IIR_FIFOS | IIR_RDI);
        // A driver that stops after one byte finds the rest on its next look.
        assert_eq!(u.read(reg::DATA, &mut w), 1);
        assert_eq!(iir(&mut u, &mut w), IIR_FIFOS | IIR_RDI);
        assert_ne!(u.read(reg::LSR, &mut w) & LSR_DR, 0);
        assert_eq!(u.read(reg::DATA, &mut w), 2);
        assert_eq!(u.read(reg::DATA, &mut w), 3);
        assert_eq!(w.emptied, 1);
        assert_eq!(iir(&mut u, &mut w), IIR_FIFOS | IIR_NO_INT);
        assert_eq!(u.read(reg::LSR, &mut w) & LSR_DR, 0);
        // The line stayed high until then: one edge, the first.
        assert_eq!(w.edges, 1);
    }

    /// The stall vm-superio had: Linux's 8250 reads at most 256 bytes a
    /// pass while hvhost refills the FIFO, then looks at IIR again.
    #[test]
    fn a_driver_that_stops_reading_early_is_interrupted_again() {
        let (mut u, mut w) = open_port();
        let mut queued = 0usize;
        let mut read = 0usize;
        let total = 4096;
        while read < total {
            // hvhost refills whenever there is room.
            let chunk: Vec<u8> = (queued..total).map(|i| i as u8).take(u.rx_room()).collect();
            queued += u.receive(&chunk, &mut w);
            // The interrupt handler: IIR, then up to 256 bytes while DR.
            if iir(&mut u, &mut w) & IIR_NO_INT != 0 {
                panic!("bytes {read}..{total} are stranded: no interrupt pending");
            }
            let mut n = 0;
            while n < 256 && u.read(reg::LSR, &mut w) & LSR_DR != 0 {
                assert_eq!(u.read(reg::DATA, &mut w), read as u8);
                read += 1;
                n += 1;
                if n % 48 == 0 {
                    let chunk: Vec<u8> =
                        (queued..total).map(|i| i as u8).take(u.rx_room()).collect();
                    queued += u.receive(&chunk, &mut w);
                }
            }
        }
        assert_eq!(queued, total);
    }

    #[test]
    fn an_edge_for_each_rise_of_the_line() {
        let (mut u, mut w) = open_port();
        u.receive(&[1], &mut w);
        u.receive(&[2], &mut w);
        assert_eq!(w.edges, 1, "the line was already high");
        u.read(reg::DATA, &mut w);
        u.read(reg::DATA, &mut w);
        u.receive(&[3], &mut w);
        assert_eq!(w.edges, 2, "low, then high again");
        // Masking the interrupt lowers the line; enabling it again with data
        // waiting raises it (Linux's console write masks IER meanwhile).
        u.write(reg::IER, 0, &mut w).expect("write");
        assert_eq!(iir(&mut u, &mut w) & 0x0f, IIR_NO_INT);
        u.write(reg::IER, IER_RDI, &mut w).expect("write");
        assert_eq!(w.edges, 3);
        assert_eq!(iir(&mut u, &mut w) & 0x0f, IIR_RDI);
    }

    #[test]
    fn transmitter_empty_is_an_event_cleared_by_reading_iir() {
        let (mut u, mut w) = open_port();
        let edges = w.edges;
        u.write(reg::IER, IER_RDI | IER_THRI, &mut w)
            .expect("write");
        assert_eq!(w.edges, edges + 1);
        assert_eq!(iir(&mut u, &mut w), IIR_FIFOS | IIR_THRI);
        assert_eq!(
            iir(&mut u, &mut w),
            IIR_FIFOS | IIR_NO_INT,
            "cleared by the read"
        );
        u.write(reg::DATA, b'x', &mut w).expect("write");
        assert_eq!(w.sent, b"x");
        assert_eq!(w.edges, edges + 2);
        // Received data outranks it, and reading IIR then keeps it.
        u.receive(&[9], &mut w);
        assert_eq!(iir(&mut u, &mut w), IIR_FIFOS | IIR_RDI);
        u.read(reg::DATA, &mut w);
        assert_eq!(iir(&mut u, &mut w), IIR_FIFOS | IIR_THRI);
        assert_eq!(iir(&mut u, &mut w), IIR_FIFOS | IIR_NO_INT);
        // Linux's THRE test: enabling it again reasserts it.
        u.write(reg::IER, 0, &mut w).expect("write");
        u.write(reg::IER, IER_THRI, &mut w).expect("write");
        assert_eq!(iir(&mut u, &mut w) & 0x0f, IIR_THRI);
    }

    #[test]
    fn fifo_control_sets_the_receiver_size_and_clears_it() {
        let mut u = Uart::new();
        let mut w = Wires::default();
        // Without the FIFO: one byte, and IIR's top bits clear (a 16450).
        assert_eq!(u.rx_room(), 1);
        assert_eq!(iir(&mut u, &mut w) & IIR_FIFOS, 0);
        assert_eq!(u.receive(&[1, 2], &mut w), 1);
        u.write(reg::IIR_FCR, FCR_ENABLE, &mut w).expect("write");
        assert_eq!(u.rx_len(), 0, "changing the enable bit clears the FIFO");
        assert_eq!(w.emptied, 1);
        assert_eq!(iir(&mut u, &mut w) & IIR_FIFOS, IIR_FIFOS);
        assert_eq!(u.receive(&[0; 100], &mut w), FIFO_SIZE);
        u.write(reg::IIR_FCR, FCR_ENABLE, &mut w).expect("write");
        assert_eq!(u.rx_len(), FIFO_SIZE, "no clear bit: kept");
        u.write(reg::IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX, &mut w)
            .expect("write");
        assert_eq!(u.rx_len(), 0);
        assert_eq!(w.emptied, 2);
    }

    /// What Linux's 8250 probe checks before it takes the port.
    #[test]
    fn linux_probe_sees_a_16550a() {
        let mut u = Uart::new();
        let mut w = Wires::default();
        // IER keeps the four valid bits only.
        u.write(reg::IER, 0, &mut w).expect("write");
        assert_eq!(u.read(reg::IER, &mut w) & 0x0f, 0);
        u.write(reg::IER, 0xff, &mut w).expect("write");
        assert_eq!(u.read(reg::IER, &mut w), 0x0f);
        u.write(reg::IER, 0, &mut w).expect("write");
        // Loopback with RTS and OUT2 reads CTS and DCD.
        u.write(reg::MCR, MCR_LOOP | 0x0a, &mut w).expect("write");
        assert_eq!(u.read(reg::MSR, &mut w) & 0xf0, 0x90);
        u.write(reg::MCR, MCR_OUT2, &mut w).expect("write");
        // FIFO on: IIR says 16550A; no 64-byte FIFO bit (not a 16750).
        u.write(reg::IIR_FCR, FCR_ENABLE | 0x20, &mut w)
            .expect("write");
        assert_eq!(iir(&mut u, &mut w) >> 6, 3);
        assert_eq!(iir(&mut u, &mut w) & 0x20, 0);
        // The divisor latch is separate from THR and IER.
        u.write(reg::LCR, LCR_DLAB | 0x03, &mut w).expect("write");
        u.write(reg::DATA, 0x0c, &mut w).expect("write");
        u.write(reg::IER, 0x00, &mut w).expect("write");
        assert_eq!(u.read(reg::DATA, &mut w), 0x0c);
        u.write(reg::LCR, 0x03, &mut w).expect("write");
        assert!(w.sent.is_empty());
        assert_eq!(u.read(reg::IER, &mut w), 0);
        assert_ne!(u.read(reg::LSR, &mut w), 0xff);
    }

    #[test]
    fn loopback_receives_what_is_sent_and_overruns() {
        let (mut u, mut w) = open_port();
        u.write(reg::MCR, MCR_LOOP | MCR_OUT2, &mut w)
            .expect("write");
        assert_eq!(u.receive(&[5], &mut w), 0, "the line is not connected");
        for i in 0..=FIFO_SIZE {
            u.write(reg::DATA, i as u8, &mut w).expect("write");
        }
        assert!(w.sent.is_empty());
        assert_eq!(u.rx_len(), FIFO_SIZE);
        // The byte that did not fit is an overrun, which outranks data.
        assert_eq!(iir(&mut u, &mut w) & 0x0f, IIR_RLSI);
        assert_eq!(
            u.read(reg::LSR, &mut w) & (LSR_OE | LSR_DR),
            LSR_OE | LSR_DR
        );
        assert_eq!(iir(&mut u, &mut w) & 0x0f, IIR_RDI);
        assert_eq!(u.read(reg::DATA, &mut w), 0);
    }

    #[test]
    fn modem_status_changes_in_loopback() {
        let (mut u, mut w) = open_port();
        u.write(reg::IER, IER_MSI, &mut w).expect("write");
        assert_eq!(u.read(reg::MSR, &mut w), MSR_CONNECTED);
        u.write(reg::MCR, MCR_LOOP | MCR_OUT1, &mut w)
            .expect("write");
        // CTS, DSR and DCD dropped (loopback follows RTS, DTR, OUT2: now low).
        assert_eq!(iir(&mut u, &mut w) & 0x0f, IIR_MSI);
        let msr = u.read(reg::MSR, &mut w);
        assert_eq!(msr & 0xf0, MSR_RI);
        assert_eq!(msr & MSR_DELTAS, MSR_DCTS | MSR_DDSR | MSR_DDCD);
        assert_eq!(
            iir(&mut u, &mut w) & 0x0f,
            IIR_NO_INT,
            "read: deltas cleared"
        );
        u.write(reg::MCR, MCR_LOOP, &mut w).expect("write");
        assert_eq!(u.read(reg::MSR, &mut w) & MSR_DELTAS, MSR_TERI);
    }
}
