// SPDX-License-Identifier: GPL-2.0

//! The SCSI commands and data that travel in [`super::vstor`] requests, as
//! far as a disk needs them (SPC-3, SBC-3): the CDBs a guest builds and a
//! host parses ([`Command`]), fixed-format sense data ([`Sense`]), the
//! UNMAP parameter list ([`UnmapList`]), and the data a host returns and a
//! guest reads: standard INQUIRY, the VPD pages 0x00, 0x80, 0x83, 0xB0,
//! 0xB1 and 0xB2, READ CAPACITY (10) and (16), MODE SENSE (6) and (10)
//! with the caching page, and REPORT LUNS. Every multi-byte field is
//! big-endian, as SCSI has it.
//!
//! Parsers take untrusted bytes and say precisely what is wrong; builders
//! write into fixed buffers ([`Data`]): no allocation.

/// Operation codes.
pub mod opcode {
    /// TEST UNIT READY.
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// REQUEST SENSE.
    pub const REQUEST_SENSE: u8 = 0x03;
    /// READ (6).
    pub const READ_6: u8 = 0x08;
    /// WRITE (6).
    pub const WRITE_6: u8 = 0x0a;
    /// INQUIRY.
    pub const INQUIRY: u8 = 0x12;
    /// MODE SENSE (6).
    pub const MODE_SENSE_6: u8 = 0x1a;
    /// START STOP UNIT.
    pub const START_STOP_UNIT: u8 = 0x1b;
    /// PREVENT ALLOW MEDIUM REMOVAL.
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
    /// READ CAPACITY (10).
    pub const READ_CAPACITY_10: u8 = 0x25;
    /// READ (10).
    pub const READ_10: u8 = 0x28;
    /// WRITE (10).
    pub const WRITE_10: u8 = 0x2a;
    /// VERIFY (10).
    pub const VERIFY_10: u8 = 0x2f;
    /// SYNCHRONIZE CACHE (10).
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    /// WRITE SAME (10).
    pub const WRITE_SAME_10: u8 = 0x41;
    /// UNMAP.
    pub const UNMAP: u8 = 0x42;
    /// MODE SENSE (10).
    pub const MODE_SENSE_10: u8 = 0x5a;
    /// READ (16).
    pub const READ_16: u8 = 0x88;
    /// WRITE (16).
    pub const WRITE_16: u8 = 0x8a;
    /// VERIFY (16).
    pub const VERIFY_16: u8 = 0x8f;
    /// SYNCHRONIZE CACHE (16).
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// WRITE SAME (16).
    pub const WRITE_SAME_16: u8 = 0x93;
    /// SERVICE ACTION IN (16); READ CAPACITY (16) is its action 0x10.
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    /// REPORT LUNS.
    pub const REPORT_LUNS: u8 = 0xa0;
}

/// The service action of READ CAPACITY (16).
pub const SA_READ_CAPACITY_16: u8 = 0x10;

/// SAM status codes (`scsi_status`).
pub mod status {
    /// The command completed.
    pub const GOOD: u8 = 0x00;
    /// Sense data says what went wrong.
    pub const CHECK_CONDITION: u8 = 0x02;
    /// The device is busy.
    pub const BUSY: u8 = 0x08;
}

/// Sense keys.
pub mod sense_key {
    /// No sense.
    pub const NO_SENSE: u8 = 0x0;
    /// Not ready.
    pub const NOT_READY: u8 = 0x2;
    /// The medium failed.
    pub const MEDIUM_ERROR: u8 = 0x3;
    /// The hardware failed.
    pub const HARDWARE_ERROR: u8 = 0x4;
    /// The command or its data is wrong.
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    /// Something changed (capacity, reset).
    pub const UNIT_ATTENTION: u8 = 0x6;
    /// The medium is protected (read-only).
    pub const DATA_PROTECT: u8 = 0x7;
    /// The command was aborted.
    pub const ABORTED_COMMAND: u8 = 0xb;
}

/// Additional sense codes with their qualifiers.
pub mod asc {
    /// An additional sense code and qualifier.
    pub type Code = (u8, u8);
    /// WRITE ERROR.
    pub const WRITE_ERROR: Code = (0x0c, 0x00);
    /// UNRECOVERED READ ERROR.
    pub const UNRECOVERED_READ_ERROR: Code = (0x11, 0x00);
    /// PARAMETER LIST LENGTH ERROR.
    pub const PARAMETER_LIST_LENGTH_ERROR: Code = (0x1a, 0x00);
    /// INVALID COMMAND OPERATION CODE.
    pub const INVALID_COMMAND_OPERATION_CODE: Code = (0x20, 0x00);
    /// LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const LBA_OUT_OF_RANGE: Code = (0x21, 0x00);
    /// INVALID FIELD IN CDB.
    pub const INVALID_FIELD_IN_CDB: Code = (0x24, 0x00);
    /// LOGICAL UNIT NOT SUPPORTED.
    pub const LOGICAL_UNIT_NOT_SUPPORTED: Code = (0x25, 0x00);
    /// INVALID FIELD IN PARAMETER LIST.
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Code = (0x26, 0x00);
    /// WRITE PROTECTED.
    pub const WRITE_PROTECTED: Code = (0x27, 0x00);
    /// SPACE ALLOCATION FAILED WRITE PROTECT (thin provisioning: no space).
    pub const SPACE_ALLOCATION_FAILED: Code = (0x27, 0x07);
    /// CAPACITY DATA HAS CHANGED.
    pub const CAPACITY_DATA_HAS_CHANGED: Code = (0x2a, 0x09);
    /// INTERNAL TARGET FAILURE.
    pub const INTERNAL_TARGET_FAILURE: Code = (0x44, 0x00);
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

/// Length of a CDB by its operation code's group, if the group is one of
/// the fixed-length ones.
pub const fn cdb_length(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// A command, parsed from its CDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// TEST UNIT READY.
    TestUnitReady,
    /// REQUEST SENSE (fixed format).
    RequestSense {
        /// Allocation length.
        alloc: u8,
    },
    /// INQUIRY: standard data, or a VPD page.
    Inquiry {
        /// A VPD page is asked for.
        evpd: bool,
        /// The page (0 for standard data).
        page: u8,
        /// Allocation length.
        alloc: u16,
    },
    /// MODE SENSE (6) or (10).
    ModeSense {
        /// MODE SENSE (10) rather than (6).
        ten: bool,
        /// Disable block descriptors.
        dbd: bool,
        /// Page control: 0 current, 1 changeable, 2 default, 3 saved.
        pc: u8,
        /// Page code (0x3f: all).
        page: u8,
        /// Subpage code.
        subpage: u8,
        /// Allocation length.
        alloc: u16,
    },
    /// START STOP UNIT or PREVENT ALLOW MEDIUM REMOVAL: nothing to do for
    /// a virtual disk.
    NoOp(u8),
    /// READ CAPACITY (10).
    ReadCapacity10,
    /// READ CAPACITY (16).
    ReadCapacity16 {
        /// Allocation length.
        alloc: u32,
    },
    /// READ (6/10/16).
    Read(Transfer),
    /// WRITE (6/10/16).
    Write(Transfer),
    /// VERIFY (10/16) without data compare: only the range is checked.
    Verify(Transfer),
    /// SYNCHRONIZE CACHE (10/16); `blocks` 0 means to the end.
    SynchronizeCache(Transfer),
    /// UNMAP, with its parameter list's length.
    Unmap {
        /// Parameter list length (bytes the guest sends).
        param_len: u16,
    },
    /// WRITE SAME (10 or 16): one block of data written over the range, or
    /// the range unmapped.
    WriteSame {
        /// The range.
        range: Transfer,
        /// Unmap instead of writing, if the data is zeroes.
        unmap: bool,
        /// No data-out buffer: the block is zeroes.
        ndob: bool,
    },
    /// REPORT LUNS.
    ReportLuns {
        /// Select report.
        select: u8,
        /// Allocation length.
        alloc: u32,
    },
}

/// The range of a data command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// First logical block.
    pub lba: u64,
    /// Number of blocks.
    pub blocks: u32,
    /// Force unit access: the data is on the medium before completion.
    pub fua: bool,
}

