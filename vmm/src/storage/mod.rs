// SPDX-License-Identifier: GPL-2.0

//! Storage: disk images as SCSI disks on one controller, the host half of
//! the VSTOR protocol's commands.
//!
//! - [`image`]: a raw image file or block device, locked and sized;
//! - [`disk`]: a SCSI disk over an image (SBC-3 as Linux's `sd` uses it);
//! - [`guest_buffer`]: a request's data in guest pages, its range checked;
//! - [`protocol`]: the VSP's protocol state (initialisation, sub-channels);
//! - here: the controller (LUNs on target 0, REPORT LUNS, absent LUNs)
//!   and the `--disk` specification.

pub mod disk;
pub mod fault;
pub mod guest_buffer;
pub mod image;
pub mod protocol;

use std::path::PathBuf;
use std::str::FromStr;

use vmbus::scsi::{self, asc, sense_key, status, Command, Sense};
use vmbus::vstor::srb;

use disk::{DataBuffer, DiskCounters, Outcome, ScsiDisk};
use image::{DiskImage, ImageError};

/// Most LUNs on the controller (Linux scans LUNs 0..=255; REPORT LUNS here
/// lists up to 8).
pub const MAX_LUNS: usize = 8;

/// One `--disk PATH[,readonly][,lun=N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// The image.
    pub path: PathBuf,
    /// Opened read-only, reported write-protected.
    pub read_only: bool,
    /// The LUN, or the next free one.
    pub lun: Option<u8>,
}

impl FromStr for DiskSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(',');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err("--disk needs a path: PATH[,readonly][,lun=N]".into());
        }
        let mut spec = DiskSpec {
            path: PathBuf::from(path),
            read_only: false,
            lun: None,
        };
        for opt in parts {
            match opt.split_once('=') {
                None if opt == "readonly" => spec.read_only = true,
                Some(("lun", n)) => {
                    let lun: u8 = n
                        .parse()
                        .ok()
                        .filter(|l| usize::from(*l) < MAX_LUNS)
                        .ok_or_else(|| format!("lun={n}: a LUN is 0..{}", MAX_LUNS - 1))?;
                    spec.lun = Some(lun);
                }
                _ => return Err(format!("--disk option {opt:?}: expected readonly or lun=N")),
            }
        }
        Ok(spec)
    }
}

/// Why the disks cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An image could not be opened.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Two disks asked for one LUN.
    #[error("two disks on LUN {lun}: {} and {}", first.display(), second.display())]
    DuplicateLun {
        /// The LUN.
        lun: u8,
        /// The disk that has it.
        first: PathBuf,
        /// The disk that asked for it too.
        second: PathBuf,
    },
    /// More disks than LUNs.
    #[error("more than {MAX_LUNS} disks")]
    TooManyDisks,
}

/// How a command ended, for the VSTOR completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The SRB status (without the autosense flag, which the sense sets).
    pub srb_status: u8,
    /// The command's outcome.
    pub outcome: Outcome,
}

/// The SCSI controller: disks by LUN on target 0.
#[derive(Default)]
pub struct Controller {
    disks: [Option<ScsiDisk>; MAX_LUNS],
}

impl Controller {
    /// A controller with the disks of `specs`, each opened and locked.
    pub fn new(specs: &[DiskSpec]) -> Result<Self, StorageError> {
        let mut c = Self::default();
        for spec in specs {
            c.add(spec)?;
        }
        Ok(c)
    }

    /// Adds a disk; its LUN.
    pub fn add(&mut self, spec: &DiskSpec) -> Result<u8, StorageError> {
        let image = DiskImage::open(&spec.path, spec.read_only)?;
        self.insert(spec.lun, image)
    }

    /// Adds an image already open at `lun`, or at the first free LUN; the LUN.
    pub fn insert(&mut self, lun: Option<u8>, image: DiskImage) -> Result<u8, StorageError> {
        let lun = match lun {
            Some(l) => l,
            None => self
                .disks
                .iter()
                .position(Option::is_none)
                .and_then(|l| u8::try_from(l).ok())
                .ok_or(StorageError::TooManyDisks)?,
        };
        if let Some(d) = &self.disks[usize::from(lun)] {
            return Err(StorageError::DuplicateLun {
                lun,
                first: d.image().path().to_path_buf(),
                second: image.path().to_path_buf(),
            });
        }
        self.disks[usize::from(lun)] = Some(ScsiDisk::new(image, &format!("hvhost-lun{lun}")));
        Ok(lun)
    }

