// SPDX-License-Identifier: GPL-2.0

//! The data of a storage request in guest memory: the one GPA range of a
//! GPA-direct packet (Linux's storvsc sends exactly one: the request's
//! pages in order, the first from an offset), checked before any byte moves.
//!
//! A range is refused when it is not the only one, its offset is not
//! inside its first page, it does not cover the request's transfer length,
//! or any of its pages is not guest RAM. The buffer is then exactly the
//! transfer length long, and every access stays inside the checked pages.
//! It holds its own handle on guest memory, so a checked buffer can go to
//! another thread (the controller's I/O thread) and be used there as it is.

use std::io;
use std::sync::Arc;

use vmbus::message::{GpaRange, HV_PAGE_SIZE};

use super::disk::DataBuffer;
use crate::hyperv::guest_mem::GuestPages;

/// Why a request's range is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not exactly one range.
    #[error("{0} GPA ranges; a storage request has exactly one")]
    RangeCount(usize),
    /// The offset is not inside the first page.
    #[error("range offset {0} is not inside a page")]
    Offset(u32),
    /// The range is shorter than the transfer.
    #[error("range of {range} bytes does not cover the transfer of {transfer}")]
    Short {
        /// The range's length.
        range: u32,
        /// The request's transfer length.
        transfer: u32,
    },
    /// A page is not guest RAM.
    #[error("PFN {0:#x} is not guest RAM")]
    NotRam(u64),
}

/// A checked range of guest pages.
pub struct GuestBuffer {
    mem: Arc<dyn GuestPages>,
    /// Offset of byte 0 in the first page.
    first_offset: usize,
    len: usize,
    pfns: Vec<u64>,
}

impl GuestBuffer {
    /// Checks `ranges` (a packet's GPA ranges) for a transfer of
    /// `transfer` bytes.
    pub fn new<'p>(
        mem: Arc<dyn GuestPages>,
        ranges: impl Iterator<Item = (GpaRange, &'p [u8])>,
        transfer: u32,
    ) -> Result<Self, RangeError> {
        let ranges: Vec<_> = ranges.take(2).collect();
        let [(range, pfn_bytes)] = ranges[..] else {
            return Err(RangeError::RangeCount(ranges.len()));
        };
        if u64::from(range.byte_offset) >= HV_PAGE_SIZE {
            return Err(RangeError::Offset(range.byte_offset));
        }
        if range.byte_count < transfer {
            return Err(RangeError::Short {
                range: range.byte_count,
                transfer,
            });
        }
        // The packet parser checked that the PFNs cover offset + count.
        let needed =
            (u64::from(range.byte_offset) + u64::from(transfer)).div_ceil(HV_PAGE_SIZE) as usize;
        let pfns: Vec<u64> = pfn_bytes
            .chunks_exact(8)
            .take(needed)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect();
        if pfns.len() < needed {
            return Err(RangeError::Short {
                range: range.byte_count,
                transfer,
            });
        }
        for pfn in &pfns {
            let gpa = pfn
                .checked_mul(HV_PAGE_SIZE)
                .ok_or(RangeError::NotRam(*pfn))?;
            if !mem.is_ram(gpa, HV_PAGE_SIZE) {
                return Err(RangeError::NotRam(*pfn));
            }
        }
        Ok(Self {
            mem,
            first_offset: range.byte_offset as usize,
            len: transfer as usize,
            pfns,
        })
    }

    /// The guest-physical pieces of `len` bytes at `offset` of the buffer.
    fn pieces(
        &self,
        offset: usize,
        len: usize,
    ) -> io::Result<impl Iterator<Item = (u64, usize, usize)> + '_> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let page = HV_PAGE_SIZE as usize;
        let mut at = self.first_offset + offset;
        let mut done = 0;
        Ok(std::iter::from_fn(move || {
            if done == len {
                return None;
            }
            let (index, in_page) = (at / page, at % page);
            let n = (page - in_page).min(len - done);
            let gpa = self.pfns.get(index)? * HV_PAGE_SIZE + in_page as u64;
            let piece = (gpa, done, n);
            at += n;
            done += n;
            Some(piece)
        }))
    }
}

