// SPDX-License-Identifier: GPL-2.0

//! The guest-memory operations the Hyper-V emulation needs, as a trait, so
//! that the SynIC, hypercall and MSR logic run unchanged on guest RAM and on
//! [`FakeMemory`] in tests.
//!
//! Pages shared with a running guest (SIMP, SIEFP) are only touched through
//! the atomic operations here: the guest reads and clears them concurrently.

use std::sync::atomic::{AtomicU32, Ordering};

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileMemory};

/// A guest physical access failed: the range is not (entirely) RAM, or a
/// word is misaligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("guest physical range {gpa:#x}+{len:#x} is not accessible RAM")]
pub struct GpaError {
    /// First address.
    pub gpa: u64,
    /// Length.
    pub len: usize,
}

/// Guest physical memory as the Hyper-V emulation uses it.
pub trait GuestPages: Send + Sync {
    /// Copies `buf.len()` bytes from `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GpaError>;
    /// Copies `data` to `gpa`.
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), GpaError>;
    /// Loads the aligned 32-bit word at `gpa` with acquire ordering.
    fn load_u32(&self, gpa: u64) -> Result<u32, GpaError>;
    /// Stores the aligned 32-bit word at `gpa` with release ordering.
    fn store_u32(&self, gpa: u64, value: u32) -> Result<(), GpaError>;
    /// Loads the aligned little-endian 64-bit word at `gpa` in one access
    /// (relaxed: the VMBus ring orders it with its index loads).
    fn load_u64(&self, gpa: u64) -> Result<u64, GpaError>;
    /// Stores the aligned little-endian 64-bit word at `gpa` in one access
    /// (relaxed: the VMBus ring publishes it with a release index store).
    fn store_u64(&self, gpa: u64, value: u64) -> Result<(), GpaError>;
    /// Atomically ORs `bits` into the aligned word at `gpa` (sequentially
    /// consistent, a locked instruction the guest's own atomics see); returns
    /// the previous value.
    fn fetch_or_u32(&self, gpa: u64, bits: u32) -> Result<u32, GpaError>;
    /// Atomically replaces the aligned word at `gpa` with `value`
    /// (sequentially consistent, like [`Self::fetch_or_u32`]); returns the
    /// previous value: how a bitmap the guest sets bits in is taken.
    fn swap_u32(&self, gpa: u64, value: u32) -> Result<u32, GpaError>;
    /// Whether `gpa..gpa+len` is RAM.
    fn is_ram(&self, gpa: u64, len: u64) -> bool;
}

fn err(gpa: u64, len: usize) -> GpaError {
    GpaError { gpa, len }
}

/// Runs `f` on the aligned guest word at `gpa` as an atomic (a locked
/// instruction on the shared mapping, which the guest's atomics see).
fn with_atomic_u32<R>(
    mem: &GuestMemoryMmap,
    gpa: u64,
    f: impl FnOnce(&AtomicU32) -> R,
) -> Result<R, GpaError> {
    let slice = mem
        .get_slice(GuestAddress(gpa), 4)
        .map_err(|_| err(gpa, 4))?;
    let word = slice
        .get_atomic_ref::<AtomicU32>(0)
        .map_err(|_| err(gpa, 4))?;
    Ok(f(word))
}

impl GuestPages for GuestMemoryMmap {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GpaError> {
        self.read_slice(buf, GuestAddress(gpa))
            .map_err(|_| err(gpa, buf.len()))
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), GpaError> {
        self.write_slice(data, GuestAddress(gpa))
            .map_err(|_| err(gpa, data.len()))
    }

    fn load_u32(&self, gpa: u64) -> Result<u32, GpaError> {
        Bytes::load(self, GuestAddress(gpa), Ordering::Acquire).map_err(|_| err(gpa, 4))
    }

    fn store_u32(&self, gpa: u64, value: u32) -> Result<(), GpaError> {
        Bytes::store(self, value, GuestAddress(gpa), Ordering::Release).map_err(|_| err(gpa, 4))
    }

    fn load_u64(&self, gpa: u64) -> Result<u64, GpaError> {
        Bytes::load::<u64>(self, GuestAddress(gpa), Ordering::Relaxed)
            .map(u64::from_le)
            .map_err(|_| err(gpa, 8))
    }

    fn store_u64(&self, gpa: u64, value: u64) -> Result<(), GpaError> {
        Bytes::store(self, value.to_le(), GuestAddress(gpa), Ordering::Relaxed)
            .map_err(|_| err(gpa, 8))
    }

    fn fetch_or_u32(&self, gpa: u64, bits: u32) -> Result<u32, GpaError> {
        with_atomic_u32(self, gpa, |w| w.fetch_or(bits, Ordering::SeqCst))
    }

    fn swap_u32(&self, gpa: u64, value: u32) -> Result<u32, GpaError> {
        with_atomic_u32(self, gpa, |w| w.swap(value, Ordering::SeqCst))
    }

    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        let Some(last) = len.checked_sub(1).and_then(|l| gpa.checked_add(l)) else {
            return len == 0;
        };
        // Pages the emulation uses never straddle a region boundary, but check
        // both ends and that they are in the same region.
        match (
            self.to_region_addr(GuestAddress(gpa)),
            self.to_region_addr(GuestAddress(last)),
        ) {
            (Some((a, _)), Some((b, _))) => std::ptr::eq(a, b),
            _ => false,
        }
    }
}

