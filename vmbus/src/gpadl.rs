// SPDX-License-Identifier: GPL-2.0

//! GPADLs (guest physical address descriptor lists) on the wire: splitting
//! a page list into one GPADL_HEADER and as many GPADL_BODY messages as it
//! takes (the guest side, as `create_gpadl_header` in Linux's `channel.c`),
//! and assembling and checking them again (the host side), without
//! allocation: the caller provides the storage for the words.
//!
//! The range data is a stream of u64 words, `range_buflen / 8` of them: for
//! each range one head word ([`GpaRange`]: `byte_count` in the low half,
//! `byte_offset` in the high half) and then one PFN per page the range
//! spans. GPADL_HEADER carries the first words, each GPADL_BODY the next.
//!
//! `msgnumber` in GPADL_BODY: Linux never sets it (its bodies are zeroed),
//! and OpenVMM treats it as reserved; so the assembler accepts 0 or the
//! body's 1-based position, and the splitter writes 0 as Linux does.

use zerocopy::IntoBytes as _;

use super::message::{
    encode_with_tail, ChannelMessage, EncodeError, GpaRange, GpadlBody, GpadlHeader,
    MAX_MESSAGE_SIZE,
};
use super::parse::{GpadlBodyView, GpadlHeaderView};

/// Range data words that fit in a GPADL_HEADER (range heads included).
pub const HEADER_MAX_WORDS: usize = (MAX_MESSAGE_SIZE - GpadlHeader::LEN) / 8;
/// PFNs of a single-range GPADL that fit in the GPADL_HEADER (Linux's
/// first `pfncount`): 26.
pub const HEADER_MAX_PFNS: usize = HEADER_MAX_WORDS - 1;
/// PFNs that fit in one GPADL_BODY: 28.
pub const BODY_MAX_PFNS: usize = (MAX_MESSAGE_SIZE - GpadlBody::LEN) / 8;
/// The most range data words a GPADL can have (`range_buflen` is a u16).
pub const MAX_WORDS: usize = u16::MAX as usize / 8;

const _: () = assert!(HEADER_MAX_PFNS == 26 && BODY_MAX_PFNS == 28);

/// How many messages (header included) carry `words` range data words.
pub const fn message_count(words: usize) -> usize {
    if words <= HEADER_MAX_WORDS {
        1
    } else {
        1 + (words - HEADER_MAX_WORDS).div_ceil(BODY_MAX_PFNS)
    }
}

/// One range of a GPADL as the caller sees it: its head and its PFNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpadlRange<'a> {
    /// Bytes in the range.
    pub byte_count: u32,
    /// Offset of the range in its first page.
    pub byte_offset: u32,
    /// One PFN per page the range spans.
    pub pfns: &'a [u64],
}

impl GpadlRange<'_> {
    fn head(&self) -> u64 {
        u64::from(self.byte_count) | (u64::from(self.byte_offset) << 32)
    }
}

/// Why a GPADL cannot be split or assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpadlError {
    /// No ranges, or more than a u16 counts.
    BadRangeCount {
        /// The count.
        count: usize,
    },
    /// A range whose offset is not inside a page, that is empty, or whose
    /// PFN count is not the number of pages it spans.
    BadRange {
        /// Index of the range.
        index: usize,
        /// Its `byte_count`.
        byte_count: u32,
        /// Its `byte_offset`.
        byte_offset: u32,
        /// PFNs present for it.
        pfns: usize,
    },
    /// More range data than `range_buflen` can describe.
    TooLarge {
        /// Words needed.
        words: usize,
    },
    /// The caller's storage is smaller than the GPADL.
    StorageTooSmall {
        /// Words needed.
        need: usize,
        /// Words provided.
        have: usize,
    },
    /// A GPADL_BODY for another GPADL than the one being assembled.
    WrongGpadl {
        /// The handle being assembled.
        expected: u32,
        /// The body's handle.
        got: u32,
    },
    /// A GPADL_BODY whose `msgnumber` is neither 0 nor its position.
    BadMsgNumber {
        /// The position (1-based).
        expected: u32,
        /// What it said.
        got: u32,
    },
    /// More words than `range_buflen` announced.
    TooManyWords {
        /// Words announced.
        expected: usize,
        /// Words received so far, this message included.
        got: usize,
    },
    /// A body message without a word, which would never finish a GPADL.
    EmptyBody,
    /// `finish` before all words arrived.
    Incomplete {
        /// Words received.
        have: usize,
        /// Words announced.
        need: usize,
    },
    /// The ranges do not use up the words exactly.
    RangeCountMismatch {
        /// `rangecount` from the header.
        rangecount: u16,
        /// Words used by that many ranges, or the total if they ran out.
        used: usize,
        /// Words received.
        words: usize,
    },
}

