// SPDX-License-Identifier: GPL-2.0

//! Logging to stderr through `log` + env_logger, one line per record:
//! `hvhost: MESSAGE` at info, `hvhost: LEVEL: MESSAGE` otherwise (with the module path at
//! debug and trace). stdout stays free for the guest's serial console.
//! Errors and warnings logged are counted ([`counts`]) for the exit report.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use log::{Level, LevelFilter};

static ERRORS: AtomicU64 = AtomicU64::new(0);
static WARNINGS: AtomicU64 = AtomicU64::new(0);

/// Errors and warnings logged so far.
pub fn counts() -> (u64, u64) {
    (
        ERRORS.load(Ordering::Relaxed),
        WARNINGS.load(Ordering::Relaxed),
    )
}

/// Installs the logger. Calling it twice keeps the first logger.
pub fn init(level: LevelFilter) {
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            match record.level() {
                Level::Error => ERRORS.fetch_add(1, Ordering::Relaxed),
                Level::Warn => WARNINGS.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            format_record(buf, record)
        })
        .try_init();
}

fn format_record(
    buf: &mut env_logger::fmt::Formatter,
    record: &log::Record<'_>,
) -> std::io::Result<()> {
    match record.level() {
        Level::Info => writeln!(buf, "hvhost: {}", record.args()),
        Level::Error | Level::Warn => writeln!(
            buf,
            "hvhost: {}: {}",
            record.level().as_str().to_lowercase(),
            record.args()
        ),
        Level::Debug | Level::Trace => writeln!(
            buf,
            "hvhost: {}: [{}] {}",
            record.level().as_str().to_lowercase(),
            record.module_path().unwrap_or("?"),
            record.args()
        ),
    }
}
