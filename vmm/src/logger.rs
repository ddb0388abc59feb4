// SPDX-License-Identifier: GPL-2.0

//! Logging to stderr through `log` + env_logger, one line per record:
//! `hvhost: MESSAGE` at info, `hvhost: LEVEL: MESSAGE` otherwise (with the module path at
//! debug and trace). stdout stays free for the guest's serial console.
//! Errors and warnings logged are counted ([`counts`]) for the exit report.
//!
//! Most of what hvhost logs, a guest can cause (a refused hypercall, a
//! dropped message), so a guest could fill the host's log. Each place in
//! the code that logs (file and line) writes at most [`SITE_BURST`]
//! records per [`SITE_WINDOW`]; the rest are counted, not written, and the
//! place's next record after the window says how many it held back. The
//! counts of errors and warnings include them all.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

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

/// Records one place in the code writes per [`SITE_WINDOW`].
pub const SITE_BURST: u32 = 100;
/// The window of [`SITE_BURST`].
pub const SITE_WINDOW: Duration = Duration::from_secs(10);

/// What a place in the code may do with its next record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write it; `held_back` records of this place were not written
    /// since its last written one.
    Write {
        /// Records not written before this one.
        held_back: u64,
    },
    /// Count it, do not write it.
    HoldBack,
}

/// One place's window.
#[derive(Clone, Copy, Debug)]
struct Site {
    window_start: Instant,
    written: u32,
    held_back: u64,
}

/// The per-place limit of [`SITE_BURST`] records per [`SITE_WINDOW`].
#[derive(Debug, Default)]
pub struct SiteLimiter {
    sites: HashMap<(&'static str, u32), Site>,
}

impl SiteLimiter {
    /// Whether the place `file:line` may write a record at `now`.
    pub fn admit(&mut self, file: &'static str, line: u32, now: Instant) -> Admit {
        let site = self.sites.entry((file, line)).or_insert(Site {
            window_start: now,
            written: 0,
            held_back: 0,
        });
        if now.saturating_duration_since(site.window_start) >= SITE_WINDOW {
            site.window_start = now;
            site.written = 0;
        }
        if site.written < SITE_BURST {
            site.written += 1;
            let held_back = std::mem::take(&mut site.held_back);
            Admit::Write { held_back }
        } else {
            site.held_back += 1;
            Admit::HoldBack
        }
    }
}

fn limiter() -> &'static Mutex<SiteLimiter> {
    static LIMITER: OnceLock<Mutex<SiteLimiter>> = OnceLock::new();
    LIMITER.get_or_init(Mutex::default)
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
            let admit = limiter()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(
                    record.file_static().unwrap_or("?"),
                    record.line().unwrap_or(0),
                    Instant::now(),
                );
            match admit {
                Admit::HoldBack => Ok(()),
                Admit::Write { held_back: 0 } => format_record(buf, record),
                Admit::Write { held_back } => {
                    writeln!(
                        buf,
                        "hvhost: {held_back} more like the next were not written (at most \
                         {SITE_BURST} every {} s from one place)",
                        SITE_WINDOW.as_secs()
                    )?;
                    format_record(buf, record)
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_writes_its_burst_per_window_then_says_how_many_it_held() {
        let mut l = SiteLimiter::default();
        let t0 = Instant::now();
        for _ in 0..SITE_BURST {
            assert_eq!(l.admit("a.rs", 1, t0), Admit::Write { held_back: 0 });
        }
        for _ in 0..5 {
            assert_eq!(l.admit("a.rs", 1, t0), Admit::HoldBack);
        }
        // Another place has its own budget.
        assert_eq!(l.admit("a.rs", 2, t0), Admit::Write { held_back: 0 });
        assert_eq!(l.admit("b.rs", 1, t0), Admit::Write { held_back: 0 });
        let later = t0 + SITE_WINDOW;
        assert_eq!(l.admit("a.rs", 1, later), Admit::Write { held_back: 5 });
        assert_eq!(l.admit("a.rs", 1, later), Admit::Write { held_back: 0 });
    }
}
