// SPDX-License-Identifier: GPL-2.0

//! The VMBus ring buffer (`drivers/hv/ring_buffer.c`): one algorithm for
//! both ends, generic over [`RingMemory`], so that the guest runs it over its
//! own pages, hvhost over guest memory, and the tests over plain buffers.
//!
//! Layout: a one-page header (`struct hv_ring_buffer`), then the data area.
//! The producer owns `write_index` and `pending_send_sz`; the consumer owns
//! `read_index` and `interrupt_mask`; `feature_bits` is set by the producer.
//! Both indices are byte offsets into the data area, multiples of 8. A
//! packet is its bytes (8-aligned) and an 8-byte trailer; the ring is never
//! filled completely, so `read_index == write_index` means empty.
//!
//! Ownership and ordering, the only synchronisation there is:
//! - The producer writes packet and trailer, then publishes `write_index`
//!   with release; the consumer loads it with acquire before copying.
//! - The consumer copies a packet out, then publishes `read_index` with
//!   release, so the producer cannot overwrite bytes still being read.
//! - Each side publishes its index, issues a full fence, and only then reads
//!   the other side's flag (`interrupt_mask`, `pending_send_sz`): the
//!   store-load order that rules out lost wakeups.
//!
//! The other side is not trusted: every index read from the header is
//! checked (inside the data area, 8-aligned), every packet length against
//! the bytes published and the caller's buffer, and a packet is copied out
//! before anything in it is believed. A corrupt ring gives [`RingError`],
//! never a panic, an out-of-bounds access or a loop.

use zerocopy::IntoBytes as _;

use super::gpadl::GpadlRange;
use super::packet::{
    align8, descriptor, GpaDirectHeader, Packet, PacketDescriptor, PacketError, PacketFlags,
    PacketType, DESCRIPTOR_SIZE, TRAILER_SIZE,
};

/// Size of the ring header: the data area starts one page in.
pub const RING_HEADER_SIZE: usize = 0x1000;

/// `feat_pending_send_sz`, bit 0 of `feature_bits`: the producer of this
/// ring sets `pending_send_sz` when it waits for space, and the consumer
/// signals when enough space is free.
pub const FEAT_PENDING_SEND_SZ: u32 = 1 << 0;

/// A field of the ring header (`struct hv_ring_buffer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderField {
    /// `write_index` at 0x0, owned by the producer.
    WriteIndex,
    /// `read_index` at 0x4, owned by the consumer.
    ReadIndex,
    /// `interrupt_mask` at 0x8: the consumer is draining, don't signal.
    InterruptMask,
    /// `pending_send_sz` at 0xc: the producer waits for this many bytes.
    PendingSendSize,
    /// `feature_bits` at 0x40.
    FeatureBits,
}

impl HeaderField {
    /// Every field, in header order.
    pub const ALL: [Self; 5] = [
        Self::WriteIndex,
        Self::ReadIndex,
        Self::InterruptMask,
        Self::PendingSendSize,
        Self::FeatureBits,
    ];

    /// Position of the field in [`Self::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Self::WriteIndex => 0,
            Self::ReadIndex => 1,
            Self::InterruptMask => 2,
            Self::PendingSendSize => 3,
            Self::FeatureBits => 4,
        }
    }

    /// Byte offset of the field from the start of the ring.
    pub const fn offset(self) -> usize {
        match self {
            Self::WriteIndex => 0x0,
            Self::ReadIndex => 0x4,
            Self::InterruptMask => 0x8,
            Self::PendingSendSize => 0xc,
            Self::FeatureBits => 0x40,
        }
    }
}

