// SPDX-License-Identifier: GPL-2.0

//! The host side of the serial console: the terminal's raw mode and blocked termination
//! signals.
//!
//! [`RawTerminal`] restores the terminal settings it found when dropped, which happens on
//! every way out of [`crate::builder::run`]: a normal VM exit, an error (`?`), a panic
//! unwinding through it, and a termination signal (delivered through [`SignalFd`] to the
//! event loop, which then returns normally).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use vmm_sys_util::signal::{block_signal, create_sigset};
use vmm_sys_util::terminal::Terminal;

/// Why the terminal or the termination signals could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A host OS call failed.
    #[error("cannot {what}: {source}")]
    Os {
        /// What hvhost tried to do, as a verb phrase.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl ConsoleError {
    /// Shorthand for [`ConsoleError::Os`].
    pub fn os(what: &'static str, source: io::Error) -> Self {
        ConsoleError::Os { what, source }
    }
}

/// Signals that end hvhost cleanly instead of killing it.
pub const TERMINATION_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Stdin in raw mode; restores the previous mode when dropped.
pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// Puts the terminal on stdin into raw mode (no line editing, echo or signal keys).
    pub fn enter() -> Result<Self, ConsoleError> {
        let fd = libc::STDIN_FILENO;
        // SAFETY: termios is plain old data; an all-zero value is valid and is overwritten
        // by tcgetattr below.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is stdin, open for the life of the process, and `saved` is a valid,
        // exclusively borrowed termios for tcgetattr to fill.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(ConsoleError::os(
                "read the terminal settings",
                io::Error::last_os_error(),
            ));
        }
        io::stdin()
            .lock()
            .set_raw_mode()
            .map_err(|e| ConsoleError::os("put the terminal in raw mode", e.into()))?;
        Ok(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: stdin is open for the life of the process and `saved` is the valid termios
        // tcgetattr returned for it.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) } != 0 {
            log::warn!(
                "cannot restore the terminal settings: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// Reads what is available on stdin without going through std's buffer (which would hide
/// bytes from epoll).
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    io::stdin().lock().read_raw(buf).map_err(io::Error::from)
}

/// Termination signals, blocked in every thread and delivered as readable data.
pub struct SignalFd {
    file: File,
}

impl SignalFd {
    /// Blocks `signals` in the calling thread (threads it starts later inherit that) and
    /// opens a signalfd for them. Call before starting the vCPU threads.
    pub fn block_and_open(signals: &[libc::c_int]) -> Result<Self, ConsoleError> {
        for &sig in signals {
            block_signal(sig).map_err(|e| {
                ConsoleError::os(
                    "block termination signals",
                    io::Error::other(format!("{e:?}")),
                )
            })?;
        }
        let set = create_sigset(signals)
            .map_err(|e| ConsoleError::os("build the termination signal set", e.into()))?;
        // SAFETY: `set` is an initialised sigset_t; -1 asks for a new descriptor; the flags
        // are valid for signalfd.
        let fd: RawFd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(ConsoleError::os(
                "create a signalfd",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: signalfd just returned this descriptor; nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(Self { file })
    }

    /// The next pending signal number, if any.
    pub fn read_signal(&self) -> io::Result<Option<i32>> {
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        match (&self.file).read(&mut buf) {
            Ok(n) if n == buf.len() => {
                // ssi_signo is the first field.
                let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
                Ok(Some(i32::try_from(signo).unwrap_or(i32::MAX)))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