/// Guest RAM made of atomic words, for tests: every access is atomic per
/// word, so concurrent tests see the same interleavings a guest could cause.
pub struct FakeMemory {
    words: Vec<AtomicU32>,
}

impl FakeMemory {
    /// `bytes` of zeroed RAM at GPA 0 (rounded up to a word).
    pub fn new(bytes: usize) -> Self {
        Self {
            words: (0..bytes.div_ceil(4)).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn word(&self, gpa: u64) -> Result<&AtomicU32, GpaError> {
        if !gpa.is_multiple_of(4) {
            return Err(err(gpa, 4));
        }
        usize::try_from(gpa / 4)
            .ok()
            .and_then(|i| self.words.get(i))
            .ok_or(err(gpa, 4))
    }

    fn check(&self, gpa: u64, len: usize) -> Result<(), GpaError> {
        let end = gpa.checked_add(len as u64).ok_or(err(gpa, len))?;
        if end > (self.words.len() * 4) as u64 {
            return Err(err(gpa, len));
        }
        Ok(())
    }
}

impl GuestPages for FakeMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GpaError> {
        self.check(gpa, buf.len())?;
        for (i, b) in buf.iter_mut().enumerate() {
            let a = gpa + i as u64;
            let w = self.word(a & !3)?.load(Ordering::Acquire);
            *b = (w >> ((a & 3) * 8)) as u8;
        }
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), GpaError> {
        self.check(gpa, data.len())?;
        for (i, b) in data.iter().enumerate() {
            let a = gpa + i as u64;
            let shift = (a & 3) * 8;
            let word = self.word(a & !3)?;
            let mut cur = word.load(Ordering::Relaxed);
            loop {
                let new = cur & !(0xff << shift) | u32::from(*b) << shift;
                match word.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        Ok(())
    }

    fn load_u32(&self, gpa: u64) -> Result<u32, GpaError> {
        Ok(self.word(gpa)?.load(Ordering::Acquire))
    }

    fn store_u32(&self, gpa: u64, value: u32) -> Result<(), GpaError> {
        self.word(gpa)?.store(value, Ordering::Release);
        Ok(())
    }

    fn load_u64(&self, gpa: u64) -> Result<u64, GpaError> {
        if !gpa.is_multiple_of(8) {
            return Err(err(gpa, 8));
        }
        let lo = self.word(gpa)?.load(Ordering::Relaxed);
        let hi = self.word(gpa + 4)?.load(Ordering::Relaxed);
        Ok(u64::from(lo) | u64::from(hi) << 32)
    }

    fn store_u64(&self, gpa: u64, value: u64) -> Result<(), GpaError> {
        if !gpa.is_multiple_of(8) {
            return Err(err(gpa, 8));
        }
        let (lo, hi) = (self.word(gpa)?, self.word(gpa + 4)?);
        lo.store(value as u32, Ordering::Relaxed);
        hi.store((value >> 32) as u32, Ordering::Relaxed);
        Ok(())
    }

    fn fetch_or_u32(&self, gpa: u64, bits: u32) -> Result<u32, GpaError> {
        Ok(self.word(gpa)?.fetch_or(bits, Ordering::SeqCst))
    }

    fn swap_u32(&self, gpa: u64, value: u32) -> Result<u32, GpaError> {
        Ok(self.word(gpa)?.swap(value, Ordering::SeqCst))
    }

    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len)
            .is_some_and(|end| end <= (self.words.len() * 4) as u64)
    }
}

impl FakeMemory {
    /// Atomically ANDs `mask` into the word at `gpa` (the guest clearing bits).
    pub fn fetch_and_u32(&self, gpa: u64, mask: u32) -> Result<u32, GpaError> {
        Ok(self.word(gpa)?.fetch_and(mask, Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_memory_bytes_and_words() {
        let m = FakeMemory::new(64);
        m.write(3, &[1, 2, 3]).expect("in range");
        let mut b = [0; 4];
        m.read(2, &mut b).expect("in range");
        assert_eq!(b, [0, 1, 2, 3]);
        assert_eq!(m.load_u32(4).expect("word"), 0x0302);
        assert_eq!(m.fetch_or_u32(4, 0x100).expect("word"), 0x0302);
        assert_eq!(m.swap_u32(4, 0).expect("word"), 0x0302 | 0x100);
        assert_eq!(m.load_u32(4).expect("word"), 0);
        assert!(m.swap_u32(64, 0).is_err());
        assert!(m.write(62, &[0; 4]).is_err());
        assert!(m.load_u32(2).is_err());
        assert!(m.is_ram(0, 64) && !m.is_ram(1, 64));
    }

    #[test]
    fn mmap_memory_atomics() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x2000)]).expect("mmap");
        m.store_u32(0x1004, 5).expect("store");
        assert_eq!(m.fetch_or_u32(0x1004, 2).expect("or"), 5);
        assert_eq!(m.load_u32(0x1004).expect("load"), 7);
        assert_eq!(m.swap_u32(0x1004, 1).expect("swap"), 7);
        assert_eq!(m.load_u32(0x1004).expect("load"), 1);
        assert!(m.swap_u32(0x2000, 0).is_err());
        assert!(m.is_ram(0x1000, 0x1000));
        assert!(!m.is_ram(0x1000, 0x1001));
        assert!(GuestPages::read(&m, 0x1ffe, &mut [0; 4]).is_err());
    }
}
