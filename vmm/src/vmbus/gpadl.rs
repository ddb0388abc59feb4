// SPDX-License-Identifier: GPL-2.0

//! The partition's GPADLs: assembly of GPADL_HEADER and GPADL_BODY
//! messages (with the shared [`GpadlAssembler`]), validation of every PFN
//! against guest RAM, and the table of established GPADLs by handle.
//!
//! Limits keep a guest from making hvhost allocate without bound: at most
//! [`MAX_PENDING`] GPADLs in assembly and [`MAX_GPADLS`] established, and
//! no more pages in all of them than the guest has RAM. A GPADL names its
//! channel; it goes when the guest tears it down, when the channel's relid
//! is released, or when the guest unloads VMBus.

use std::collections::BTreeMap;

use vmbus::gpadl::{GpadlAssembler, GpadlError, GpadlRange};
use vmbus::message::HV_PAGE_SIZE;
use vmbus::parse::{GpadlBodyView, GpadlHeaderView};

use crate::hyperv::guest_mem::GuestPages;

/// GPADLs being assembled at once.
pub const MAX_PENDING: usize = 64;
/// GPADLs established at once.
pub const MAX_GPADLS: usize = 1024;

/// Why a GPADL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GpadlRefusal {
    /// The messages do not form a valid GPADL.
    #[error("malformed GPADL {handle:#x}: {reason}")]
    Malformed {
        /// The handle.
        handle: u32,
        /// What the shared assembler said.
        reason: String,
    },
    /// The handle is in use (established or being assembled).
    #[error("GPADL handle {0:#x} is already in use")]
    HandleInUse(u32),
    /// A PFN outside guest RAM.
    #[error("GPADL {handle:#x}: PFN {pfn:#x} (range {range}) is not guest RAM")]
    NotRam {
        /// The handle.
        handle: u32,
        /// The PFN.
        pfn: u64,
        /// Index of its range.
        range: usize,
    },
    /// Too many GPADLs, or more pages than the guest has.
    #[error("GPADL {handle:#x}: limit reached ({what})")]
    Limit {
        /// The handle.
        handle: u32,
        /// Which limit.
        what: &'static str,
    },
    /// A GPADL_BODY for a GPADL that is not being assembled.
    #[error("GPADL_BODY for GPADL {0:#x}, which is not being assembled")]
    UnknownBody(u32),
}

/// One range of an established GPADL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// Bytes in the range.
    pub byte_count: u32,
    /// Offset in the first page.
    pub byte_offset: u32,
    /// One PFN per page.
    pub pfns: Vec<u64>,
}

/// An established GPADL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpadl {
    /// The channel it was created for.
    pub relid: u32,
    /// Its ranges, in order.
    pub ranges: Vec<Range>,
}

impl Gpadl {
    /// Pages over all ranges.
    pub fn page_count(&self) -> usize {
        self.ranges.iter().map(|r| r.pfns.len()).sum()
    }
}

struct Pending {
    relid: u32,
    /// The fixed part of the GPADL_HEADER.
    header: vmbus::message::GpadlHeader,
    /// Storage for every announced word; the first `have` have arrived.
    words: Vec<u64>,
    have: usize,
}

/// What a GPADL message led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More GPADL_BODY messages are expected.
    NeedMore,
    /// The GPADL is established for channel `relid`.
    Created {
        /// Its channel.
        relid: u32,
        /// Its handle.
        handle: u32,
    },
}

/// The GPADLs of one partition.
#[derive(Default)]
pub struct GpadlTable {
    pending: BTreeMap<u32, Pending>,
    established: BTreeMap<u32, Gpadl>,
    pages: usize,
}