impl core::fmt::Display for GpadlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BadRangeCount { count } => write!(f, "GPADL with {} ranges", count),
            Self::BadRange {
                index,
                byte_count,
                byte_offset,
                pfns,
            } => write!(
                f,
                "GPADL range {}: {} bytes at offset {} do not match {} pages",
                index, byte_count, byte_offset, pfns
            ),
            Self::TooLarge { words } => write!(f, "GPADL of {} words exceeds range_buflen", words),
            Self::StorageTooSmall { need, have } => {
                write!(f, "GPADL needs {} words, storage has {}", need, have)
            }
            Self::WrongGpadl { expected, got } => {
                write!(
                    f,
                    "GPADL body for {:#x} while assembling {:#x}",
                    got, expected
                )
            }
            Self::BadMsgNumber { expected, got } => {
                write!(f, "GPADL body msgnumber {} at position {}", got, expected)
            }
            Self::TooManyWords { expected, got } => {
                write!(f, "GPADL has {} words, announced {}", got, expected)
            }
            Self::EmptyBody => write!(f, "GPADL body without PFNs"),
            Self::Incomplete { have, need } => {
                write!(f, "GPADL incomplete: {} of {} words", have, need)
            }
            Self::RangeCountMismatch {
                rangecount,
                used,
                words,
            } => {
                write!(
                    f,
                    "GPADL {} ranges use {} of {} words",
                    rangecount, used, words
                )
            }
        }
    }
}

/// The guest side: cuts a GPADL into its messages, one per call to
/// [`Self::next_message`].
#[derive(Clone, Debug)]
pub struct GpadlSplitter<'a> {
    child_relid: u32,
    gpadl: u32,
    ranges: &'a [GpadlRange<'a>],
    total_words: usize,
    sent_words: usize,
    /// Cursor: range index and word within it (0 = head, k = PFN k-1).
    range: usize,
    within: usize,
}