/// Why a CDB is refused: each maps to CHECK CONDITION, ILLEGAL REQUEST,
/// with [`CdbError::sense`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CdbError {
    /// No bytes at all.
    Empty,
    /// Shorter than its operation code's CDB.
    Short {
        /// The operation code.
        opcode: u8,
        /// Bytes given.
        len: usize,
        /// Bytes it needs.
        need: usize,
    },
    /// An operation this contract does not know.
    UnsupportedOpcode(u8),
    /// A field has a value the command does not support.
    InvalidField {
        /// The operation code.
        opcode: u8,
        /// The byte of the CDB that holds it.
        byte: u8,
    },
}

impl core::fmt::Display for CdbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => write!(f, "empty CDB"),
            Self::Short { opcode, len, need } => {
                write!(
                    f,
                    "CDB of opcode {opcode:#04x} has {len} bytes, needs {need}"
                )
            }
            Self::UnsupportedOpcode(op) => write!(f, "unsupported opcode {op:#04x}"),
            Self::InvalidField { opcode, byte } => {
                write!(
                    f,
                    "invalid field in byte {byte} of the CDB of opcode {opcode:#04x}"
                )
            }
        }
    }
}

impl CdbError {
    /// The sense data a device returns for this error: ILLEGAL REQUEST,
    /// INVALID COMMAND OPERATION CODE or INVALID FIELD IN CDB (with the
    /// field pointer).
    pub fn sense(&self) -> Sense {
        match self {
            Self::UnsupportedOpcode(_) => Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::INVALID_COMMAND_OPERATION_CODE,
            ),
            Self::InvalidField { byte, .. } => {
                Sense::new(sense_key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_CDB)
                    .with_field_pointer(u16::from(*byte))
            }
            Self::Empty | Self::Short { .. } => {
                Sense::new(sense_key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_CDB)
            }
        }
    }
}

impl Command {
    /// Parses a CDB. Extra bytes after the command's length are ignored
    /// (VSTOR carries 16 and says how many count).
    pub fn parse(cdb: &[u8]) -> Result<Self, CdbError> {
        use opcode::*;
        let op = *cdb.first().ok_or(CdbError::Empty)?;
        let need = cdb_length(op).ok_or(CdbError::UnsupportedOpcode(op))?;
        if cdb.len() < need {
            return Err(CdbError::Short {
                opcode: op,
                len: cdb.len(),
                need,
            });
        }
        let invalid = |byte: u8| CdbError::InvalidField { opcode: op, byte };
        let rw10 = |c: &[u8]| Transfer {
            lba: u64::from(be32(c, 2)),
            blocks: u32::from(be16(c, 7)),
            fua: c[1] & 0x08 != 0,
        };
        let rw16 = |c: &[u8]| Transfer {
            lba: be64(c, 2),
            blocks: be32(c, 10),
            fua: c[1] & 0x08 != 0,
        };
        Ok(match op {
            TEST_UNIT_READY => Self::TestUnitReady,
            REQUEST_SENSE => {
                // Descriptor-format sense is not offered.
                if cdb[1] & 0x01 != 0 {
                    return Err(invalid(1));
                }
                Self::RequestSense { alloc: cdb[4] }
            }
            INQUIRY => {
                let evpd = cdb[1] & 0x01 != 0;
                if !evpd && cdb[2] != 0 {
                    return Err(invalid(2));
                }
                Self::Inquiry {
                    evpd,
                    page: cdb[2],
                    alloc: be16(cdb, 3),
                }
            }
            MODE_SENSE_6 | MODE_SENSE_10 => Self::ModeSense {
                ten: op == MODE_SENSE_10,
                dbd: cdb[1] & 0x08 != 0,
                pc: cdb[2] >> 6,
                page: cdb[2] & 0x3f,
                subpage: cdb[3],
                alloc: if op == MODE_SENSE_10 {
                    be16(cdb, 7)
                } else {
                    u16::from(cdb[4])
                },
            },
            START_STOP_UNIT | PREVENT_ALLOW_MEDIUM_REMOVAL => Self::NoOp(op),
            READ_CAPACITY_10 => Self::ReadCapacity10,
            SERVICE_ACTION_IN_16 => {
                if cdb[1] & 0x1f != SA_READ_CAPACITY_16 {
                    return Err(invalid(1));
                }
                Self::ReadCapacity16 {
                    alloc: be32(cdb, 10),
                }
            }
            READ_6 | WRITE_6 => {
                // 21-bit LBA; a length of 0 means 256 blocks.
                let t = Transfer {
                    lba: u64::from(u32::from_be_bytes([0, cdb[1] & 0x1f, cdb[2], cdb[3]])),
                    blocks: if cdb[4] == 0 { 256 } else { u32::from(cdb[4]) },
                    fua: false,
                };
                if op == READ_6 {
                    Self::Read(t)
                } else {
                    Self::Write(t)
                }
            }
            READ_10 => Self::Read(rw10(cdb)),
            WRITE_10 => Self::Write(rw10(cdb)),
            READ_16 => Self::Read(rw16(cdb)),
            WRITE_16 => Self::Write(rw16(cdb)),
            VERIFY_10 | VERIFY_16 => {
                // BYTCHK: comparing data is not supported.
                if cdb[1] & 0x06 != 0 {
                    return Err(invalid(1));
                }
                Self::Verify(if op == VERIFY_10 {
                    rw10(cdb)
                } else {
                    rw16(cdb)
                })
            }
            SYNCHRONIZE_CACHE_10 => Self::SynchronizeCache(Transfer {
                fua: false,
                ..rw10(cdb)
            }),
            SYNCHRONIZE_CACHE_16 => Self::SynchronizeCache(Transfer {
                fua: false,
                ..rw16(cdb)
            }),
            UNMAP => {
                // ANCHOR is not supported.
                if cdb[1] & 0x01 != 0 {
                    return Err(invalid(1));
                }
                Self::Unmap {
                    param_len: be16(cdb, 7),
                }
            }
            WRITE_SAME_10 => {
                // ANCHOR is not supported.
                if cdb[1] & 0x10 != 0 {
                    return Err(invalid(1));
                }
                Self::WriteSame {
                    range: Transfer {
                        fua: false,
                        ..rw10(cdb)
                    },
                    unmap: cdb[1] & 0x08 != 0,
                    ndob: false,
                }
            }
            WRITE_SAME_16 => {
                // ANCHOR is not supported.
                if cdb[1] & 0x10 != 0 {
                    return Err(invalid(1));
                }
                Self::WriteSame {
                    range: Transfer {
                        fua: false,
                        ..rw16(cdb)
                    },
                    unmap: cdb[1] & 0x08 != 0,
                    ndob: cdb[1] & 0x01 != 0,
                }
            }
            REPORT_LUNS => Self::ReportLuns {
                select: cdb[2],
                alloc: be32(cdb, 6),
            },
            _ => return Err(CdbError::UnsupportedOpcode(op)),
        })
    }

