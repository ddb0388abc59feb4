// SPDX-License-Identifier: GPL-2.0

//! Emulated devices and the buses that route guest port I/O and MMIO exits to them.
//!
//! A device implements [`PioDevice`] or [`MmioDevice`] and is mapped on a [`PioBus`] or
//! [`MmioBus`] (one generic [`Bus`]) at a range. The vCPU run loop only ever calls `bus.read`/`bus.write`; new
//! devices (the Hyper-V hypercall port, VMBus) are added in the builder without touching it.
//!
//! Access widths: KVM reports one access of `data.len()` bytes (1, 2 or 4 for IN/OUT, up to
//! 8 for MMIO; longer for string I/O, which hvhost's devices treat as a byte stream). A
//! device gets the whole slice and the offset of the access from the start of its range.
//!
//! Accesses nobody claims read as all-ones (what a floating ISA/PCI bus returns), writes
//! are dropped, and both are counted; they never stop the VM.

pub mod acpi_pm;
pub mod cmos;
pub mod debugcon;
pub mod hv_testdev;
pub mod i8042;
pub mod serial;
pub mod uart;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A device behind x86 port I/O.
pub trait PioDevice: Send {
    /// The guest reads `data.len()` bytes at `offset` into the device's port range.
    fn read(&mut self, offset: u16, data: &mut [u8]);
    /// The guest writes `data` at `offset` into the device's port range.
    fn write(&mut self, offset: u16, data: &[u8]);
}

/// A device behind guest-physical MMIO.
pub trait MmioDevice: Send {
    /// The guest reads `data.len()` bytes at `offset` into the device's MMIO range.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset` into the device's MMIO range.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// Why a device could not be mapped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The new range is empty or wraps around the address space.
    #[error("the range {base:#x}+{len:#x} is empty or wraps around")]
    InvalidRange {
        /// First address.
        base: u64,
        /// Length.
        len: u64,
    },
    /// The new range overlaps one already mapped.
    #[error("the range {base:#x}+{len:#x} overlaps the device already at {existing:#x}")]
    Overlap {
        /// First address of the new range.
        base: u64,
        /// Length of the new range.
        len: u64,
        /// First address of the range it collides with.
        existing: u64,
    },
}

struct Mapping<D: ?Sized> {
    base: u64,
    /// Last address (inclusive), so that a range may end at the top of the address space.
    last: u64,
    device: Arc<Mutex<D>>,
}

/// Sorted, non-overlapping address ranges, each owned by one device.
struct RangeMap<D: ?Sized> {
    mappings: Vec<Mapping<D>>,
}

impl<D: ?Sized> RangeMap<D> {
    fn new() -> Self {
        Self {
            mappings: Vec::new(),
        }
    }

    fn insert(&mut self, base: u64, len: u64, device: Arc<Mutex<D>>) -> Result<(), BusError> {
        let last = len
            .checked_sub(1)
            .and_then(|l| base.checked_add(l))
            .ok_or(BusError::InvalidRange { base, len })?;
        if let Some(m) = self
            .mappings
            .iter()
            .find(|m| base <= m.last && m.base <= last)
        {
            return Err(BusError::Overlap {
                base,
                len,
                existing: m.base,
            });
        }
        let at = self.mappings.partition_point(|m| m.base < base);
        self.mappings.insert(at, Mapping { base, last, device });
        Ok(())
    }

    /// The device whose range holds the whole access `[addr, addr + len)`, and the offset.
    fn find(&self, addr: u64, len: usize) -> Option<(&Arc<Mutex<D>>, u64)> {
        let idx = self
            .mappings
            .partition_point(|m| m.base <= addr)
            .checked_sub(1)?;
        let m = &self.mappings[idx];
        let end = addr.checked_add(u64::try_from(len.max(1)).ok()? - 1)?;
        (end <= m.last).then(|| (&m.device, addr - m.base))
    }
}

/// Counts accesses that no device claimed.
#[derive(Debug, Default)]
pub struct UnclaimedCounters {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl UnclaimedCounters {
    /// Unclaimed reads so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Unclaimed writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// What a bus needs of the devices on it: implemented for `dyn PioDevice` and
/// `dyn MmioDevice`, so that one [`Bus`] serves both address spaces.
pub trait BusDevice {
    /// An address on this bus: `u16` for ports, `u64` for guest-physical MMIO.
    type Addr: Copy + Into<u64> + TryFrom<u64> + std::fmt::LowerHex;
    /// The address space's name, for logs.
    const SPACE: &'static str;
    /// Forwards a read at `offset` into the device's range.
    fn bus_read(&mut self, offset: Self::Addr, data: &mut [u8]);
    /// Forwards a write at `offset` into the device's range.
    fn bus_write(&mut self, offset: Self::Addr, data: &[u8]);
}

impl BusDevice for dyn PioDevice {
    type Addr = u16;
    const SPACE: &'static str = "port";
    fn bus_read(&mut self, offset: u16, data: &mut [u8]) {
        self.read(offset, data)
    }
    fn bus_write(&mut self, offset: u16, data: &[u8]) {
        self.write(offset, data)
    }
}

impl BusDevice for dyn MmioDevice {
    type Addr = u64;
    const SPACE: &'static str = "MMIO";
    fn bus_read(&mut self, offset: u64, data: &mut [u8]) {
        self.read(offset, data)
    }
    fn bus_write(&mut self, offset: u64, data: &[u8]) {
        self.write(offset, data)
    }
}

/// Routes the exits of one address space to the devices mapped on it.
pub struct Bus<D: ?Sized> {
    map: RangeMap<D>,
    unclaimed: UnclaimedCounters,
}

/// The port I/O bus.
pub type PioBus = Bus<dyn PioDevice>;
/// The MMIO bus.
pub type MmioBus = Bus<dyn MmioDevice>;

impl<D: ?Sized + BusDevice> Default for Bus<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: ?Sized + BusDevice> Bus<D> {
    /// An empty bus.
    pub fn new() -> Self {
        Self {
            map: RangeMap::new(),
            unclaimed: UnclaimedCounters::default(),
        }
    }