/// Memory shared with the other party that holds one ring.
///
/// Implementations read and write the real shared bytes: the header fields
/// as 32-bit atomics, the data area with copies that tolerate concurrent
/// modification by the other side (they may return torn data, never fault).
/// The algorithm guarantees `offset + len <= data_len()` on every data call.
///
/// The data calls are bulk copies: the algorithm hands over a whole run of
/// bytes (a packet's payload is one call, split only where it wraps at the
/// end of the data area), never byte by byte, and never an empty run. An
/// implementation splits a run only where its memory is discontiguous (page
/// boundaries) and copies each piece with one `memcpy`-class copy.
///
/// Descriptor and trailer words go through [`Self::read_word`] and
/// [`Self::write_word`], loads and stores of one register: building them
/// in a stack buffer and copying that would cost a failed store-to-load
/// forward per packet (the copy's wide loads of bytes just stored in
/// narrower pieces), which at small packets was most of the ring's time.
/// A word is 8-aligned in the data area, whose length is a multiple of 8
/// (and of the page size), so it never wraps and never crosses a page.
pub trait RingMemory {
    /// Bytes in the data area (the ring without its header page).
    fn data_len(&self) -> usize;
    /// Copies `buf.len()` bytes from the data area at `offset`.
    fn read_data(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` into the data area at `offset`.
    fn write_data(&self, offset: usize, data: &[u8]);
    /// Loads the little-endian 8-byte word at `offset` (a multiple of 8) of
    /// the data area. The default goes through [`Self::read_data`].
    #[inline]
    fn read_word(&self, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        self.read_data(offset, &mut b);
        u64::from_le_bytes(b)
    }
    /// Stores `value` as the little-endian 8-byte word at `offset` (a
    /// multiple of 8) of the data area. The default goes through
    /// [`Self::write_data`].
    #[inline]
    fn write_word(&self, offset: usize, value: u64) {
        self.write_data(offset, &value.to_le_bytes())
    }
    /// Loads a header field with acquire ordering.
    fn load_acquire(&self, field: HeaderField) -> u32;
    /// Stores a header field with release ordering.
    fn store_release(&self, field: HeaderField, value: u32);
    /// A full barrier between this side's earlier stores and its later
    /// loads, as seen by the other side: Linux's `virt_mb()`. On x86 that
    /// is a locked read-modify-write (`lock addl`, what `virt_mb()` is
    /// there), which orders ordinary write-back memory as `mfence` does at
    /// a fraction of its cost; `mfence` is only needed for non-temporal
    /// stores and device memory, which rings never use.
    fn fence(&self);
}

/// A ring held in this address space and used by one thread: the data area
/// borrowed from the caller, the header fields in cells. For unit tests,
/// benchmarks and fuzzing, where both ends of the ring are the same program;
/// a real ring is shared memory and has its own implementation on each side.
pub struct LocalMemory<'a> {
    data: core::cell::RefCell<&'a mut [u8]>,
    fields: [core::cell::Cell<u32>; 5],
}

impl<'a> LocalMemory<'a> {
    /// A ring whose data area is `data`, header all zero.
    #[inline]
    pub fn new(data: &'a mut [u8]) -> Self {
        Self {
            data: core::cell::RefCell::new(data),
            fields: Default::default(),
        }
    }

    /// A header field as the other side would see it.
    #[inline]
    pub fn field(&self, field: HeaderField) -> u32 {
        self.fields[field.index()].get()
    }

    /// Overwrites a header field, as a (possibly hostile) other side would.
    #[inline]
    pub fn set_field(&self, field: HeaderField, value: u32) {
        self.fields[field.index()].set(value)
    }

    /// Overwrites data bytes, as a (possibly hostile) other side would.
    #[inline]
    pub fn poke(&self, offset: usize, bytes: &[u8]) {
        let Ok(mut data) = self.data.try_borrow_mut() else {
            return;
        };
        if let Some(dst) = data.get_mut(offset..offset.saturating_add(bytes.len())) {
            dst.copy_from_slice(bytes);
        }
    }
}

impl RingMemory for LocalMemory<'_> {
    // `try_borrow`: one thread, never re-entered, but no panic path either.
    #[inline]
    fn data_len(&self) -> usize {
        self.data.try_borrow().map_or(0, |d| d.len())
    }
    #[inline]
    fn read_data(&self, offset: usize, buf: &mut [u8]) {
        let Ok(data) = self.data.try_borrow() else {
            return;
        };
        if let Some(src) = data.get(offset..offset.saturating_add(buf.len())) {
            buf.copy_from_slice(src);
        }
    }
    #[inline]
    fn write_data(&self, offset: usize, bytes: &[u8]) {
        self.poke(offset, bytes)
    }
    #[inline]
    fn read_word(&self, offset: usize) -> u64 {
        let Ok(data) = self.data.try_borrow() else {
            return 0;
        };
        data.get(offset..offset.saturating_add(8))
            .and_then(|w| w.first_chunk::<8>())
            .map_or(0, |w| u64::from_le_bytes(*w))
    }
    #[inline]
    fn write_word(&self, offset: usize, value: u64) {
        let Ok(mut data) = self.data.try_borrow_mut() else {
            return;
        };
        if let Some(w) = data
            .get_mut(offset..offset.saturating_add(8))
            .and_then(|w| w.first_chunk_mut::<8>())
        {
            *w = value.to_le_bytes();
        }
    }
    #[inline]
    fn load_acquire(&self, field: HeaderField) -> u32 {
        self.field(field)
    }
    #[inline]
    fn store_release(&self, field: HeaderField, value: u32) {
        self.set_field(field, value)
    }
    #[inline]
    fn fence(&self) {
        // Nobody else sees this memory, but benchmarks should pay for the
        // barrier the real rings execute (on x86-64 this is a locked `or`
        // on the stack, the kernel's ring and hvhost's execute the same).
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst)
    }
}

impl<T: RingMemory + ?Sized> RingMemory for &T {
    #[inline]
    fn data_len(&self) -> usize {
        (**self).data_len()
    }
    #[inline]
    fn read_data(&self, offset: usize, buf: &mut [u8]) {
        (**self).read_data(offset, buf)
    }
    #[inline]
    fn write_data(&self, offset: usize, data: &[u8]) {
        (**self).write_data(offset, data)
    }
    #[inline]
    fn read_word(&self, offset: usize) -> u64 {
        (**self).read_word(offset)
    }
    #[inline]
    fn write_word(&self, offset: usize, value: u64) {
        (**self).write_word(offset, value)
    }
    #[inline]
    fn load_acquire(&self, field: HeaderField) -> u32 {
        (**self).load_acquire(field)
    }
    #[inline]
    fn store_release(&self, field: HeaderField, value: u32) {
        (**self).store_release(field, value)
    }
    #[inline]
    fn fence(&self) {
        (**self).fence()
    }
}

/// What went wrong with a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The data area is empty, not 8-aligned, too small for a packet, or
    /// too large for 32-bit indices.
    BadRingSize {
        /// Its length.
        data_len: usize,
    },
    /// An index in the header is outside the data area or not 8-aligned.
    CorruptIndex {
        /// Which.
        field: HeaderField,
        /// Its value.
        value: u32,
    },
    /// Part of a packet is published, less than a descriptor and trailer.
    Truncated {
        /// Bytes published.
        avail: usize,
    },
    /// A packet whose length is below a descriptor or beyond the published
    /// bytes.
    BadPacketLength {
        /// `len8` in bytes (trailer excluded).
        len: usize,
        /// Bytes published.
        avail: usize,
    },
    /// A packet whose data offset is inside the descriptor or past its end.
    BadPacketOffset {
        /// `offset8` in bytes.
        offset: usize,
        /// `len8` in bytes.
        len: usize,
    },
    /// The caller's buffer cannot hold the next packet; nothing consumed.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// Not enough free space; nothing written. `need` includes the trailer;
    /// a write succeeds once the free space exceeds it.
    Full {
        /// Bytes needed.
        need: usize,
        /// Bytes free.
        free: usize,
    },
    /// Raw packet bytes that are not a multiple of 8.
    Unaligned {
        /// Their length.
        len: usize,
    },
    /// The packet cannot be built.
    Packet(PacketError),
}

impl From<PacketError> for RingError {
    fn from(e: PacketError) -> Self {
        Self::Packet(e)
    }
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BadRingSize { data_len } => {
                write!(f, "ring data area of {} bytes is unusable", data_len)
            }
            Self::CorruptIndex { field, value } => {
                write!(f, "ring {:?} {:#x} is corrupt", field, value)
            }
            Self::Truncated { avail } => {
                write!(f, "ring holds {} bytes, less than a packet", avail)
            }
            Self::BadPacketLength { len, avail } => {
                write!(f, "packet length {} with {} bytes in the ring", len, avail)
            }
            Self::BadPacketOffset { offset, len } => {
                write!(f, "packet data offset {} in a {} byte packet", offset, len)
            }
            Self::BufferTooSmall { need, have } => {
                write!(f, "packet of {} bytes, buffer of {}", need, have)
            }
            Self::Full { need, free } => write!(f, "ring full: need {} bytes, {} free", need, free),
            Self::Unaligned { len } => write!(f, "packet of {} bytes is not 8-byte aligned", len),
            Self::Packet(e) => write!(f, "{}", e),
        }
    }
}

/// The smallest data area: room for a descriptor and trailer, plus the
/// slot that always stays free.
pub const MIN_DATA_LEN: usize = 32;

fn check_size(data_len: usize) -> Result<u32, RingError> {
    if data_len < MIN_DATA_LEN || data_len % 8 != 0 || data_len > u32::MAX as usize - 7 {
        return Err(RingError::BadRingSize { data_len });
    }
    Ok(data_len as u32)
}

fn load_index<M: RingMemory>(mem: &M, size: u32, field: HeaderField) -> Result<u32, RingError> {
    let value = mem.load_acquire(field);
    if value >= size || value % 8 != 0 {
        return Err(RingError::CorruptIndex { field, value });
    }
    Ok(value)
}

/// Bytes from `from` to `to` going forward around a ring of `size`.
const fn distance(from: u32, to: u32, size: u32) -> u32 {
    if to >= from {
        to - from
    } else {
        size - from + to
    }
}

/// `pos + n` in a ring of `size`, for `pos < size` and `n <= size`: one
/// compare instead of a division.
const fn advance(pos: usize, n: usize, size: usize) -> usize {
    let next = pos + n;
    if next >= size {
        next - size
    } else {
        next
    }
}

/// Copies out of the data area from `pos`, wrapping at the end: one call
/// per contiguous run.
#[inline]
fn copy_out<M: RingMemory>(mem: &M, size: usize, pos: usize, buf: &mut [u8]) {
    let first = buf.len().min(size.saturating_sub(pos));
    let (a, b) = buf.split_at_mut(first);
    if !a.is_empty() {
        mem.read_data(pos, a);
    }
    if !b.is_empty() {
        mem.read_data(0, b);
    }
}

/// The first word of a descriptor: type, `offset8`, `len8`, flags, in
/// wire order (little-endian, as `PacketDescriptor`'s layout).
const fn descriptor_word(d: &PacketDescriptor) -> u64 {
    d.ty.0 as u64 | (d.offset8 as u64) << 16 | (d.len8 as u64) << 32 | (d.flags.0 as u64) << 48
}

/// The descriptor whose two words are `w0` (see [`descriptor_word`]) and
/// `trans_id`.
const fn descriptor_from_words(w0: u64, trans_id: u64) -> PacketDescriptor {
    PacketDescriptor {
        ty: PacketType(w0 as u16),
        offset8: (w0 >> 16) as u16,
        len8: (w0 >> 32) as u16,
        flags: PacketFlags((w0 >> 48) as u16),
        trans_id,
    }
}

/// Writes into the reserved space of one packet, wrapping at the end of the
/// data area, never past the space reserved: each piece is one run (two
/// where it wraps), words are single stores.
struct SpaceWriter<'m, M> {
    mem: &'m M,
    size: usize,
    /// Where the next byte goes.
    pos: usize,
    /// Reserved bytes not yet written.
    left: usize,
}

impl<M: RingMemory> SpaceWriter<'_, M> {
    /// Appends `data` (at most what is left of the space).
    #[inline]
    fn put(&mut self, data: &[u8]) {
        // No division and no panicking arithmetic: `pos < size` and
        // `left <= size` hold by construction, and the kernel build must
        // have no panic path here.
        let data = data.get(..data.len().min(self.left)).unwrap_or_default();
        if data.is_empty() {
            return;
        }
        let (a, b) = data.split_at(data.len().min(self.size.saturating_sub(self.pos)));
        if !a.is_empty() {
            self.mem.write_data(self.pos, a);
        }
        if !b.is_empty() {
            self.mem.write_data(0, b);
        }
        self.left = self.left.saturating_sub(data.len());
        self.pos = self.pos.saturating_add(data.len());
        if self.pos >= self.size {
            self.pos = self.pos.saturating_sub(self.size);
        }
    }

    /// Appends one word; the position must be 8-aligned (it is after the
    /// descriptor and after any 8-aligned pieces).
    #[inline]
    fn put_word(&mut self, value: u64) {
        if self.left < 8 || self.pos % 8 != 0 {
            // Not reachable from this module's callers; never write a
            // word where it could cross the end of the space.
            self.put(&value.to_le_bytes());
            return;
        }
        self.mem.write_word(self.pos, value);
        self.left -= 8;
        self.pos += 8;
        if self.pos >= self.size {
            self.pos -= self.size;
        }
    }

    /// Appends the descriptor: two words.
    #[inline]
    fn put_descriptor(&mut self, d: &PacketDescriptor) {
        self.put_word(descriptor_word(d));
        self.put_word(d.trans_id);
    }

    /// Zeroes what is left of the reserved space and writes the trailer
    /// after it.
    #[inline]
    fn finish(&mut self, trailer: u64) {
        // Zeros from read-only memory: a copy of freshly stored stack bytes
        // would stall on store forwarding.
        static Z: [u8; 64] = [0; 64];
        while self.left > 0 {
            let k = self.left.min(Z.len());
            self.put(Z.get(..k).unwrap_or_default());
        }
        // The space is a multiple of 8 from an 8-aligned start: the trailer
        // is one aligned word.
        self.left = TRAILER_SIZE;
        self.put_word(trailer);
    }
}

/// The writing end of a ring.
///
/// INVARIANT: `write` is inside the data area and 8-aligned; it is the
/// authority for `write_index`, whatever the other side stores there.
#[derive(Debug)]
pub struct RingProducer<M> {
    mem: M,
    size: u32,
    write: u32,
}

impl<M: RingMemory> RingProducer<M> {
    /// Takes the writing end of `mem`, continuing from its `write_index`
    /// (zero on a fresh ring).
    pub fn new(mem: M) -> Result<Self, RingError> {
        let size = check_size(mem.data_len())?;
        let write = load_index(&mem, size, HeaderField::WriteIndex)?;
        Ok(Self { mem, size, write })
    }

    /// The memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Bytes in the data area.
    pub fn data_len(&self) -> u32 {
        self.size
    }

    /// The write index as this side last published it.
    pub fn write_index(&self) -> u32 {
        self.write
    }

    /// Free bytes (Linux's `hv_get_bytes_to_write`); a packet needing `n`
    /// bytes with trailer fits if this is more than `n`.
    #[inline]
    pub fn free_bytes(&self) -> Result<u32, RingError> {
        let read = load_index(&self.mem, self.size, HeaderField::ReadIndex)?;
        Ok(self.size - distance(read, self.write, self.size))
    }

    /// Bytes a packet of `packet_len` needs in the ring, trailer included.
    pub const fn space_needed(packet_len: usize) -> usize {
        align8(packet_len) + TRAILER_SIZE
    }

    /// Says this producer honours `pending_send_sz` (sets
    /// [`FEAT_PENDING_SEND_SZ`]).
    pub fn enable_pending_send_size(&self) {
        self.mem
            .store_release(HeaderField::FeatureBits, FEAT_PENDING_SEND_SZ);
    }

    /// Asks the consumer for a signal once more than `need` bytes are free
    /// (`need` as in [`RingError::Full`]); then checks again, so a consumer
    /// that freed space meanwhile is not missed. Returns whether the space
    /// is already there (then no signal will come: write now).
    pub fn set_pending_send_size(&self, need: u32) -> Result<bool, RingError> {
        self.mem.store_release(HeaderField::PendingSendSize, need);
        self.mem.fence();
        Ok(self.free_bytes()? > need)
    }

    /// Withdraws the request for a signal.
    pub fn clear_pending_send_size(&self) {
        self.mem.store_release(HeaderField::PendingSendSize, 0);
    }

    /// Reserves `len` bytes (8-aligned) plus trailer, lets `fill` write them,
    /// writes the trailer, publishes, and decides about the signal.
    #[inline]
    fn write_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut SpaceWriter<'_, M>),
    ) -> Result<bool, RingError> {
        if len % 8 != 0 {
            return Err(RingError::Unaligned { len });
        }
        let need = len.saturating_add(TRAILER_SIZE);
        let free = self.free_bytes()? as usize;
        // Exactly full would look empty: one slot always stays free.
        if free <= need {
            return Err(RingError::Full { need, free });
        }
        let old_write = self.write;
        let mut w = SpaceWriter {
            mem: &self.mem,
            size: self.size as usize,
            pos: old_write as usize,
            left: len,
        };
        fill(&mut w);
        w.finish(u64::from(old_write) << 32);
        let new_write = w.pos as u32;

        // Packet and trailer before the index: the consumer acquires it.
        self.mem.store_release(HeaderField::WriteIndex, new_write);
        self.write = new_write;

        // hv_signal_on_write: the index store must be visible before the
        // mask and read index are sampled, or a consumer going idle could
        // be missed.
        self.mem.fence();
        if self.mem.load_acquire(HeaderField::InterruptMask) != 0 {
            return Ok(false);
        }
        // Signal only on the empty to non-empty transition: the consumer
        // had read everything up to where this packet starts.
        Ok(self.mem.load_acquire(HeaderField::ReadIndex) == old_write)
    }

    /// Writes one packet given as its bytes (descriptor included, total a
    /// multiple of 8) in pieces. Returns whether the consumer must be
    /// signalled.
    #[must_use = "the consumer may need a signal"]
    pub fn write_raw(&mut self, parts: &[&[u8]]) -> Result<bool, RingError> {
        let len = parts.iter().fold(0usize, |n, p| n.saturating_add(p.len()));
        self.write_with(len, |w| {
            for p in parts {
                w.put(p);
            }
        })
    }

    /// Writes a packet of type `ty`: descriptor, `header` (between
    /// descriptor and data, 8-aligned), `data`, zero padding. Returns
    /// whether the consumer must be signalled.
    #[must_use = "the consumer may need a signal"]
    #[inline]
    pub fn write_packet(
        &mut self,
        ty: PacketType,
        flags: PacketFlags,
        trans_id: u64,
        header: &[u8],
        data: &[u8],
    ) -> Result<bool, RingError> {
        let d = descriptor(ty, flags, trans_id, header.len(), data.len())?;
        self.write_with(d.len(), |w| {
            w.put_descriptor(&d);
            w.put(header);
            w.put(data);
        })
    }

    /// Writes an in-band data packet; with
    /// [`PacketFlags::COMPLETION_REQUESTED`] the other side answers with a
    /// completion carrying the same `trans_id`.
    #[must_use = "the consumer may need a signal"]
    #[inline]
    pub fn write_inband(
        &mut self,
        trans_id: u64,
        flags: PacketFlags,
        data: &[u8],
    ) -> Result<bool, RingError> {
        self.write_packet(PacketType::DATA_INBAND, flags, trans_id, &[], data)
    }

    /// Writes the completion of the request whose descriptor is `request`.
    #[must_use = "the consumer may need a signal"]
    pub fn write_completion(
        &mut self,
        request: &PacketDescriptor,
        data: &[u8],
    ) -> Result<bool, RingError> {
        self.write_packet(
            PacketType::COMP,
            PacketFlags::NONE,
            request.trans_id,
            &[],
            data,
        )
    }

    /// Writes a GPA-direct packet: the ranges (checked like a GPADL's) go
    /// between descriptor and data.
    #[must_use = "the consumer may need a signal"]
    pub fn write_gpa_direct(
        &mut self,
        trans_id: u64,
        flags: PacketFlags,
        ranges: &[GpadlRange<'_>],
        data: &[u8],
    ) -> Result<bool, RingError> {
        let mut header_len = core::mem::size_of::<GpaDirectHeader>();
        for (index, r) in ranges.iter().enumerate() {
            let head = super::message::GpaRange {
                byte_count: r.byte_count,
                byte_offset: r.byte_offset,
            };
            if head.page_count() != Some(r.pfns.len() as u64) {
                return Err(RingError::Packet(PacketError::BadGpaRanges {
                    range_count: index as u32,
                }));
            }
            header_len = header_len.saturating_add(8 + 8 * r.pfns.len());
        }
        let gh = GpaDirectHeader {
            reserved: 0,
            range_count: ranges.len() as u32,
        };
        let d = descriptor(
            PacketType::DATA_USING_GPA_DIRECT,
            flags,
            trans_id,
            header_len,
            data.len(),
        )?;
        self.write_with(d.len(), |w| {
            w.put_descriptor(&d);
            w.put(gh.as_bytes());
            for r in ranges {
                let head = super::message::GpaRange {
                    byte_count: r.byte_count,
                    byte_offset: r.byte_offset,
                };
                w.put(head.as_bytes());
                w.put(r.pfns.as_bytes());
            }
            w.put(data);
        })
    }
}

/// The reading end of a ring.
///
/// INVARIANT: `read` (published) and `cursor` (next packet, not yet
/// published) are inside the data area and 8-aligned, and `cursor` is at
/// most the published write index away from `read`.
#[derive(Debug)]
pub struct RingConsumer<M> {
    mem: M,
    size: u32,
    read: u32,
    cursor: u32,
}

impl<M: RingMemory> RingConsumer<M> {
    /// Takes the reading end of `mem`, continuing from its `read_index`.
    pub fn new(mem: M) -> Result<Self, RingError> {
        let size = check_size(mem.data_len())?;
        let read = load_index(&mem, size, HeaderField::ReadIndex)?;
        Ok(Self {
            mem,
            size,
            read,
            cursor: read,
        })
    }

    /// The memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Bytes in the data area.
    pub fn data_len(&self) -> u32 {
        self.size
    }

    /// The read index as this side last published it.
    pub fn read_index(&self) -> u32 {
        self.read
    }

    /// Bytes published and not yet read (from the cursor).
    #[inline]
    pub fn bytes_available(&self) -> Result<u32, RingError> {
        let write = load_index(&self.mem, self.size, HeaderField::WriteIndex)?;
        Ok(distance(self.cursor, write, self.size))
    }

    /// Copies the next packet into `buf` and moves the cursor past it;
    /// `None` if the ring is empty. The read index is published only by
    /// [`Self::commit`], so the space stays reserved until then. On error
    /// nothing moves.
    #[inline]
    pub fn read_packet<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<Packet<'b>>, RingError> {
        let avail = self.bytes_available()? as usize;
        if avail == 0 {
            return Ok(None);
        }
        if avail < DESCRIPTOR_SIZE + TRAILER_SIZE {
            return Err(RingError::Truncated { avail });
        }
        let size = self.size as usize;
        let pos = self.cursor as usize;
        // One load of each descriptor word: the checks and the caller see
        // the same values, whatever the other side does meanwhile.
        let w0 = self.mem.read_word(pos);
        let w1 = self.mem.read_word(advance(pos, 8, size));
        let desc = descriptor_from_words(w0, w1);
        let (offset, len) = (desc.data_offset(), desc.len());
        if len < DESCRIPTOR_SIZE || len + TRAILER_SIZE > avail {
            return Err(RingError::BadPacketLength { len, avail });
        }
        if offset < DESCRIPTOR_SIZE || offset > len {
            return Err(RingError::BadPacketOffset { offset, len });
        }
        let have = buf.len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(RingError::BufferTooSmall { need: len, have });
        };
        // Here `DESCRIPTOR_SIZE <= len` and `len + TRAILER_SIZE <= avail <
        // size`: the descriptor as checked, then the rest in one run.
        if let Some((head, rest)) = out.split_first_chunk_mut::<DESCRIPTOR_SIZE>() {
            *head = (u128::from(w1) << 64 | u128::from(w0)).to_le_bytes();
            copy_out(&self.mem, size, advance(pos, DESCRIPTOR_SIZE, size), rest);
        }
        self.cursor = advance(pos, len + TRAILER_SIZE, size) as u32;
        Ok(Some(Packet { desc, bytes: out }))
    }