    /// The CDB of this command, in the form a guest sends: the 16-byte
    /// forms of the data commands (their 64-bit LBA and 32-bit length),
    /// MODE SENSE in the form `ten` says, UNMAP and READ CAPACITY (10) in
    /// their only forms. [`Command::parse`] reads back the same command.
    /// `None` for a field the form cannot carry (a READ (6) range is never
    /// built: it is sent as READ (16)).
    pub fn cdb(&self) -> Option<Cdb> {
        use opcode::*;
        let mut c = [0u8; 16];
        let len = match *self {
            Self::TestUnitReady => 6,
            Self::RequestSense { alloc } => {
                c[0] = REQUEST_SENSE;
                c[4] = alloc;
                6
            }
            Self::Inquiry { evpd, page, alloc } => {
                if !evpd && page != 0 {
                    return None;
                }
                c[0] = INQUIRY;
                c[1] = u8::from(evpd);
                c[2] = page;
                c[3..5].copy_from_slice(&alloc.to_be_bytes());
                6
            }
            Self::ModeSense {
                ten,
                dbd,
                pc,
                page,
                subpage,
                alloc,
            } => {
                if pc > 3 || page > 0x3f {
                    return None;
                }
                c[1] = if dbd { 0x08 } else { 0 };
                c[2] = pc << 6 | page;
                c[3] = subpage;
                if ten {
                    c[0] = MODE_SENSE_10;
                    c[7..9].copy_from_slice(&alloc.to_be_bytes());
                    10
                } else {
                    c[0] = MODE_SENSE_6;
                    c[4] = u8::try_from(alloc).ok()?;
                    6
                }
            }
            Self::NoOp(op) => {
                if op != START_STOP_UNIT && op != PREVENT_ALLOW_MEDIUM_REMOVAL {
                    return None;
                }
                c[0] = op;
                6
            }
            Self::ReadCapacity10 => {
                c[0] = READ_CAPACITY_10;
                10
            }
            Self::ReadCapacity16 { alloc } => {
                c[0] = SERVICE_ACTION_IN_16;
                c[1] = SA_READ_CAPACITY_16;
                c[10..14].copy_from_slice(&alloc.to_be_bytes());
                16
            }
            Self::Read(t) | Self::Write(t) => {
                c = Self::rw16(matches!(self, Self::Write(_)), t);
                16
            }
            Self::Verify(t) | Self::SynchronizeCache(t) => {
                if t.fua {
                    return None;
                }
                c[0] = if matches!(self, Self::Verify(_)) {
                    VERIFY_16
                } else {
                    SYNCHRONIZE_CACHE_16
                };
                c[2..10].copy_from_slice(&t.lba.to_be_bytes());
                c[10..14].copy_from_slice(&t.blocks.to_be_bytes());
                16
            }
            Self::Unmap { param_len } => {
                c[0] = UNMAP;
                c[7..9].copy_from_slice(&param_len.to_be_bytes());
                10
            }
            Self::WriteSame { range, unmap, ndob } => {
                if range.fua {
                    return None;
                }
                c[0] = WRITE_SAME_16;
                c[1] = if unmap { 0x08 } else { 0 } | u8::from(ndob);
                c[2..10].copy_from_slice(&range.lba.to_be_bytes());
                c[10..14].copy_from_slice(&range.blocks.to_be_bytes());
                16
            }
            Self::ReportLuns { select, alloc } => {
                c[0] = REPORT_LUNS;
                c[2] = select;
                c[6..10].copy_from_slice(&alloc.to_be_bytes());
                12
            }
        };
        Some(Cdb { bytes: c, len })
    }

    /// A READ or WRITE (16) CDB for `t`.
    pub fn rw16(write: bool, t: Transfer) -> [u8; 16] {
        let mut c = [0; 16];
        c[0] = if write {
            opcode::WRITE_16
        } else {
            opcode::READ_16
        };
        c[1] = if t.fua { 0x08 } else { 0 };
        c[2..10].copy_from_slice(&t.lba.to_be_bytes());
        c[10..14].copy_from_slice(&t.blocks.to_be_bytes());
        c
    }
}

/// A CDB as [`Command::cdb`] builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cdb {
    bytes: [u8; 16],
    len: usize,
}

impl Cdb {
    /// The command's bytes (6, 10, 12 or 16).
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Fixed-format sense data (response code 0x70), as a device returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    /// The sense key.
    pub key: u8,
    /// The additional sense code and qualifier.
    pub code: asc::Code,
    /// The sense-key specific field pointer (the CDB byte in error).
    pub field_pointer: Option<u16>,
}

/// Length of fixed-format sense data with its additional bytes.
pub const FIXED_SENSE_LEN: usize = 18;

impl Sense {
    /// Sense with `key` and `code`.
    pub const fn new(key: u8, code: asc::Code) -> Self {
        Self {
            key,
            code,
            field_pointer: None,
        }
    }

    /// The same, pointing at byte `byte` of the CDB.
    pub const fn with_field_pointer(self, byte: u16) -> Self {
        Self {
            field_pointer: Some(byte),
            ..self
        }
    }

    /// The fixed-format bytes.
    pub fn to_bytes(self) -> [u8; FIXED_SENSE_LEN] {
        let mut b = [0; FIXED_SENSE_LEN];
        b[0] = 0x70;
        b[2] = self.key & 0x0f;
        b[7] = (FIXED_SENSE_LEN - 8) as u8;
        b[12] = self.code.0;
        b[13] = self.code.1;
        if let Some(p) = self.field_pointer {
            // SKSV, C/D = 1 (the error is in the CDB), then the pointer.
            b[15] = 0x80 | 0x40;
            b[16..18].copy_from_slice(&p.to_be_bytes());
        }
        b
    }

    /// Parses fixed (0x70, 0x71) or descriptor (0x72, 0x73) format sense;
    /// `None` if it is neither or too short to hold the key and code.
    pub fn parse(b: &[u8]) -> Option<Self> {
        match b.first()? & 0x7f {
            0x70 | 0x71 if b.len() >= 14 => Some(Self {
                key: b[2] & 0x0f,
                code: (b[12], b[13]),
                field_pointer: (b.len() >= 18 && b[15] & 0x80 != 0).then(|| be16(b, 16)),
            }),
            0x72 | 0x73 if b.len() >= 4 => Some(Self::new(b[1] & 0x0f, (b[2], b[3]))),
            _ => None,
        }
    }
}