impl<'a> GpadlSplitter<'a> {
    /// Checks the ranges (each PFN list must match the pages its offset and
    /// length span) and prepares the messages.
    pub fn new(
        child_relid: u32,
        gpadl: u32,
        ranges: &'a [GpadlRange<'a>],
    ) -> Result<Self, GpadlError> {
        if ranges.is_empty() || ranges.len() > u16::MAX as usize {
            return Err(GpadlError::BadRangeCount {
                count: ranges.len(),
            });
        }
        let mut total_words = 0usize;
        for (index, r) in ranges.iter().enumerate() {
            let head = GpaRange {
                byte_count: r.byte_count,
                byte_offset: r.byte_offset,
            };
            match head.page_count() {
                Some(p) if p != 0 && p == r.pfns.len() as u64 => {}
                _ => {
                    return Err(GpadlError::BadRange {
                        index,
                        byte_count: r.byte_count,
                        byte_offset: r.byte_offset,
                        pfns: r.pfns.len(),
                    })
                }
            }
            total_words = total_words.saturating_add(1 + r.pfns.len());
        }
        if total_words > MAX_WORDS {
            return Err(GpadlError::TooLarge { words: total_words });
        }
        Ok(Self {
            child_relid,
            gpadl,
            ranges,
            total_words,
            sent_words: 0,
            range: 0,
            within: 0,
        })
    }

    /// Range data words in all messages.
    pub fn total_words(&self) -> usize {
        self.total_words
    }

    /// Messages in all, header included.
    pub fn message_count(&self) -> usize {
        message_count(self.total_words)
    }

    fn next_word(&mut self) -> Option<u64> {
        let r = self.ranges.get(self.range)?;
        let w = if self.within == 0 {
            r.head()
        } else {
            *r.pfns.get(self.within - 1)?
        };
        self.within += 1;
        if self.within > r.pfns.len() {
            self.range += 1;
            self.within = 0;
        }
        self.sent_words += 1;
        Some(w)
    }

    /// Writes the next message into `buf` and returns its length, or `None`
    /// when all are written. A buffer of [`MAX_MESSAGE_SIZE`] always fits.
    pub fn next_message(&mut self, buf: &mut [u8]) -> Option<Result<usize, EncodeError>> {
        let first = self.sent_words == 0;
        if !first && self.sent_words >= self.total_words {
            return None;
        }
        let (fixed_len, max_words) = if first {
            (GpadlHeader::LEN, HEADER_MAX_WORDS)
        } else {
            (GpadlBody::LEN, BODY_MAX_PFNS)
        };
        let words = max_words.min(self.total_words - self.sent_words);
        let len = fixed_len + words * 8;
        let room = buf.len().min(MAX_MESSAGE_SIZE);
        if len > room {
            return Some(Err(EncodeError::NoRoom { need: len, room }));
        }
        let fixed = if first {
            let h = GpadlHeader {
                child_relid: self.child_relid,
                gpadl: self.gpadl,
                // Checked against MAX_WORDS in new().
                range_buflen: (self.total_words * 8) as u16,
                rangecount: self.ranges.len() as u16,
            };
            encode_with_tail(&h, &[], buf)
        } else {
            encode_with_tail(
                &GpadlBody {
                    msgnumber: 0,
                    gpadl: self.gpadl,
                },
                &[],
                buf,
            )
        };
        if let Err(e) = fixed {
            return Some(Err(e));
        }
        for chunk in buf[fixed_len..len].chunks_exact_mut(8) {
            let w = self.next_word().unwrap_or(0);
            chunk.copy_from_slice(w.as_bytes());
        }
        Some(Ok(len))
    }
}

/// The host side: collects a GPADL's words from its header and body
/// messages into caller storage and checks them.
#[derive(Debug)]
pub struct GpadlAssembler<'s> {
    header: super::message::GpadlHeader,
    words: &'s mut [u64],
    need: usize,
    have: usize,
    bodies: u32,
}

impl<'s> GpadlAssembler<'s> {
    /// Starts from a parsed GPADL_HEADER; `storage` must hold
    /// `range_buflen / 8` words.
    pub fn new(header: &GpadlHeaderView<'_>, storage: &'s mut [u64]) -> Result<Self, GpadlError> {
        let h = header.header;
        if h.rangecount == 0 {
            return Err(GpadlError::BadRangeCount { count: 0 });
        }
        let need = usize::from(h.range_buflen) / 8;
        if storage.len() < need {
            return Err(GpadlError::StorageTooSmall {
                need,
                have: storage.len(),
            });
        }
        let mut this = Self {
            header: h,
            words: storage,
            need,
            have: 0,
            bodies: 0,
        };
        this.push(header.words())?;
        Ok(this)
    }

    fn push(&mut self, words: super::parse::Words<'_>) -> Result<(), GpadlError> {
        let got = self.have + words.len();
        if got > self.need {
            return Err(GpadlError::TooManyWords {
                expected: self.need,
                got,
            });
        }
        for (slot, w) in self.words[self.have..got].iter_mut().zip(words) {
            *slot = w;
        }
        self.have = got;
        Ok(())
    }

    /// The fixed part of the GPADL_HEADER.
    pub fn header(&self) -> GpadlHeader {
        self.header
    }

    /// Whether every announced word has arrived.
    pub fn is_complete(&self) -> bool {
        self.have == self.need
    }

