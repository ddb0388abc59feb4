// SPDX-License-Identifier: GPL-2.0

//! Control files: debugfs files that take a command when written and show
//! what it did when read. The two halves every one of them needs; they
//! depend on nothing of this module, so any layer can use them.

use kernel::prelude::*;
use kernel::uaccess::UserSliceReader;

/// Reads the command written to a control file into `buf` (a longer write
/// is cut at its size) and returns it trimmed; `EINVAL` if not UTF-8.
pub(crate) fn read_command<'a>(reader: &mut UserSliceReader, buf: &'a mut [u8]) -> Result<&'a str> {
    let n = reader.len().min(buf.len());
    reader.read_slice(&mut buf[..n])?;
    Ok(core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?.trim())
}

/// The text a control file's last command left (a report, KTAP).
#[cfg(hv_guest_selftest)]
pub(crate) fn show_report(
    report: &kernel::sync::Mutex<KVec<u8>>,
    f: &mut core::fmt::Formatter<'_>,
) -> core::fmt::Result {
    let out = report.lock();
    f.write_str(core::str::from_utf8(&out).unwrap_or("# (not UTF-8)\n"))
}