/// A buffer of at most `N` bytes of response data: what a builder wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Data<N> {
    fn new(len: usize) -> Self {
        Self {
            bytes: [0; N],
            len: len.min(N),
        }
    }

    /// The bytes written.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Peripheral device type of a disk.
pub const TYPE_DISK: u8 = 0x00;
/// The first INQUIRY byte for a LUN with no device (qualifier 3, type 0x1f).
pub const NO_DEVICE: u8 = 0x7f;
/// VERSION of the standard INQUIRY data: SPC-3.
pub const VERSION_SPC3: u8 = 0x05;

/// What identifies a disk in INQUIRY data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity<'a> {
    /// T10 vendor (8 bytes, space-padded).
    pub vendor: &'a [u8; 8],
    /// Product (16 bytes, space-padded).
    pub product: &'a [u8; 16],
    /// Revision (4 bytes).
    pub revision: &'a [u8; 4],
    /// Unit serial number (printable ASCII, at most [`MAX_SERIAL`] bytes).
    pub serial: &'a [u8],
}

/// Longest unit serial number in VPD page 0x80.
pub const MAX_SERIAL: usize = 32;
/// Length of standard INQUIRY data as built here.
pub const INQUIRY_LEN: usize = 36;

/// Standard INQUIRY data of a disk (or, with `present` false, of a LUN
/// with no device behind it).
pub fn inquiry(id: &Identity<'_>, present: bool) -> [u8; INQUIRY_LEN] {
    let mut b = [0; INQUIRY_LEN];
    b[0] = if present { TYPE_DISK } else { NO_DEVICE };
    b[2] = VERSION_SPC3;
    // Response data format 2, HiSup.
    b[3] = 0x12;
    b[4] = (INQUIRY_LEN - 5) as u8;
    // CmdQue.
    b[7] = 0x02;
    b[8..16].copy_from_slice(id.vendor);
    b[16..32].copy_from_slice(id.product);
    b[32..36].copy_from_slice(id.revision);
    b
}

/// VPD pages built here, in the order page 0x00 lists them.
pub const VPD_PAGES: [u8; 6] = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

/// The limits a disk reports (VPD 0xB0) and its provisioning (0xB2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlockLimits {
    /// Largest transfer, in blocks (0: no limit).
    pub max_transfer: u32,
    /// Preferred transfer, in blocks.
    pub optimal_transfer: u32,
    /// Largest UNMAP range sum, in blocks (0: no UNMAP).
    pub max_unmap_blocks: u32,
    /// Most descriptors in one UNMAP parameter list.
    pub max_unmap_descriptors: u32,
    /// Granularity of unmapping, in blocks.
    pub unmap_granularity: u32,
    /// Largest WRITE SAME range, in blocks.
    pub max_write_same: u64,
}

/// Length of the VPD pages as built here (header included).
pub const VPD_LEN: usize = 64;

/// A VPD page: 0x00, 0x80, 0x83, 0xB0, 0xB1 or 0xB2; `None` for another.
/// `unmap` says whether the disk supports UNMAP and WRITE SAME with UNMAP
/// (0xB2's LBPU and LBPWS).
pub fn vpd_page(
    page: u8,
    id: &Identity<'_>,
    limits: &BlockLimits,
    unmap: bool,
) -> Option<Data<VPD_LEN>> {
    let body_len = match page {
        0x00 => VPD_PAGES.len(),
        0x80 => id.serial.len().min(MAX_SERIAL),
        // One T10 vendor ID designator: 4 + 8 + serial.
        0x83 => 4 + 8 + id.serial.len().min(MAX_SERIAL),
        0xb0 => 0x3c,
        0xb1 => 0x3c,
        0xb2 => 4,
        _ => return None,
    };
    let mut d = Data::new(4 + body_len);
    let b = &mut d.bytes;
    b[0] = TYPE_DISK;
    b[1] = page;
    b[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
    let serial = &id.serial[..id.serial.len().min(MAX_SERIAL)];
    match page {
        0x00 => b[4..4 + VPD_PAGES.len()].copy_from_slice(&VPD_PAGES),
        0x80 => b[4..4 + serial.len()].copy_from_slice(serial),
        0x83 => {
            // Code set ASCII, association LUN, designator type T10 vendor ID.
            b[4] = 0x02;
            b[5] = 0x01;
            b[7] = (8 + serial.len()) as u8;
            b[8..16].copy_from_slice(id.vendor);
            b[16..16 + serial.len()].copy_from_slice(serial);
        }
        0xb0 => {
            b[8..12].copy_from_slice(&limits.max_transfer.to_be_bytes());
            b[12..16].copy_from_slice(&limits.optimal_transfer.to_be_bytes());
            b[20..24].copy_from_slice(&limits.max_unmap_blocks.to_be_bytes());
            b[24..28].copy_from_slice(&limits.max_unmap_descriptors.to_be_bytes());
            b[28..32].copy_from_slice(&limits.unmap_granularity.to_be_bytes());
            b[36..44].copy_from_slice(&limits.max_write_same.to_be_bytes());
        }
        // Non-rotating medium.
        0xb1 => b[4..6].copy_from_slice(&1u16.to_be_bytes()),
        // LBPU, LBPWS; thin provisioning; unmapped blocks read as zeroes (LBPRZ).
        0xb2 if unmap => {
            b[5] = 0x80 | 0x40 | 0x04;
            b[6] = 0x02;
        }
        _ => {}
    }
    Some(d)
}

/// A disk's geometry: what READ CAPACITY says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Number of logical blocks.
    pub blocks: u64,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// log2 of logical blocks per physical block.
    pub physical_exponent: u8,
    /// Logical block provisioning management (UNMAP) enabled.
    pub thin: bool,
}

/// READ CAPACITY (10) data; the last LBA saturates at 0xffffffff, which
/// tells the guest to use READ CAPACITY (16).
pub fn read_capacity_10(c: &Capacity) -> [u8; 8] {
    let last = u32::try_from(c.blocks.saturating_sub(1)).unwrap_or(u32::MAX);
    let mut b = [0; 8];
    b[0..4].copy_from_slice(&last.to_be_bytes());
    b[4..8].copy_from_slice(&c.block_size.to_be_bytes());
    b
}

/// Length of READ CAPACITY (16) data.
pub const READ_CAPACITY_16_LEN: usize = 32;

/// READ CAPACITY (16) data.
pub fn read_capacity_16(c: &Capacity) -> [u8; READ_CAPACITY_16_LEN] {
    let mut b = [0; READ_CAPACITY_16_LEN];
    b[0..8].copy_from_slice(&c.blocks.saturating_sub(1).to_be_bytes());
    b[8..12].copy_from_slice(&c.block_size.to_be_bytes());
    b[13] = c.physical_exponent & 0x0f;
    if c.thin {
        // LBPME, LBPRZ.
        b[14] = 0x80 | 0x40;
    }
    b
}

/// Why response data cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    /// Shorter than its fixed part (bytes given, bytes needed).
    Short(usize, usize),
    /// A field with an impossible value (its byte).
    Invalid(usize),
}

impl core::fmt::Display for DataError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short(n, need) => write!(f, "{n} bytes of data, {need} needed"),
            Self::Invalid(at) => write!(f, "invalid value at byte {at}"),
        }
    }
}