    /// Publishes the read index (frees what was read) and decides whether
    /// the producer must be signalled: only if it asked
    /// ([`FEAT_PENDING_SEND_SZ`] and `pending_send_sz`) and the free space
    /// just crossed what it waits for (Linux's `hv_pkt_iter_close`).
    #[must_use = "the producer may need a signal"]
    #[inline]
    pub fn commit(&mut self) -> Result<bool, RingError> {
        let start = self.read;
        if self.cursor == start {
            return Ok(false);
        }
        // Our copies are done before the producer may reuse the space.
        self.mem.store_release(HeaderField::ReadIndex, self.cursor);
        self.read = self.cursor;
        if self.mem.load_acquire(HeaderField::FeatureBits) & FEAT_PENDING_SEND_SZ == 0 {
            return Ok(false);
        }
        // The read index must be visible before pending_send_sz is sampled:
        // a producer that sets it after our sample must see our index.
        self.mem.fence();
        let pending = self.mem.load_acquire(HeaderField::PendingSendSize);
        if pending == 0 {
            return Ok(false);
        }
        let write = load_index(&self.mem, self.size, HeaderField::WriteIndex)?;
        let free_now = self.size - distance(self.read, write, self.size);
        let freed = distance(start, self.read, self.size);
        // Signal on the transition from "not enough" to "enough" only.
        if free_now.saturating_sub(freed) > pending {
            return Ok(false);
        }
        Ok(free_now > pending)
    }