    /// Adds a GPADL_BODY; returns whether the GPADL is now complete.
    pub fn add_body(&mut self, body: &GpadlBodyView<'_>) -> Result<bool, GpadlError> {
        if body.body.gpadl != self.header.gpadl {
            return Err(GpadlError::WrongGpadl {
                expected: self.header.gpadl,
                got: body.body.gpadl,
            });
        }
        let position = self.bodies.saturating_add(1);
        if body.body.msgnumber != 0 && body.body.msgnumber != position {
            return Err(GpadlError::BadMsgNumber {
                expected: position,
                got: body.body.msgnumber,
            });
        }
        let words = body.words();
        if words.len() == 0 {
            return Err(GpadlError::EmptyBody);
        }
        self.push(words)?;
        self.bodies = position;
        Ok(self.is_complete())
    }

    /// Checks the ranges against the words and returns them.
    pub fn finish(self) -> Result<GpadlRanges<'s>, GpadlError> {
        if !self.is_complete() {
            return Err(GpadlError::Incomplete {
                have: self.have,
                need: self.need,
            });
        }
        let words: &'s [u64] = &self.words[..self.need];
        let rangecount = self.header.rangecount;
        let mut pos = 0usize;
        for index in 0..usize::from(rangecount) {
            let Some(&head) = words.get(pos) else {
                return Err(GpadlError::RangeCountMismatch {
                    rangecount,
                    used: pos,
                    words: words.len(),
                });
            };
            let r = GpaRange {
                byte_count: head as u32,
                byte_offset: (head >> 32) as u32,
            };
            let remaining = (words.len() - pos - 1) as u64;
            match r.page_count() {
                Some(p) if p != 0 && p <= remaining => pos += 1 + p as usize,
                _ => {
                    return Err(GpadlError::BadRange {
                        index,
                        byte_count: r.byte_count,
                        byte_offset: r.byte_offset,
                        pfns: remaining as usize,
                    })
                }
            }
        }
        if pos != words.len() {
            return Err(GpadlError::RangeCountMismatch {
                rangecount,
                used: pos,
                words: words.len(),
            });
        }
        Ok(GpadlRanges {
            header: self.header,
            words,
        })
    }
}

/// A complete, checked GPADL: its ranges over the caller's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpadlRanges<'s> {
    header: GpadlHeader,
    words: &'s [u64],
}

impl<'s> GpadlRanges<'s> {
    /// The channel it belongs to.
    pub fn child_relid(&self) -> u32 {
        self.header.child_relid
    }