/// Reads READ CAPACITY (16) data: a block size that is 0, not a power of
/// two or below 512 is refused, as is an exponent over 16.
pub fn parse_read_capacity_16(b: &[u8]) -> Result<Capacity, DataError> {
    if b.len() < 16 {
        return Err(DataError::Short(b.len(), 16));
    }
    let block_size = be32(b, 8);
    if block_size < 512 || !block_size.is_power_of_two() {
        return Err(DataError::Invalid(8));
    }
    let physical_exponent = b[13] & 0x0f;
    Ok(Capacity {
        blocks: be64(b, 0).checked_add(1).ok_or(DataError::Invalid(0))?,
        block_size,
        physical_exponent,
        thin: b[14] & 0x80 != 0,
    })
}

/// Reads the limits of VPD page 0xB0.
pub fn parse_block_limits(b: &[u8]) -> Result<BlockLimits, DataError> {
    if b.len() < 44 {
        return Err(DataError::Short(b.len(), 44));
    }
    if b[1] != 0xb0 {
        return Err(DataError::Invalid(1));
    }
    Ok(BlockLimits {
        max_transfer: be32(b, 8),
        optimal_transfer: be32(b, 12),
        max_unmap_blocks: be32(b, 20),
        max_unmap_descriptors: be32(b, 24),
        unmap_granularity: be32(b, 28),
        max_write_same: be64(b, 36),
    })
}

/// Mode page code of the caching page.
pub const CACHING_PAGE: u8 = 0x08;
/// Mode page code for all pages.
pub const ALL_PAGES: u8 = 0x3f;
/// Device-specific parameter bit: write protected.
pub const MODE_WP: u8 = 0x80;
/// Device-specific parameter bit: DPO and FUA supported.
pub const MODE_DPOFUA: u8 = 0x10;
/// Caching page bit: write cache enabled.
pub const CACHING_WCE: u8 = 0x04;

/// What MODE SENSE reports of a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModeInfo {
    /// Write protected.
    pub write_protect: bool,
    /// FUA honoured.
    pub fua: bool,
    /// A volatile write cache (SYNCHRONIZE CACHE needed).
    pub write_cache: bool,
}

/// Longest MODE SENSE data built here.
pub const MODE_SENSE_LEN: usize = 8 + 20;

/// MODE SENSE (6 or 10) data with the caching page (for page 0x08 or
/// 0x3f) and no block descriptor; `None` for another page (or a subpage),
/// which a device refuses as an invalid field. Changeable values (page
/// control 1) are all zero: nothing can be changed.
pub fn mode_sense(
    ten: bool,
    pc: u8,
    page: u8,
    subpage: u8,
    info: &ModeInfo,
) -> Option<Data<MODE_SENSE_LEN>> {
    if subpage != 0 || (page != CACHING_PAGE && page != ALL_PAGES) {
        return None;
    }
    let header = if ten { 8 } else { 4 };
    let mut d = Data::new(header + 20);
    let b = &mut d.bytes;
    let specific =
        if info.write_protect { MODE_WP } else { 0 } | if info.fua { MODE_DPOFUA } else { 0 };
    if ten {
        b[0..2].copy_from_slice(&((header + 20 - 2) as u16).to_be_bytes());
        b[3] = specific;
    } else {
        b[0] = (header + 20 - 1) as u8;
        b[2] = specific;
    }
    let p = &mut b[header..header + 20];
    p[0] = CACHING_PAGE;
    p[1] = 18;
    if pc != 1 && info.write_cache {
        p[2] = CACHING_WCE;
    }
    Some(d)
}

/// Reads MODE SENSE data: the device-specific parameter and, if present,
/// the caching page.
pub fn parse_mode_sense(ten: bool, b: &[u8]) -> Result<ModeInfo, DataError> {
    let header = if ten { 8 } else { 4 };
    if b.len() < header {
        return Err(DataError::Short(b.len(), header));
    }
    let (specific, descriptors) = if ten {
        (b[3], usize::from(be16(b, 6)))
    } else {
        (b[2], usize::from(b[3]))
    };
    let mut info = ModeInfo {
        write_protect: specific & MODE_WP != 0,
        fua: specific & MODE_DPOFUA != 0,
        write_cache: false,
    };
    let mut at = header + descriptors;
    while at + 2 <= b.len() {
        let (code, len) = (b[at] & 0x3f, usize::from(b[at + 1]));
        if code == CACHING_PAGE && at + 3 <= b.len() && len >= 1 {
            info.write_cache = b[at + 2] & CACHING_WCE != 0;
        }
        at += 2 + len;
    }
    Ok(info)
}

/// Longest REPORT LUNS data built here (header and 8 LUNs).
pub const REPORT_LUNS_MAX: usize = 8 + 8 * 8;

/// REPORT LUNS data for `luns` (single-level, peripheral addressing; at
/// most 8 are listed).
pub fn report_luns(luns: &[u8]) -> Data<REPORT_LUNS_MAX> {
    let n = luns.len().min(8);
    let mut d = Data::new(8 + 8 * n);
    d.bytes[0..4].copy_from_slice(&((8 * n) as u32).to_be_bytes());
    for (i, lun) in luns.iter().take(n).enumerate() {
        d.bytes[8 + 8 * i + 1] = *lun;
    }
    d
}

/// What standard INQUIRY data says of a LUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InquiryInfo {
    /// Peripheral qualifier: 0 a device is connected, 1 none now but one
    /// can be, 3 none can be.
    pub qualifier: u8,
    /// Peripheral device type ([`TYPE_DISK`] for a disk).
    pub device_type: u8,
}

impl InquiryInfo {
    /// A disk is connected at this LUN.
    pub fn is_disk(&self) -> bool {
        self.qualifier == 0 && self.device_type == TYPE_DISK
    }
}

/// Reads standard INQUIRY data (its first byte is all a disk driver needs;
/// a device that returned fewer than 5 bytes is broken).
pub fn parse_inquiry(b: &[u8]) -> Result<InquiryInfo, DataError> {
    if b.len() < 5 {
        return Err(DataError::Short(b.len(), 5));
    }
    Ok(InquiryInfo {
        qualifier: b[0] >> 5,
        device_type: b[0] & 0x1f,
    })
}

/// Reads REPORT LUNS data: the LUNs listed, in order, as far as `b` holds
/// them. A LUN that is not in single-level peripheral addressing (first
/// byte 0, the LUN in the second, the rest zero), the only form a VSTOR
/// request can address, is an error, as is a list length that is not a
/// multiple of 8.
pub fn parse_report_luns(b: &[u8]) -> Result<impl Iterator<Item = u8> + '_, DataError> {
    if b.len() < 8 {
        return Err(DataError::Short(b.len(), 8));
    }
    let listed = be32(b, 0) as usize;
    if listed % 8 != 0 {
        return Err(DataError::Invalid(0));
    }
    let entries = b[8..].chunks_exact(8).take(listed / 8);
    for (i, e) in entries.clone().enumerate() {
        if e[0] != 0 || e[2..].iter().any(|&x| x != 0) {
            return Err(DataError::Invalid(8 + 8 * i));
        }
    }
    Ok(entries.map(|e| e[1]))
}

/// Size of an UNMAP block descriptor.
pub const UNMAP_DESCRIPTOR_LEN: usize = 16;