    /// Reads one packet and commits it; the flag says whether the producer
    /// must be signalled.
    pub fn read_and_commit<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<(Packet<'b>, bool)>, RingError> {
        let size = self.size as usize;
        match self.read_packet(buf)? {
            None => Ok(None),
            Some(p) => {
                let signal = self.commit()?;
                debug_assert!(p.bytes.len() < size);
                Ok(Some((p, signal)))
            }
        }
    }

    /// Tells the producer not to signal: this side is draining
    /// (`hv_begin_read`).
    pub fn mask_interrupts(&self) {
        self.mem.store_release(HeaderField::InterruptMask, 1);
        self.mem.fence();
    }

    /// Asks for signals again and re-checks (`hv_end_read`): returns whether
    /// packets arrived meanwhile, which the producer did not signal, so the
    /// caller must keep reading (and mask again).
    pub fn unmask_interrupts(&self) -> Result<bool, RingError> {
        self.mem.store_release(HeaderField::InterruptMask, 0);
        self.mem.fence();
        Ok(self.bytes_available()? != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::packet::PacketFlags;
    use super::*;

    /// A ring of `n` data bytes (leaked: a test's memory lives until exit).
    fn mem(n: usize) -> LocalMemory<'static> {
        LocalMemory::new(Vec::leak(vec![0; n]))
    }

    fn bytes<const N: usize>(m: &LocalMemory<'_>, offset: usize) -> [u8; N] {
        let mut b = [0; N];
        m.read_data(offset, &mut b);
        b
    }

    #[test]
    fn header_offsets_match_hv_ring_buffer() {
        assert_eq!(HeaderField::WriteIndex.offset(), 0x0);
        assert_eq!(HeaderField::ReadIndex.offset(), 0x4);
        assert_eq!(HeaderField::InterruptMask.offset(), 0x8);
        assert_eq!(HeaderField::PendingSendSize.offset(), 0xc);
        assert_eq!(HeaderField::FeatureBits.offset(), 0x40);
        assert_eq!(RING_HEADER_SIZE, 4096);
        for (i, f) in HeaderField::ALL.into_iter().enumerate() {
            assert_eq!(f.index(), i);
        }
    }

    #[test]
    fn descriptor_words_are_the_wire_layout() {
        let d = PacketDescriptor {
            ty: PacketType::COMP,
            offset8: 0x0203,
            len8: 0x0405,
            flags: PacketFlags(0x0607),
            trans_id: 0x0809_0a0b_0c0d_0e0f,
        };
        let b = d.as_bytes();
        assert_eq!(descriptor_word(&d).to_le_bytes(), b[..8]);
        assert_eq!(d.trans_id.to_le_bytes(), b[8..]);
        assert_eq!(descriptor_from_words(descriptor_word(&d), d.trans_id), d);
        // What the producer wrote is what a byte-wise reader sees, and the
        // words come back from the bytes.
        let m = mem(64);
        m.poke(0, &[0xff; 64]);
        let mut p = RingProducer::new(&m).expect("ring");
        assert_eq!(
            p.write_packet(d.ty, d.flags, d.trans_id, &[], b"xyz"),
            Ok(true)
        );
        let raw: [u8; 16] = bytes(&m, 0);
        let want = descriptor(d.ty, d.flags, d.trans_id, 0, 3).expect("fits");
        assert_eq!(raw, want.as_bytes());
        assert_eq!(
            (m.read_word(0), m.read_word(8)),
            (descriptor_word(&want), d.trans_id)
        );
        // Padding zeroed, trailer in place.
        assert_eq!(bytes::<8>(&m, 16), *b"xyz\0\0\0\0\0");
        assert_eq!(m.read_word(24), 0);
    }

    #[test]
    fn sizes_are_checked() {
        for n in [0, 8, 24, 33] {
            assert_eq!(
                RingProducer::new(&mem(n)).err(),
                Some(RingError::BadRingSize { data_len: n })
            );
        }
        let m = mem(64);
        m.set_field(HeaderField::WriteIndex, 64);
        assert_eq!(
            RingProducer::new(&m).err(),
            Some(RingError::CorruptIndex {
                field: HeaderField::WriteIndex,
                value: 64
            })
        );
        m.set_field(HeaderField::ReadIndex, 4);
        assert_eq!(
            RingConsumer::new(&m).err(),
            Some(RingError::CorruptIndex {
                field: HeaderField::ReadIndex,
                value: 4
            })
        );
    }

    #[test]
    fn write_read_with_trailer_and_signals() {
        let m = mem(128);
        let mut p = RingProducer::new(&m).expect("ring");
        let mut c = RingConsumer::new(&m).expect("ring");
        // Empty to non-empty: signal.
        assert_eq!(
            p.write_inband(7, PacketFlags::COMPLETION_REQUESTED, b"abc"),
            Ok(true)
        );
        assert_eq!(m.field(HeaderField::WriteIndex), 32);
        // Trailer: the old write index in the high half.
        let trailer = u64::from_le_bytes(bytes::<8>(&m, 24));
        assert_eq!(trailer, 0);
        // Not empty before: no signal.
        assert_eq!(p.write_inband(8, PacketFlags::NONE, b"defgh"), Ok(false));
        let trailer = u64::from_le_bytes(bytes::<8>(&m, 56));
        assert_eq!(trailer, 32 << 32);
        assert_eq!(p.free_bytes(), Ok(64));
        let mut buf = [0u8; 64];
        let (pk, signal) = c.read_and_commit(&mut buf).expect("ok").expect("a packet");
        assert!(!signal);
        assert_eq!(
            (pk.desc.trans_id, pk.desc.ty, &pk.data()[..3]),
            (7, PacketType::DATA_INBAND, &b"abc"[..])
        );
        assert!(pk.desc.flags.contains(PacketFlags::COMPLETION_REQUESTED));
        // Answer the request on a second ring.
        let m2 = mem(64);
        let mut p2 = RingProducer::new(&m2).expect("ring");
        let desc = pk.desc;
        assert_eq!(p2.write_completion(&desc, b"ok"), Ok(true));
        let mut c2 = RingConsumer::new(&m2).expect("ring");
        let mut b2 = [0u8; 64];
        let (comp, _) = c2.read_and_commit(&mut b2).expect("ok").expect("a packet");
        assert_eq!((comp.desc.ty, comp.desc.trans_id), (PacketType::COMP, 7));
        let mut buf = [0u8; 64];
        let (pk, _) = c.read_and_commit(&mut buf).expect("ok").expect("a packet");
        assert_eq!(&pk.data()[..5], b"defgh");
        assert_eq!(c.read_packet(&mut buf), Ok(None));
        // Masked consumer: no signal even on empty to non-empty.
        c.mask_interrupts();
        assert_eq!(p.write_inband(9, PacketFlags::NONE, &[]), Ok(false));
        // Unmasking finds the packet that came meanwhile.
        assert_eq!(c.unmask_interrupts(), Ok(true));
        assert!(c.read_and_commit(&mut buf).expect("ok").is_some());
        assert_eq!(c.unmask_interrupts(), Ok(false));
    }

    #[test]
    fn never_fills_completely_and_wraps() {
        let m = mem(64);
        let mut p = RingProducer::new(&m).expect("ring");
        let mut c = RingConsumer::new(&m).expect("ring");
        // 40 bytes + trailer = 48 < 64 fits; then 16 free: a 8-byte packet
        // would need 16+8 = 24.
        assert_eq!(p.write_inband(1, PacketFlags::NONE, &[1; 24]), Ok(true));
        assert_eq!(
            p.write_inband(2, PacketFlags::NONE, &[]),
            Err(RingError::Full { need: 24, free: 16 })
        );
        // A packet taking exactly the free space is refused too.
        let mut buf = [0u8; 64];
        assert!(c.read_and_commit(&mut buf).expect("ok").is_some());
        assert_eq!(
            p.write_inband(3, PacketFlags::NONE, &[2; 40]),
            Err(RingError::Full { need: 64, free: 64 })
        );
        // Wrap: write at 48, 40 bytes, crosses the end.
        assert_eq!(p.write_inband(4, PacketFlags::NONE, &[3; 16]), Ok(true));
        assert_eq!(m.field(HeaderField::WriteIndex), 48 + 40 - 64);
        let (pk, _) = c.read_and_commit(&mut buf).expect("ok").expect("a packet");
        assert_eq!((pk.desc.trans_id, pk.data()), (4, &[3u8; 16][..]));
        assert_eq!(c.read_index(), 24);
    }

    #[test]
    fn pending_send_size_signals_on_crossing_only() {
        let m = mem(128);
        let mut p = RingProducer::new(&m).expect("ring");
        let mut c = RingConsumer::new(&m).expect("ring");
        for i in 0..3 {
            let _ = p.write_inband(i, PacketFlags::NONE, &[0; 8]).expect("fits");
        }
        // 96 used, 32 free; want 40 + 8.
        assert_eq!(
            p.write_inband(9, PacketFlags::NONE, &[0; 24]),
            Err(RingError::Full { need: 48, free: 32 })
        );
        // Without the feature bit, no signal.
        assert_eq!(p.set_pending_send_size(48), Ok(false));
        let mut buf = [0u8; 64];
        assert_eq!(
            c.read_and_commit(&mut buf).map(|r| r.map(|x| x.1)),
            Ok(Some(false))
        );
        // With it: 64 free was already enough before this read; no signal.
        p.enable_pending_send_size();
        assert_eq!(
            c.read_and_commit(&mut buf).map(|r| r.map(|x| x.1)),
            Ok(Some(false))
        );
        // Fill again and cross with the feature on.
        let _ = p
            .write_inband(10, PacketFlags::NONE, &[0; 8])
            .expect("fits");
        let _ = p
            .write_inband(11, PacketFlags::NONE, &[0; 8])
            .expect("fits");
        assert_eq!(p.free_bytes(), Ok(32));
        assert_eq!(p.set_pending_send_size(48), Ok(false));
        assert_eq!(
            c.read_and_commit(&mut buf).map(|r| r.map(|x| x.1)),
            Ok(Some(true))
        );
        assert_eq!(p.set_pending_send_size(48), Ok(true));
        p.clear_pending_send_size();
        assert_eq!(
            c.read_and_commit(&mut buf).map(|r| r.map(|x| x.1)),
            Ok(Some(false))
        );
    }

    #[test]
    fn corrupt_rings_give_errors() {
        let m = mem(128);
        let mut p = RingProducer::new(&m).expect("ring");
        let mut c = RingConsumer::new(&m).expect("ring");
        let _ = p.write_inband(1, PacketFlags::NONE, &[5; 8]).expect("fits");
        let mut small = [0u8; 16];
        assert_eq!(
            c.read_packet(&mut small),
            Err(RingError::BufferTooSmall { need: 24, have: 16 })
        );
        // Nothing consumed by the failure.
        assert_eq!(c.bytes_available(), Ok(32));
        // Write index out of range or unaligned.
        m.set_field(HeaderField::WriteIndex, 200);
        let mut buf = [0u8; 128];
        assert_eq!(
            c.read_packet(&mut buf),
            Err(RingError::CorruptIndex {
                field: HeaderField::WriteIndex,
                value: 200
            })
        );
        m.set_field(HeaderField::WriteIndex, 12);
        assert!(matches!(
            c.read_packet(&mut buf),
            Err(RingError::CorruptIndex { .. })
        ));
        m.set_field(HeaderField::WriteIndex, 16);
        assert_eq!(
            c.read_packet(&mut buf),
            Err(RingError::Truncated { avail: 16 })
        );
        m.set_field(HeaderField::WriteIndex, 32);
        // len8 beyond the published bytes.
        m.poke(4, &[4]);
        assert_eq!(
            c.read_packet(&mut buf),
            Err(RingError::BadPacketLength { len: 32, avail: 32 })
        );
        m.poke(4, &[1]);
        assert_eq!(
            c.read_packet(&mut buf),
            Err(RingError::BadPacketLength { len: 8, avail: 32 })
        );
        m.poke(4, &[3]);
        m.poke(2, &[4]);
        assert_eq!(
            c.read_packet(&mut buf),
            Err(RingError::BadPacketOffset {
                offset: 32,
                len: 24
            })
        );
        m.poke(2, &[2]);
        assert!(c.read_packet(&mut buf).expect("valid again").is_some());
        // Producer: a corrupt read index.
        m.set_field(HeaderField::ReadIndex, 0xffff_fff8);
        assert!(matches!(
            p.write_inband(1, PacketFlags::NONE, &[]),
            Err(RingError::CorruptIndex { .. })
        ));
        assert_eq!(
            p.write_raw(&[&[0; 12]]),
            Err(RingError::Unaligned { len: 12 })
        );
    }

    #[test]
    fn gpa_direct_through_the_ring() {
        let m = mem(256);
        let mut p = RingProducer::new(&m).expect("ring");
        let mut c = RingConsumer::new(&m).expect("ring");
        let pfns = [0x100u64, 0x101];
        let r = [GpadlRange {
            byte_count: 4096,
            byte_offset: 512,
            pfns: &pfns,
        }];
        assert_eq!(
            p.write_gpa_direct(3, PacketFlags::COMPLETION_REQUESTED, &r, b"cmd"),
            Ok(true)
        );
        let bad = [GpadlRange {
            byte_count: 4096,
            byte_offset: 0,
            pfns: &pfns,
        }];
        assert!(p
            .write_gpa_direct(3, PacketFlags::NONE, &bad, b"cmd")
            .is_err());
        let mut buf = [0u8; 256];
        let pk = c.read_packet(&mut buf).expect("ok").expect("a packet");
        assert_eq!(pk.desc.ty, PacketType::DATA_USING_GPA_DIRECT);
        assert_eq!(pk.desc.data_offset(), 16 + 8 + 8 + 16);
        assert_eq!(&pk.data()[..3], b"cmd");
        let ranges: Vec<_> = pk.gpa_ranges().expect("fit").collect();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].0.byte_offset, 512);
        assert_eq!(ranges[0].1, pfns.as_bytes());
        assert_eq!(c.commit(), Ok(false));
        assert_eq!(c.commit(), Ok(false));
    }
}