    /// Its handle.
    pub fn gpadl(&self) -> u32 {
        self.header.gpadl
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = GpadlRange<'s>> + 's {
        let words = self.words;
        let mut pos = 0usize;
        core::iter::from_fn(move || {
            let head = *words.get(pos)?;
            let r = GpaRange {
                byte_count: head as u32,
                byte_offset: (head >> 32) as u32,
            };
            // finish() checked every range against the words.
            let pages = r.page_count().unwrap_or(0) as usize;
            let pfns = words.get(pos + 1..pos + 1 + pages)?;
            pos += 1 + pages;
            Some(GpadlRange {
                byte_count: r.byte_count,
                byte_offset: r.byte_offset,
                pfns,
            })
        })
    }

    /// Total bytes over all ranges.
    pub fn byte_count(&self) -> u64 {
        self.ranges().map(|r| u64::from(r.byte_count)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse, Message};
    use super::*;

    /// (byte_count, byte_offset, pfns) of each range.
    type Ranges = Vec<(u32, u32, Vec<u64>)>;

    fn split_and_assemble(ranges: &[GpadlRange<'_>]) -> (usize, Vec<u64>, Ranges) {
        let mut s = GpadlSplitter::new(7, 0x1234, ranges).expect("valid");
        let count = s.message_count();
        let mut storage = vec![0u64; s.total_words()];
        let mut msgs = Vec::new();
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        while let Some(n) = s.next_message(&mut buf) {
            msgs.push(buf[..n.expect("fits")].to_vec());
        }
        assert_eq!(msgs.len(), count);
        let Ok(Message::GpadlHeader(h)) = parse(&msgs[0]) else {
            panic!("first is a header")
        };
        assert_eq!((h.header.child_relid, h.header.gpadl), (7, 0x1234));
        let mut a = GpadlAssembler::new(&h, &mut storage).expect("starts");
        for (i, m) in msgs[1..].iter().enumerate() {
            let Ok(Message::GpadlBody(b)) = parse(m) else {
                panic!("then bodies")
            };
            assert_eq!(a.add_body(&b), Ok(i + 2 == msgs.len()));
        }
        assert!(a.is_complete());
        let g = a.finish().expect("valid");
        let out = g
            .ranges()
            .map(|r| (r.byte_count, r.byte_offset, r.pfns.to_vec()))
            .collect();
        (count, storage.clone(), out)
    }

    #[test]
    fn limits_match_linux() {
        assert_eq!(HEADER_MAX_WORDS, 27);
        assert_eq!(message_count(27), 1);
        assert_eq!(message_count(28), 2);
        assert_eq!(message_count(27 + 28), 2);
        assert_eq!(message_count(27 + 29), 3);
    }

    #[test]
    fn single_range_like_linux_ring() {
        for pages in [1usize, 26, 27, 54, 55, 200] {
            let pfns: Vec<u64> = (0..pages as u64).map(|i| 0x1000 + i * 3).collect();
            let r = [GpadlRange {
                byte_count: (pages * 4096) as u32,
                byte_offset: 0,
                pfns: &pfns,
            }];
            let (count, _, out) = split_and_assemble(&r);
            assert_eq!(count, message_count(pages + 1), "{pages}");
            assert_eq!(out, vec![((pages * 4096) as u32, 0, pfns.clone())]);
        }
    }

    #[test]
    fn multi_range_heads_may_fall_in_bodies() {
        let a: Vec<u64> = (0..30).collect();
        let b = [99u64, 100];
        let r = [
            GpadlRange {
                byte_count: 30 * 4096 - 10,
                byte_offset: 10,
                pfns: &a,
            },
            GpadlRange {
                byte_count: 5000,
                byte_offset: 100,
                pfns: &b,
            },
        ];
        let (_, words, out) = split_and_assemble(&r);
        assert_eq!(words.len(), 34);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], (5000, 100, b.to_vec()));
    }

    #[test]
    fn splitter_rejects_inconsistent_ranges() {
        let p = [1u64, 2];
        let bad = [GpadlRange {
            byte_count: 4096,
            byte_offset: 0,
            pfns: &p,
        }];
        assert_eq!(
            GpadlSplitter::new(1, 1, &bad).err(),
            Some(GpadlError::BadRange {
                index: 0,
                byte_count: 4096,
                byte_offset: 0,
                pfns: 2
            })
        );
        assert_eq!(
            GpadlSplitter::new(1, 1, &[]).err(),
            Some(GpadlError::BadRangeCount { count: 0 })
        );
        let many: Vec<u64> = vec![0; 9000];
        let big = [GpadlRange {
            byte_count: 9000 * 4096,
            byte_offset: 0,
            pfns: &many,
        }];
        assert_eq!(
            GpadlSplitter::new(1, 1, &big).err(),
            Some(GpadlError::TooLarge { words: 9001 })
        );
    }

    fn header_msg(range_buflen: u16, rangecount: u16, words: &[u64]) -> Vec<u8> {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let h = GpadlHeader {
            child_relid: 1,
            gpadl: 5,
            range_buflen,
            rangecount,
        };
        let n = encode_with_tail(&h, words.as_bytes(), &mut buf).expect("fits");
        buf[..n].to_vec()
    }

    fn body(m: &[u8]) -> GpadlBodyView<'_> {
        match parse(m) {
            Ok(Message::GpadlBody(b)) => b,
            other => panic!("not a body: {other:?}"),
        }
    }

    fn body_msg(msgnumber: u32, gpadl: u32, words: &[u64]) -> Vec<u8> {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let n = encode_with_tail(&GpadlBody { msgnumber, gpadl }, words.as_bytes(), &mut buf)
            .expect("fits");
        buf[..n].to_vec()
    }