impl GpadlTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An established GPADL.
    pub fn get(&self, handle: u32) -> Option<&Gpadl> {
        self.established.get(&handle)
    }

    /// Number of established GPADLs.
    pub fn len(&self) -> usize {
        self.established.len()
    }

    /// Whether no GPADL is established or pending.
    pub fn is_empty(&self) -> bool {
        self.established.is_empty() && self.pending.is_empty()
    }

    /// Starts a GPADL from its header. Refusals name the relid for the
    /// GPADL_CREATED failure the caller sends.
    pub fn header(
        &mut self,
        view: &GpadlHeaderView<'_>,
        mem: &dyn GuestPages,
    ) -> Result<Progress, GpadlRefusal> {
        let h = view.header;
        let handle = h.gpadl;
        if self.established.contains_key(&handle) || self.pending.contains_key(&handle) {
            return Err(GpadlRefusal::HandleInUse(handle));
        }
        if self.pending.len() >= MAX_PENDING {
            return Err(GpadlRefusal::Limit {
                handle,
                what: "GPADLs in assembly",
            });
        }
        let mut words = vec![0u64; usize::from(h.range_buflen) / 8];
        // The shared assembler checks the header and takes the first words.
        let complete = GpadlAssembler::new(view, &mut words)
            .map_err(|e| malformed(handle, e))?
            .is_complete();
        let have = view.words().len();
        let pending = Pending {
            relid: h.child_relid,
            header: h,
            words,
            have,
        };
        if complete {
            return self.finish(handle, pending, mem);
        }
        self.pending.insert(handle, pending);
        Ok(Progress::NeedMore)
    }

    /// Continues a GPADL with a body. On a refusal the GPADL is dropped;
    /// the refusal carries what the caller needs for GPADL_CREATED.
    pub fn body(
        &mut self,
        view: &GpadlBodyView<'_>,
        mem: &dyn GuestPages,
    ) -> Result<Progress, (Option<u32>, GpadlRefusal)> {
        let handle = view.body.gpadl;
        let Some(mut p) = self.pending.remove(&handle) else {
            return Err((None, GpadlRefusal::UnknownBody(handle)));
        };
        let relid = p.relid;
        let need = p.words.len();
        let got = view.words().len();
        if got == 0 || p.have + got > need {
            let e = if got == 0 {
                GpadlError::EmptyBody
            } else {
                GpadlError::TooManyWords {
                    expected: need,
                    got: p.have + got,
                }
            };
            return Err((Some(relid), malformed(handle, e)));
        }
        for (slot, w) in p.words[p.have..p.have + got].iter_mut().zip(view.words()) {
            *slot = w;
        }
        p.have += got;
        if p.have < need {
            self.pending.insert(handle, p);
            return Ok(Progress::NeedMore);
        }
        self.finish(handle, p, mem).map_err(|e| (Some(relid), e))
    }

    fn finish(
        &mut self,
        handle: u32,
        p: Pending,
        mem: &dyn GuestPages,
    ) -> Result<Progress, GpadlRefusal> {
        // Re-run the shared checks over the complete words.
        let ranges = check_words(&p.header, &p.words).map_err(|e| malformed(handle, e))?;
        let pages: usize = ranges.iter().map(|r| r.pfns.len()).sum();
        for (index, r) in ranges.iter().enumerate() {
            for &pfn in &r.pfns {
                let ok = pfn
                    .checked_mul(HV_PAGE_SIZE)
                    .is_some_and(|gpa| mem.is_ram(gpa, HV_PAGE_SIZE));
                if !ok {
                    return Err(GpadlRefusal::NotRam {
                        handle,
                        pfn,
                        range: index,
                    });
                }
            }
        }
        if self.established.len() >= MAX_GPADLS {
            return Err(GpadlRefusal::Limit {
                handle,
                what: "established GPADLs",
            });
        }
        self.pages = self.pages.saturating_add(pages);
        self.established.insert(
            handle,
            Gpadl {
                relid: p.relid,
                ranges,
            },
        );
        Ok(Progress::Created {
            relid: p.relid,
            handle,
        })
    }

    /// Removes an established GPADL; whether it existed.
    pub fn teardown(&mut self, handle: u32) -> Option<Gpadl> {
        let g = self.established.remove(&handle)?;
        self.pages = self.pages.saturating_sub(g.page_count());
        Some(g)
    }

    /// Removes every GPADL (established or pending) of channel `relid`.
    pub fn remove_channel(&mut self, relid: u32) -> usize {
        self.pending.retain(|_, p| p.relid != relid);
        let handles: Vec<u32> = self
            .established
            .iter()
            .filter(|(_, g)| g.relid == relid)
            .map(|(h, _)| *h)
            .collect();
        for h in &handles {
            self.teardown(*h);
        }
        handles.len()
    }

    /// Removes everything (UNLOAD, or a new INITIATE_CONTACT).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.established.clear();
        self.pages = 0;
    }
}

fn malformed(handle: u32, e: GpadlError) -> GpadlRefusal {
    GpadlRefusal::Malformed {
        handle,
        reason: e.to_string(),
    }
}

/// The shared assembler's range checks over complete words.
fn check_words(
    header: &vmbus::message::GpadlHeader,
    words: &[u64],
) -> Result<Vec<Range>, GpadlError> {
    // Feed the words through the assembler as if they came in one header,
    // so that the range rules live in one place (vmbus::gpadl).
    let mut storage = words.to_vec();
    let mut bytes = Vec::with_capacity(words.len() * 8);
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    let view = GpadlHeaderView {
        header: *header,
        data: &bytes,
    };
    let asm = GpadlAssembler::new(&view, &mut storage)?;
    let done = asm.finish()?;
    Ok(done
        .ranges()
        .map(|r: GpadlRange<'_>| Range {
            byte_count: r.byte_count,
            byte_offset: r.byte_offset,
            pfns: r.pfns.to_vec(),
        })
        .collect())
}