/// A checked UNMAP parameter list: its block descriptors.
#[derive(Clone, Copy, Debug)]
pub struct UnmapList<'a> {
    descriptors: &'a [u8],
}

/// Why an UNMAP parameter list is refused (ILLEGAL REQUEST).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnmapError {
    /// Shorter than its 8-byte header, or than its lengths say.
    Length,
    /// The block descriptor data length is not a multiple of 16.
    DescriptorLength,
}

impl UnmapError {
    /// The sense data a device returns.
    pub fn sense(&self) -> Sense {
        match self {
            Self::Length => {
                Sense::new(sense_key::ILLEGAL_REQUEST, asc::PARAMETER_LIST_LENGTH_ERROR)
            }
            Self::DescriptorLength => Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::INVALID_FIELD_IN_PARAMETER_LIST,
            ),
        }
    }
}

impl<'a> UnmapList<'a> {
    /// Checks a parameter list (the data-out buffer of UNMAP). An empty
    /// list (length 0) has no descriptors.
    pub fn parse(data: &'a [u8]) -> Result<Self, UnmapError> {
        if data.is_empty() {
            return Ok(Self { descriptors: &[] });
        }
        if data.len() < 8 {
            return Err(UnmapError::Length);
        }
        let total = usize::from(be16(data, 0)) + 2;
        let desc = usize::from(be16(data, 2));
        if total > data.len() || 8 + desc > total {
            return Err(UnmapError::Length);
        }
        if desc % UNMAP_DESCRIPTOR_LEN != 0 {
            return Err(UnmapError::DescriptorLength);
        }
        Ok(Self {
            descriptors: &data[8..8 + desc],
        })
    }

    /// The ranges: (first LBA, blocks).
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u32)> + 'a {
        self.descriptors
            .chunks_exact(UNMAP_DESCRIPTOR_LEN)
            .map(|d| (be64(d, 0), be32(d, 8)))
    }

    /// Number of descriptors.
    pub fn len(&self) -> usize {
        self.descriptors.len() / UNMAP_DESCRIPTOR_LEN
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.descriptors.is_empty()
    }
}