impl DataBuffer for GuestBuffer {
    fn len(&self) -> usize {
        self.len
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        for (gpa, at, n) in self.pieces(offset, data.len())? {
            self.mem
                .write(gpa, &data[at..at + n])
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(())
    }

    fn read_at(&self, offset: usize, out: &mut [u8]) -> io::Result<()> {
        let len = out.len();
        for (gpa, at, n) in self.pieces(offset, len)? {
            self.mem
                .read(gpa, &mut out[at..at + n])
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperv::guest_mem::FakeMemory;
    use zerocopy::IntoBytes as _;

    fn range(offset: u32, count: u32) -> GpaRange {
        GpaRange {
            byte_count: count,
            byte_offset: offset,
        }
    }

    #[test]
    fn scatters_across_pages_from_an_offset() {
        let mem = Arc::new(FakeMemory::new(64 * 4096));
        // Pages 7, 3, 20: out of order, as a guest's request may be.
        let pfns = [7u64, 3, 20];
        let mut buf = GuestBuffer::new(
            mem.clone(),
            [(range(3000, 9000), pfns.as_bytes())].into_iter(),
            9000,
        )
        .expect("valid");
        let data: Vec<u8> = (0..9000u32).map(|i| (i % 253) as u8).collect();
        buf.write_at(0, &data).expect("write");
        let mut page = vec![0; 4096];
        mem.read(7 * 4096, &mut page).expect("read");
        assert_eq!(&page[3000..], &data[..1096]);
        mem.read(3 * 4096, &mut page).expect("read");
        assert_eq!(&page[..], &data[1096..1096 + 4096]);
        let mut back = vec![0; 9000];
        buf.read_at(0, &mut back).expect("read");
        assert_eq!(back, data);
        let mut part = vec![0; 100];
        buf.read_at(5000, &mut part).expect("read");
        assert_eq!(part, data[5000..5100]);
        // Nothing past the transfer length.
        assert!(buf.read_at(8950, &mut part).is_err());
        assert!(buf.write_at(usize::MAX, &[1]).is_err());
    }

    #[test]
    fn bad_ranges_are_refused_before_any_byte_moves() {
        let mem = Arc::new(FakeMemory::new(16 * 4096));
        let one = [1u64];
        let two = [1u64, 2];
        assert_eq!(
            GuestBuffer::new(mem.clone(), std::iter::empty(), 512).err(),
            Some(RangeError::RangeCount(0))
        );
        assert_eq!(
            GuestBuffer::new(
                mem.clone(),
                [
                    (range(0, 512), one.as_bytes()),
                    (range(0, 512), one.as_bytes())
                ]
                .into_iter(),
                512
            )
            .err(),
            Some(RangeError::RangeCount(2))
        );
        assert_eq!(
            GuestBuffer::new(
                mem.clone(),
                [(range(4096, 512), one.as_bytes())].into_iter(),
                512
            )
            .err(),
            Some(RangeError::Offset(4096))
        );
        assert_eq!(
            GuestBuffer::new(
                mem.clone(),
                [(range(0, 512), one.as_bytes())].into_iter(),
                1024
            )
            .err(),
            Some(RangeError::Short {
                range: 512,
                transfer: 1024
            })
        );
        // Fewer PFNs than the transfer spans.
        assert_eq!(
            GuestBuffer::new(
                mem.clone(),
                [(range(4000, 8192), one.as_bytes())].into_iter(),
                8192
            )
            .err(),
            Some(RangeError::Short {
                range: 8192,
                transfer: 8192
            })
        );
        let outside = [1u64, 999];
        assert_eq!(
            GuestBuffer::new(
                mem.clone(),
                [(range(0, 8192), outside.as_bytes())].into_iter(),
                8192
            )
            .err(),
            Some(RangeError::NotRam(999))
        );
        let huge = [u64::MAX];
        assert_eq!(
            GuestBuffer::new(
                mem.clone(),
                [(range(0, 512), huge.as_bytes())].into_iter(),
                512
            )
            .err(),
            Some(RangeError::NotRam(u64::MAX))
        );
        assert!(GuestBuffer::new(
            mem.clone(),
            [(range(0, 8192), two.as_bytes())].into_iter(),
            8192
        )
        .is_ok());
    }
}