    /// Removes the disk at `lun`; whether there was one.
    pub fn remove(&mut self, lun: u8) -> bool {
        self.disks
            .get_mut(usize::from(lun))
            .and_then(Option::take)
            .is_some()
    }

    /// The LUNs with a disk.
    pub fn luns(&self) -> impl Iterator<Item = u8> + '_ {
        self.disks
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_some())
            .filter_map(|(l, _)| u8::try_from(l).ok())
    }

    /// The disk at `lun`.
    pub fn disk(&self, lun: u8) -> Option<&ScsiDisk> {
        self.disks.get(usize::from(lun)).and_then(Option::as_ref)
    }

    /// Per-LUN counters.
    pub fn counters(&self) -> impl Iterator<Item = (u8, DiskCounters)> + '_ {
        self.luns()
            .filter_map(|l| self.disk(l).map(|d| (l, d.counters())))
    }

    /// Executes `cdb` for `path`/`target`/`lun` with `buf` as its data.
    ///
    /// Only path (channel) 0, target 0 has LUNs: Linux's storvsc scans
    /// channels 0..7 and targets 0..1, and must find each disk once. INQUIRY of an absent LUN (or target) answers
    /// "no device" (peripheral qualifier 3), and REPORT LUNS lists the
    /// disks, as SCSI has it; any other command to an absent LUN ends with
    /// SRB status INVALID_LUN, which Linux takes as "nothing there".
    pub fn execute(
        &mut self,
        path: u8,
        target: u8,
        lun: u8,
        cdb: &[u8],
        buf: &mut dyn DataBuffer,
    ) -> Completion {
        let parsed = Command::parse(cdb);
        if let Ok(Command::ReportLuns { alloc, .. }) = parsed {
            let luns: Vec<u8> = if path == 0 && target == 0 {
                self.luns().collect()
            } else {
                Vec::new()
            };
            let data = scsi::report_luns(&luns);
            let n = data
                .as_slice()
                .len()
                .min(usize::try_from(alloc).unwrap_or(usize::MAX))
                .min(buf.len());
            let written = buf.write_at(0, &data.as_slice()[..n]).is_ok();
            return Completion {
                srb_status: if written { srb::SUCCESS } else { srb::ERROR },
                outcome: Outcome {
                    status: status::GOOD,
                    sense: None,
                    moved: if written { n as u32 } else { 0 },
                    kind: disk::Kind::Other,
                },
            };
        }
        let disk = if path == 0 && target == 0 {
            self.disks
                .get_mut(usize::from(lun))
                .and_then(Option::as_mut)
        } else {
            None
        };
        let Some(d) = disk else {
            return absent(parsed, buf);
        };
        let outcome = d.execute(cdb, buf);
        Completion {
            srb_status: if outcome.status == status::GOOD {
                srb::SUCCESS
            } else {
                srb::ERROR
            },
            outcome,
        }
    }
}

