// SPDX-License-Identifier: GPL-2.0

//! Logging to stderr through `log` + env_logger, one line per record:
//! `hvhost: MESSAGE` at info, `hvhost: LEVEL: MESSAGE` otherwise (with the module path at
//! debug and trace). stdout stays free for the guest's serial console.

use std::io::Write;

use log::{Level, LevelFilter};

/// Installs the logger. Calling it twice keeps the first logger.
pub fn init(level: LevelFilter) {
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .format(|buf, record| match record.level() {
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
        })
        .try_init();
}