/// Builds an UNMAP parameter list of `ranges` into `out` (which must hold
/// 8 + 16 per range); returns its length, or `None` if `out` is too small.
pub fn unmap_list(ranges: &[(u64, u32)], out: &mut [u8]) -> Option<usize> {
    let len = 8 + UNMAP_DESCRIPTOR_LEN * ranges.len();
    let desc = u16::try_from(UNMAP_DESCRIPTOR_LEN * ranges.len()).ok()?;
    let out = out.get_mut(..len)?;
    out.fill(0);
    out[0..2].copy_from_slice(&(desc + 6).to_be_bytes());
    out[2..4].copy_from_slice(&desc.to_be_bytes());
    for (i, (lba, blocks)) in ranges.iter().enumerate() {
        let d = &mut out[8 + UNMAP_DESCRIPTOR_LEN * i..][..UNMAP_DESCRIPTOR_LEN];
        d[0..8].copy_from_slice(&lba.to_be_bytes());
        d[8..12].copy_from_slice(&blocks.to_be_bytes());
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: Identity<'static> = Identity {
        vendor: b"HVHOST  ",
        product: b"Virtual Disk    ",
        revision: b"1.0 ",
        serial: b"disk0-lun1",
    };

    #[test]
    fn parses_the_commands_linux_sends() {
        let read16 = Command::rw16(
            false,
            Transfer {
                lba: 0x1_0000_0000,
                blocks: 8,
                fua: false,
            },
        );
        assert_eq!(
            Command::parse(&read16),
            Ok(Command::Read(Transfer {
                lba: 0x1_0000_0000,
                blocks: 8,
                fua: false
            }))
        );
        let write10 = [0x2a, 0x08, 0, 0, 0x10, 0, 0, 0, 4, 0];
        assert_eq!(
            Command::parse(&write10),
            Ok(Command::Write(Transfer {
                lba: 0x1000,
                blocks: 4,
                fua: true
            }))
        );
        // READ (6) with length 0 reads 256 blocks; only 21 LBA bits count.
        assert_eq!(
            Command::parse(&[0x08, 0xff, 0x00, 0x01, 0, 0]),
            Ok(Command::Read(Transfer {
                lba: 0x1f_0001,
                blocks: 256,
                fua: false
            }))
        );
        assert_eq!(
            Command::parse(&[0x12, 1, 0xb0, 0, 0xff, 0]),
            Ok(Command::Inquiry {
                evpd: true,
                page: 0xb0,
                alloc: 0xff
            })
        );
        assert_eq!(
            Command::parse(&[0x5a, 0, 0x08, 0, 0, 0, 0, 0, 0xc0, 0]),
            Ok(Command::ModeSense {
                ten: true,
                dbd: false,
                pc: 0,
                page: 8,
                subpage: 0,
                alloc: 0xc0
            })
        );
        let mut rc16 = [0u8; 16];
        rc16[0] = 0x9e;
        rc16[1] = 0x10;
        rc16[13] = 32;
        assert_eq!(
            Command::parse(&rc16),
            Ok(Command::ReadCapacity16 { alloc: 32 })
        );
        let mut ws = [0u8; 16];
        ws[0] = 0x93;
        ws[1] = 0x08;
        ws[13] = 0x80;
        assert_eq!(
            Command::parse(&ws),
            Ok(Command::WriteSame {
                range: Transfer {
                    lba: 0,
                    blocks: 0x80,
                    fua: false
                },
                unmap: true,
                ndob: false
            })
        );
        assert_eq!(
            Command::parse(&[0x41, 0x08, 0, 0, 0x01, 0, 0, 0, 16, 0]),
            Ok(Command::WriteSame {
                range: Transfer {
                    lba: 0x100,
                    blocks: 16,
                    fua: false
                },
                unmap: true,
                ndob: false
            })
        );
        assert_eq!(
            Command::parse(&[0x41, 0x10, 0, 0, 0, 0, 0, 0, 1, 0]),
            Err(CdbError::InvalidField {
                opcode: 0x41,
                byte: 1
            })
        );
        assert_eq!(
            Command::parse(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]),
            Ok(Command::Unmap { param_len: 24 })
        );
        assert_eq!(
            Command::parse(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
            Ok(Command::ReportLuns {
                select: 0,
                alloc: 256
            })
        );
    }

    #[test]
    fn refuses_bad_cdbs_with_the_right_sense() {
        assert_eq!(Command::parse(&[]), Err(CdbError::Empty));
        assert_eq!(
            Command::parse(&[0x28, 0, 0]),
            Err(CdbError::Short {
                opcode: 0x28,
                len: 3,
                need: 10
            })
        );
        assert_eq!(
            Command::parse(&[0xc0; 16]),
            Err(CdbError::UnsupportedOpcode(0xc0))
        );
        // Opcodes of a known group that this contract does not implement.
        assert_eq!(
            Command::parse(&[0x04, 0, 0, 0, 0, 0]),
            Err(CdbError::UnsupportedOpcode(0x04))
        );
        let e = Command::parse(&[0x12, 0, 0x80, 0, 36, 0]).expect_err("page without EVPD");
        assert_eq!(
            e,
            CdbError::InvalidField {
                opcode: 0x12,
                byte: 2
            }
        );
        let s = Sense::parse(&e.sense().to_bytes()).expect("sense");
        assert_eq!(s.key, sense_key::ILLEGAL_REQUEST);
        assert_eq!(s.code, asc::INVALID_FIELD_IN_CDB);
        assert_eq!(s.field_pointer, Some(2));
        assert_eq!(
            CdbError::UnsupportedOpcode(0xc0).sense().code,
            asc::INVALID_COMMAND_OPERATION_CODE
        );
    }

    #[test]
    fn sense_formats() {
        let s = Sense::new(sense_key::MEDIUM_ERROR, asc::UNRECOVERED_READ_ERROR);
        let b = s.to_bytes();
        assert_eq!(b[0], 0x70);
        assert_eq!(b[7], 10);
        assert_eq!(Sense::parse(&b), Some(s));
        // Descriptor format, as some hosts send it.
        assert_eq!(
            Sense::parse(&[0x72, 0x07, 0x27, 0x00, 0, 0, 0, 0]),
            Some(Sense::new(sense_key::DATA_PROTECT, asc::WRITE_PROTECTED))
        );
        assert_eq!(Sense::parse(&[0x70, 0, 5]), None);
        assert_eq!(Sense::parse(&[0x00; 18]), None);
    }

    #[test]
    fn inquiry_and_vpd_pages() {
        let std = inquiry(&ID, true);
        assert_eq!(std[0], 0);
        assert_eq!(usize::from(std[4]) + 5, INQUIRY_LEN);
        assert_eq!(&std[8..16], b"HVHOST  ");
        assert_eq!(inquiry(&ID, false)[0], 0x7f);
        let limits = BlockLimits {
            max_transfer: 1024,
            optimal_transfer: 256,
            max_unmap_blocks: 1 << 20,
            max_unmap_descriptors: 16,
            unmap_granularity: 8,
            max_write_same: 1 << 20,
        };
        let p0 = vpd_page(0, &ID, &limits, true).expect("page 0");
        assert_eq!(&p0.as_slice()[4..], &VPD_PAGES);
        let p80 = vpd_page(0x80, &ID, &limits, true).expect("page 0x80");
        assert_eq!(&p80.as_slice()[4..], b"disk0-lun1");
        let p83 = vpd_page(0x83, &ID, &limits, true).expect("page 0x83");
        assert_eq!(
            usize::from(be16(p83.as_slice(), 2)) + 4,
            p83.as_slice().len()
        );
        assert_eq!(&p83.as_slice()[8..16], b"HVHOST  ");
        let b0 = vpd_page(0xb0, &ID, &limits, true).expect("page 0xb0");
        assert_eq!(parse_block_limits(b0.as_slice()), Ok(limits));
        let b2 = vpd_page(0xb2, &ID, &limits, true).expect("page 0xb2");
        assert_eq!(b2.as_slice()[5] & 0xc0, 0xc0);
        assert_eq!(
            vpd_page(0xb2, &ID, &limits, false).expect("b2").as_slice()[5],
            0
        );
        assert_eq!(vpd_page(0x89, &ID, &limits, true), None);
        // Every page's length field covers exactly its body.
        for page in VPD_PAGES {
            let d = vpd_page(page, &ID, &limits, true).expect("listed page");
            assert_eq!(
                usize::from(be16(d.as_slice(), 2)) + 4,
                d.as_slice().len(),
                "page {page:#x}"
            );
            assert_eq!(d.as_slice()[1], page);
        }
    }

    #[test]
    fn capacity_round_trips_and_saturates() {
        let c = Capacity {
            blocks: 1 << 33,
            block_size: 4096,
            physical_exponent: 0,
            thin: true,
        };
        assert_eq!(parse_read_capacity_16(&read_capacity_16(&c)), Ok(c));
        assert_eq!(&read_capacity_10(&c)[..4], &[0xff; 4]);
        let small = Capacity {
            blocks: 2048,
            block_size: 512,
            physical_exponent: 3,
            thin: false,
        };
        assert_eq!(read_capacity_10(&small), [0, 0, 0x07, 0xff, 0, 0, 2, 0]);
        assert_eq!(parse_read_capacity_16(&read_capacity_16(&small)), Ok(small));
        let mut bad = read_capacity_16(&small);
        bad[8..12].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(parse_read_capacity_16(&bad), Err(DataError::Invalid(8)));
        let mut wrap = read_capacity_16(&small);
        wrap[0..8].copy_from_slice(&[0xff; 8]);
        assert_eq!(parse_read_capacity_16(&wrap), Err(DataError::Invalid(0)));
        assert_eq!(
            parse_read_capacity_16(&[0; 8]),
            Err(DataError::Short(8, 16))
        );
    }

    #[test]
    fn mode_sense_round_trips() {
        for ten in [false, true] {
            for (wp, fua, wce) in [(false, true, true), (true, false, false)] {
                let info = ModeInfo {
                    write_protect: wp,
                    fua,
                    write_cache: wce,
                };
                for page in [CACHING_PAGE, ALL_PAGES] {
                    let d = mode_sense(ten, 0, page, 0, &info).expect("caching");
                    assert_eq!(parse_mode_sense(ten, d.as_slice()), Ok(info));
                }
                // Changeable values: nothing.
                let d = mode_sense(ten, 1, CACHING_PAGE, 0, &info).expect("changeable");
                assert!(
                    !parse_mode_sense(ten, d.as_slice())
                        .expect("parse")
                        .write_cache
                );
            }
        }
        let info = ModeInfo {
            write_protect: false,
            fua: false,
            write_cache: false,
        };
        assert_eq!(mode_sense(false, 0, 0x0a, 0, &info), None);
        assert_eq!(mode_sense(false, 0, 0x08, 1, &info), None);
        assert_eq!(parse_mode_sense(true, &[0; 4]), Err(DataError::Short(4, 8)));
    }

    #[test]
    fn report_luns_lists_each() {
        let d = report_luns(&[0, 1, 5]);
        assert_eq!(d.as_slice().len(), 8 + 24);
        assert_eq!(be32(d.as_slice(), 0), 24);
        assert_eq!(d.as_slice()[8 + 16 + 1], 5);
    }

    #[test]
    fn unmap_lists() {
        let mut buf = [0u8; 64];
        let n = unmap_list(&[(100, 8), (1 << 40, 16)], &mut buf).expect("fits");
        assert_eq!(n, 40);
        let l = UnmapList::parse(&buf[..n]).expect("valid");
        assert_eq!(l.len(), 2);
        let got: Vec<_> = l.ranges().collect();
        assert_eq!(got, vec![(100, 8), (1 << 40, 16)]);
        assert_eq!(
            UnmapList::parse(&buf[..7]).map(|l| l.len()),
            Err(UnmapError::Length)
        );
        // A header that claims more than was sent.
        assert_eq!(
            UnmapList::parse(&buf[..n - 1]).map(|l| l.len()),
            Err(UnmapError::Length)
        );
        let mut odd = buf;
        odd[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(
            UnmapList::parse(&odd[..n]).map(|l| l.len()),
            Err(UnmapError::DescriptorLength)
        );
        assert!(UnmapList::parse(&[]).expect("empty").is_empty());
        assert_eq!(unmap_list(&[(0, 1)], &mut [0; 23]), None);
    }

    #[test]
    fn report_luns_and_inquiry_parse_back() {
        let d = report_luns(&[0, 1, 5]);
        let luns: Vec<u8> = parse_report_luns(d.as_slice()).expect("valid").collect();
        assert_eq!(luns, vec![0, 1, 5]);
        // A list longer than the buffer yields what is there.
        let luns: Vec<u8> = parse_report_luns(&d.as_slice()[..16])
            .expect("valid")
            .collect();
        assert_eq!(luns, vec![0]);
        let mut flat = d;
        flat.bytes[8] = 0x40;
        assert_eq!(
            parse_report_luns(flat.as_slice()).err(),
            Some(DataError::Invalid(8))
        );
        let mut odd = d;
        odd.bytes[3] = 7;
        assert_eq!(
            parse_report_luns(odd.as_slice()).err(),
            Some(DataError::Invalid(0))
        );
        assert_eq!(
            parse_report_luns(&[0; 7]).err(),
            Some(DataError::Short(7, 8))
        );

        let disk = parse_inquiry(&inquiry(&ID, true)).expect("valid");
        assert!(disk.is_disk());
        let none = parse_inquiry(&inquiry(&ID, false)).expect("valid");
        assert_eq!((none.qualifier, none.device_type), (3, 0x1f));
        assert!(!none.is_disk());
        assert_eq!(parse_inquiry(&[0; 4]), Err(DataError::Short(4, 5)));
    }

    #[test]
    fn built_cdbs_have_their_forms() {
        let t = Transfer {
            lba: 7,
            blocks: 8,
            fua: false,
        };
        let sync = Command::SynchronizeCache(t).cdb().expect("builds");
        assert_eq!(sync.as_slice()[0], opcode::SYNCHRONIZE_CACHE_16);
        let unmap = Command::Unmap { param_len: 24 }.cdb().expect("builds");
        assert_eq!(unmap.as_slice().len(), 10);
        // Fields a form cannot carry are refused, not truncated.
        let big = Command::ModeSense {
            ten: false,
            dbd: true,
            pc: 0,
            page: 8,
            subpage: 0,
            alloc: 300,
        };
        assert_eq!(big.cdb(), None);
        assert_eq!(
            Command::Inquiry {
                evpd: false,
                page: 0x80,
                alloc: 64
            }
            .cdb(),
            None
        );
        assert_eq!(
            Command::SynchronizeCache(Transfer { fua: true, ..t }).cdb(),
            None
        );
    }

    fn transfer() -> impl Strategy<Value = Transfer> + Clone {
        (any::<u64>(), any::<u32>(), any::<bool>()).prop_map(|(lba, blocks, fua)| Transfer {
            lba,
            blocks,
            fua,
        })
    }

    fn command() -> impl Strategy<Value = Command> {
        let no_fua = transfer().prop_map(|t| Transfer { fua: false, ..t });
        prop_oneof![
            Just(Command::TestUnitReady),
            any::<u8>().prop_map(|alloc| Command::RequestSense { alloc }),
            (any::<bool>(), any::<u8>(), any::<u16>()).prop_map(|(evpd, page, alloc)| {
                Command::Inquiry {
                    evpd,
                    page: if evpd { page } else { 0 },
                    alloc,
                }
            }),
            (
                any::<bool>(),
                any::<bool>(),
                0u8..4,
                0u8..0x40,
                any::<u8>(),
                any::<u16>()
            )
                .prop_map(|(ten, dbd, pc, page, subpage, alloc)| Command::ModeSense {
                    ten,
                    dbd,
                    pc,
                    page,
                    subpage,
                    alloc: if ten { alloc } else { alloc & 0xff },
                }),
            Just(Command::NoOp(opcode::START_STOP_UNIT)),
            Just(Command::ReadCapacity10),
            any::<u32>().prop_map(|alloc| Command::ReadCapacity16 { alloc }),
            transfer().prop_map(Command::Read),
            transfer().prop_map(Command::Write),
            no_fua.clone().prop_map(Command::Verify),
            no_fua.clone().prop_map(Command::SynchronizeCache),
            any::<u16>().prop_map(|param_len| Command::Unmap { param_len }),
            (no_fua, any::<bool>(), any::<bool>())
                .prop_map(|(range, unmap, ndob)| Command::WriteSame { range, unmap, ndob }),
            (any::<u8>(), any::<u32>())
                .prop_map(|(select, alloc)| Command::ReportLuns { select, alloc }),
        ]
    }

    proptest! {
        #[test]
        fn any_cdb_parses_or_fails_cleanly(cdb in proptest::collection::vec(any::<u8>(), 0..20)) {
            match Command::parse(&cdb) {
                Ok(_) => prop_assert!(cdb_length(cdb[0]).is_some_and(|n| cdb.len() >= n)),
                Err(e) => {
                    let s = e.sense();
                    prop_assert_eq!(s.key, sense_key::ILLEGAL_REQUEST);
                    prop_assert_eq!(Sense::parse(&s.to_bytes()), Some(s));
                }
            }
        }

        #[test]
        fn rw16_round_trips(lba in any::<u64>(), blocks in any::<u32>(), fua in any::<bool>(), write in any::<bool>()) {
            let t = Transfer { lba, blocks, fua };
            let want = if write { Command::Write(t) } else { Command::Read(t) };
            prop_assert_eq!(Command::parse(&Command::rw16(write, t)), Ok(want));
        }

        #[test]
        fn built_cdbs_parse_back(c in command()) {
            let cdb = c.cdb().expect("a command of a buildable form");
            prop_assert_eq!(cdb.as_slice().len(), cdb_length(cdb.as_slice()[0]).expect("fixed length"));
            prop_assert_eq!(Command::parse(cdb.as_slice()), Ok(c));
        }

        #[test]
        fn any_luns_data_parses_or_fails_cleanly(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(luns) = parse_report_luns(&data) {
                prop_assert!(luns.count() * 8 + 8 <= data.len());
            }
            if let Ok(i) = parse_inquiry(&data) {
                prop_assert!(i.qualifier < 8 && i.device_type < 32);
            }
        }

        #[test]
        fn any_data_parses_or_fails_cleanly(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse_read_capacity_16(&data);
            let _ = parse_block_limits(&data);
            let _ = parse_mode_sense(false, &data);
            let _ = parse_mode_sense(true, &data);
            let _ = Sense::parse(&data);
            if let Ok(l) = UnmapList::parse(&data) {
                prop_assert!(8 + l.len() * UNMAP_DESCRIPTOR_LEN <= data.len().max(8));
                prop_assert_eq!(l.ranges().count(), l.len());
            }
        }

        #[test]
        fn unmap_lists_round_trip(ranges in proptest::collection::vec((any::<u64>(), any::<u32>()), 0..8)) {
            let mut buf = [0u8; 8 + 16 * 8];
            let n = unmap_list(&ranges, &mut buf).expect("fits");
            let l = UnmapList::parse(&buf[..n]).expect("valid");
            prop_assert_eq!(l.ranges().collect::<Vec<_>>(), ranges);
        }
    }
}