/// A command to a LUN with no disk: INQUIRY answers "no device"
/// (peripheral qualifier 3); anything else is INVALID_LUN.
fn absent(parsed: Result<Command, scsi::CdbError>, buf: &mut dyn DataBuffer) -> Completion {
    if let Ok(Command::Inquiry {
        evpd: false, alloc, ..
    }) = parsed
    {
        let id = scsi::Identity {
            vendor: b"HVHOST  ",
            product: b"Virtual Disk    ",
            revision: b"1.0 ",
            serial: b"",
        };
        let data = scsi::inquiry(&id, false);
        let n = data.len().min(usize::from(alloc)).min(buf.len());
        let written = buf.write_at(0, &data[..n]).is_ok();
        return Completion {
            srb_status: if written { srb::SUCCESS } else { srb::ERROR },
            outcome: Outcome {
                status: status::GOOD,
                sense: None,
                moved: if written { n as u32 } else { 0 },
                kind: disk::Kind::Other,
            },
        };
    }
    Completion {
        srb_status: srb::INVALID_LUN,
        outcome: Outcome {
            status: status::CHECK_CONDITION,
            sense: Some(Sense::new(
                sense_key::ILLEGAL_REQUEST,
                asc::LOGICAL_UNIT_NOT_SUPPORTED,
            )),
            moved: 0,
            kind: disk::Kind::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(bytes: u64) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        f.as_file().set_len(bytes).expect("size");
        f
    }

    fn spec(s: &str) -> DiskSpec {
        s.parse().expect("spec")
    }

    #[test]
    fn disk_specs_parse_and_refuse_clearly() {
        assert_eq!(
            spec("/a.img,readonly,lun=3"),
            DiskSpec {
                path: "/a.img".into(),
                read_only: true,
                lun: Some(3)
            }
        );
        assert_eq!(
            spec("/b.img"),
            DiskSpec {
                path: "/b.img".into(),
                read_only: false,
                lun: None
            }
        );
        assert!("".parse::<DiskSpec>().is_err());
        assert!("/a,lun=8"
            .parse::<DiskSpec>()
            .expect_err("lun 8")
            .contains("0..7"));
        assert!("/a,lun=x".parse::<DiskSpec>().is_err());
        assert!("/a,rw"
            .parse::<DiskSpec>()
            .expect_err("rw")
            .contains("\"rw\""));
    }

    #[test]
    fn luns_are_assigned_and_duplicates_refused() {
        let (a, b) = (image(4096), image(8192));
        let mut c = Controller::new(&[
            DiskSpec {
                path: a.path().into(),
                read_only: false,
                lun: Some(1),
            },
            DiskSpec {
                path: b.path().into(),
                read_only: true,
                lun: None,
            },
        ])
        .expect("controller");
        assert_eq!(c.luns().collect::<Vec<_>>(), vec![0, 1]);
        let dup = image(4096);
        let e = c
            .add(&DiskSpec {
                path: dup.path().into(),
                read_only: false,
                lun: Some(1),
            })
            .expect_err("duplicate");
        assert!(
            matches!(e, StorageError::DuplicateLun { lun: 1, .. }),
            "{e}"
        );
        // The same image twice, writable: its lock refuses it.
        let e = c
            .add(&DiskSpec {
                path: a.path().into(),
                read_only: false,
                lun: Some(2),
            })
            .expect_err("locked");
        assert!(
            matches!(e, StorageError::Image(ImageError::Locked { .. })),
            "{e}"
        );
        assert!(c.remove(1));
        assert!(!c.remove(1));
        assert_eq!(c.luns().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn report_luns_and_absent_luns() {
        let a = image(4096);
        let mut c = Controller::new(&[DiskSpec {
            path: a.path().into(),
            read_only: false,
            lun: Some(2),
        }])
        .expect("controller");
        let mut buf = vec![0; 64];
        let done = c.execute(0, 0, 0, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], &mut buf);
        assert_eq!((done.srb_status, done.outcome.moved), (srb::SUCCESS, 16));
        assert_eq!(buf[9], 2);
        // INQUIRY of an absent LUN: "no device", not an error.
        let done = c.execute(0, 0, 5, &[0x12, 0, 0, 0, 36, 0], &mut buf);
        assert_eq!((done.srb_status, buf[0]), (srb::SUCCESS, scsi::NO_DEVICE));
        // Other commands to it, or to another target: INVALID_LUN.
        let done = c.execute(0, 0, 5, &[0, 0, 0, 0, 0, 0], &mut buf);
        assert_eq!(done.srb_status, srb::INVALID_LUN);
        let done = c.execute(0, 1, 2, &[0, 0, 0, 0, 0, 0], &mut buf);
        assert_eq!(done.srb_status, srb::INVALID_LUN);
        let done = c.execute(0, 0, 2, &[0, 0, 0, 0, 0, 0], &mut buf);
        assert_eq!(
            (done.srb_status, done.outcome.status),
            (srb::SUCCESS, status::GOOD)
        );
        // The same address on another path (SCSI channel) has nothing.
        let done = c.execute(3, 0, 2, &[0x12, 0, 0, 0, 36, 0], &mut buf);
        assert_eq!((done.srb_status, buf[0]), (srb::SUCCESS, scsi::NO_DEVICE));
        let done = c.execute(3, 0, 2, &[0, 0, 0, 0, 0, 0], &mut buf);
        assert_eq!(done.srb_status, srb::INVALID_LUN);
        let done = c.execute(0, 0, 2, &[0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0], &mut buf);
        assert_eq!(done.srb_status, srb::ERROR, "LBA 8 of an 8-block disk");
    }
}