    #[test]
    fn assembler_checks_everything() {
        let head = |count: u32, off: u32| u64::from(count) | (u64::from(off) << 32);
        let mut st = [0u64; 8];
        // Storage too small.
        let m = header_msg(64, 1, &[head(4096, 0), 1]);
        let Ok(Message::GpadlHeader(h)) = parse(&m) else {
            panic!()
        };
        assert_eq!(
            GpadlAssembler::new(&h, &mut st[..2]).err(),
            Some(GpadlError::StorageTooSmall { need: 8, have: 2 })
        );
        // Wrong gpadl, bad msgnumber, too many words, incomplete.
        let mut a = GpadlAssembler::new(&h, &mut st).expect("starts");
        let m = body_msg(1, 6, &[1]);
        let b = body(&m);
        assert_eq!(
            a.add_body(&b),
            Err(GpadlError::WrongGpadl {
                expected: 5,
                got: 6
            })
        );
        let m = body_msg(2, 5, &[1]);
        let b = body(&m);
        assert_eq!(
            a.add_body(&b),
            Err(GpadlError::BadMsgNumber {
                expected: 1,
                got: 2
            })
        );
        let m = body_msg(1, 5, &[]);
        let b = body(&m);
        assert_eq!(a.add_body(&b), Err(GpadlError::EmptyBody));
        let m = body_msg(1, 5, &[0; 7]);
        let b = body(&m);
        assert_eq!(
            a.add_body(&b),
            Err(GpadlError::TooManyWords {
                expected: 8,
                got: 9
            })
        );
        assert_eq!(
            a.finish().err(),
            Some(GpadlError::Incomplete { have: 2, need: 8 })
        );
        // One page announced but words left over.
        let m = header_msg(24, 1, &[head(4096, 0), 1, 2]);
        let Ok(Message::GpadlHeader(h)) = parse(&m) else {
            panic!()
        };
        let a = GpadlAssembler::new(&h, &mut st).expect("starts");
        assert_eq!(
            a.finish().err(),
            Some(GpadlError::RangeCountMismatch {
                rangecount: 1,
                used: 2,
                words: 3
            })
        );
        // Two pages announced (offset pushes it over) but one PFN.
        let m = header_msg(16, 1, &[head(4096, 1), 1]);
        let Ok(Message::GpadlHeader(h)) = parse(&m) else {
            panic!()
        };
        let a = GpadlAssembler::new(&h, &mut st).expect("starts");
        assert_eq!(
            a.finish().err(),
            Some(GpadlError::BadRange {
                index: 0,
                byte_count: 4096,
                byte_offset: 1,
                pfns: 1
            })
        );
        // Offset outside the page, and a zero-length range.
        for bad in [head(1, 4096), head(0, 0)] {
            let m = header_msg(16, 1, &[bad, 1]);
            let Ok(Message::GpadlHeader(h)) = parse(&m) else {
                panic!()
            };
            let a = GpadlAssembler::new(&h, &mut st).expect("starts");
            assert!(matches!(
                a.finish(),
                Err(GpadlError::BadRange { index: 0, .. })
            ));
        }
        // Two ranges announced, one present.
        let m = header_msg(16, 2, &[head(4096, 0), 1]);
        let Ok(Message::GpadlHeader(h)) = parse(&m) else {
            panic!()
        };
        let a = GpadlAssembler::new(&h, &mut st).expect("starts");
        assert_eq!(
            a.finish().err(),
            Some(GpadlError::RangeCountMismatch {
                rangecount: 2,
                used: 2,
                words: 2
            })
        );
        // Linux-style zero msgnumbers are fine.
        let m = header_msg(32, 1, &[head(3 * 4096, 0)]);
        let Ok(Message::GpadlHeader(h)) = parse(&m) else {
            panic!()
        };
        let mut a = GpadlAssembler::new(&h, &mut st).expect("starts");
        let m = body_msg(0, 5, &[7, 8]);
        let b = body(&m);
        assert_eq!(a.add_body(&b), Ok(false));
        let m = body_msg(2, 5, &[9]);
        let b = body(&m);
        assert_eq!(a.add_body(&b), Ok(true));
        let g = a.finish().expect("valid");
        assert_eq!(g.byte_count(), 3 * 4096);
        assert_eq!((g.child_relid(), g.gpadl()), (1, 5));
        assert_eq!(
            g.ranges().next().map(|r| r.pfns.to_vec()),
            Some(vec![7, 8, 9])
        );
    }
}