    /// Maps `device` at `base..base + len`; the whole range must be addressable on this bus.
    pub fn insert(
        &mut self,
        base: D::Addr,
        len: D::Addr,
        device: Arc<Mutex<D>>,
    ) -> Result<(), BusError> {
        let (base, len): (u64, u64) = (base.into(), len.into());
        let invalid = BusError::InvalidRange { base, len };
        let last = len
            .checked_sub(1)
            .and_then(|l| base.checked_add(l))
            .ok_or(invalid)?;
        if D::Addr::try_from(last).is_err() {
            return Err(BusError::InvalidRange { base, len });
        }
        self.map.insert(base, len, device)
    }

    /// The device holding the whole access and the offset into its range.
    fn find(&self, addr: D::Addr, len: usize) -> Option<(&Arc<Mutex<D>>, D::Addr)> {
        let (dev, offset) = self.map.find(addr.into(), len)?;
        // The offset is below the range's length, which fits the bus's address type.
        Some((dev, D::Addr::try_from(offset).ok()?))
    }

    /// Dispatches a read; returns `false` (and fills `data` with all-ones) if unclaimed.
    pub fn read(&self, addr: D::Addr, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((dev, offset)) => {
                let mut dev = dev.lock().unwrap_or_else(PoisonError::into_inner);
                dev.bus_read(offset, data);
                true
            }
            None => {
                data.fill(0xff);
                self.unclaimed.reads.fetch_add(1, Ordering::Relaxed);
                log::trace!(
                    "unclaimed {} read at {addr:#x} ({} bytes)",
                    D::SPACE,
                    data.len()
                );
                false
            }
        }
    }

    /// Dispatches a write; returns `false` (and drops the data) if unclaimed.
    pub fn write(&self, addr: D::Addr, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((dev, offset)) => {
                let mut dev = dev.lock().unwrap_or_else(PoisonError::into_inner);
                dev.bus_write(offset, data);
                true
            }
            None => {
                self.unclaimed.writes.fetch_add(1, Ordering::Relaxed);
                log::trace!("unclaimed {} write at {addr:#x}: {data:02x?}", D::SPACE);
                false
            }
        }
    }

    /// How many accesses found no device.
    pub fn unclaimed(&self) -> &UnclaimedCounters {
        &self.unclaimed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records accesses; reads return the offset.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl PioDevice for Recorder {
        fn read(&mut self, offset: u16, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u16, data: &[u8]) {
            self.writes.push((offset.into(), data.to_vec()));
        }
    }

    impl MmioDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn pio_dispatches_with_offsets() {
        let dev = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = PioBus::new();
        bus.insert(0x3f8, 8, dev.clone()).expect("map");
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fd, &mut b));
        assert_eq!(b, [5]);
        assert!(bus.write(0x3f8, b"A"));
        assert!(bus.write(0x3ff, &[1]));
        let d = dev.lock().expect("lock");
        assert_eq!(d.writes, vec![(0, vec![b'A']), (7, vec![1])]);
        assert_eq!(bus.unclaimed().reads(), 0);
    }

    #[test]
    fn pio_unclaimed_reads_are_all_ones_and_counted() {
        let mut bus = PioBus::new();
        bus.insert(0x3f8, 8, Arc::new(Mutex::new(Recorder::default())))
            .expect("map");
        let mut w = [0u8; 2];
        assert!(!bus.read(0x2f8, &mut w));
        assert_eq!(w, [0xff, 0xff]);
        let mut b = [0u8; 1];
        assert!(!bus.read(0x400, &mut b));
        assert_eq!(b, [0xff]);
        assert!(!bus.write(0x80, &[0x12]));
        // An access that starts inside a range but ends past it is not claimed.
        let mut d = [0u8; 4];
        assert!(!bus.read(0x3fe, &mut d));
        assert_eq!(bus.unclaimed().reads(), 3);
        assert_eq!(bus.unclaimed().writes(), 1);
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let mut bus = PioBus::new();
        let dev = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x600, 2, dev()).expect("map");
        assert_eq!(
            bus.insert(0x601, 1, dev()),
            Err(BusError::Overlap {
                base: 0x601,
                len: 1,
                existing: 0x600
            })
        );
        assert!(bus.insert(0x5ff, 2, dev()).is_err());
        assert!(bus.insert(0x602, 1, dev()).is_ok());
        assert!(bus.insert(0x5ff, 1, dev()).is_ok());
        assert!(bus.insert(0x700, 0, dev()).is_err());
        assert!(bus.insert(0xffff, 2, dev()).is_err());
        assert!(bus.insert(0xffff, 1, dev()).is_ok());
    }

    #[test]
    fn mmio_dispatch_and_unclaimed() {
        let dev = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = MmioBus::new();
        bus.insert(0xd000_0000, 0x1000, dev.clone()).expect("map");
        let mut q = [0u8; 8];
        assert!(bus.read(0xd000_0010, &mut q));
        assert_eq!(q, [0x10; 8]);
        assert!(bus.write(0xd000_0ff8, &[1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(!bus.read(0xd000_1000, &mut q));
        assert_eq!(q, [0xff; 8]);
        assert!(!bus.write(0xfed0_0000, &[0; 4]));
        assert_eq!(bus.unclaimed().reads(), 1);
        assert_eq!(bus.unclaimed().writes(), 1);
        assert_eq!(dev.lock().expect("lock").writes.len(), 1);
    }
}
