// SPDX-License-Identifier: GPL-2.0

//! The host side of "hybrid vsock", the convention of Firecracker and Cloud
//! Hypervisor that host programs already speak, over which hvhost is to
//! relay Hyper-V sockets (issue 15):
//!
//! - **Guest connects to port N:** the VMM connects to the Unix socket
//!   `PATH_N` ([`guest_port_path`]).
//! - **Host connects to a guest:** a host program connects to `PATH`,
//!   writes `CONNECT N\n` ([`parse_connect`]), and once the guest accepted
//!   reads `OK <host-port>\n` ([`ok_reply`]); the host port comes from
//!   [`HostPorts`]. A refusal closes the stream without the `OK`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Longest command line a host program may send before it is refused
/// (as Cloud Hypervisor: `CONNECT 4294967295\n` fits).
pub const MAX_COMMAND: usize = 32;

/// Why a host program's command was refused. The connection is closed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No newline within [`MAX_COMMAND`] bytes.
    #[error("no command within {MAX_COMMAND} bytes")]
    TooLong,
    /// Not `CONNECT <port>`.
    #[error("expected \"CONNECT <port>\", got {0:?}")]
    Malformed(String),
    /// The port is not a decimal u32.
    #[error("port {0:?} is not a number from 0 to 4294967295")]
    BadPort(String),
}

/// What a host program has sent so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// No newline yet: read more.
    Incomplete,
    /// `CONNECT <port>`, and the bytes after its newline (stream data the
    /// program sent early, for the guest).
    Connect {
        /// The guest port.
        port: u32,
        /// Bytes past the command.
        rest_at: usize,
    },
}

/// Parses the command at the start of `buf`: `CONNECT`, in any case, one
/// space, a decimal port, and a newline (a carriage return before it is
/// allowed).
pub fn parse_connect(buf: &[u8]) -> Result<Command, CommandError> {
    let Some(nl) = buf.iter().take(MAX_COMMAND).position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_COMMAND {
            Err(CommandError::TooLong)
        } else {
            Ok(Command::Incomplete)
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let (_, port) = text
        .split_once(' ')
        .filter(|(verb, _)| verb.eq_ignore_ascii_case("connect"))
        .ok_or_else(|| CommandError::Malformed(text.to_string()))?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::BadPort(port.to_string()));
    }
    let port = port
        .parse::<u32>()
        .map_err(|_| CommandError::BadPort(port.to_string()))?;
    Ok(Command::Connect {
        port,
        rest_at: nl + 1,
    })
}

/// The answer to a host program whose connection the guest accepted.
pub fn ok_reply(host_port: u32) -> String {
    format!("OK {host_port}\n")
}

/// The Unix socket a guest's connection to `port` goes to: `PATH_port`.
pub fn guest_port_path(base: &Path, port: u32) -> PathBuf {
    let mut name = OsString::from(base.as_os_str());
    name.push(format!("_{port}"));
    PathBuf::from(name)
}

/// The host ports of host-initiated connections: from 2^30 upward, as
/// Cloud Hypervisor allocates them, each unique while it is in use, at most
/// `limit` at a time.
#[derive(Debug)]
pub struct HostPorts {
    in_use: BTreeSet<u32>,
    next: u32,
    limit: usize,
}

/// The first host port handed out.
pub const FIRST_HOST_PORT: u32 = 1 << 30;

impl HostPorts {
    /// No port in use; at most `limit` at once.
    pub fn new(limit: usize) -> Self {
        Self {
            in_use: BTreeSet::new(),
            next: FIRST_HOST_PORT,
            limit,
        }
    }

    /// A free port, or `None` when `limit` are in use.
    pub fn allocate(&mut self) -> Option<u32> {
        if self.in_use.len() >= self.limit {
            return None;
        }
        // At most `limit` are in use and the range holds 3 * 2^30 ports,
        // so this finds one within `limit + 1` steps.
        loop {
            let port = self.next;
            self.next = match self.next.checked_add(1) {
                Some(n) => n,
                None => FIRST_HOST_PORT,
            };
            if self.in_use.insert(port) {
                return Some(port);
            }
        }
    }

    /// Gives `port` back; false if it was not in use.
    pub fn release(&mut self, port: u32) -> bool {
        self.in_use.remove(&port)
    }

    /// Ports in use.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connect_commands() {
        assert_eq!(
            parse_connect(b"CONNECT 1234\n"),
            Ok(Command::Connect {
                port: 1234,
                rest_at: 13
            })
        );
        assert_eq!(
            parse_connect(b"connect 52\r\nhello"),
            Ok(Command::Connect {
                port: 52,
                rest_at: 12
            })
        );
        assert_eq!(parse_connect(b"CONNECT 12"), Ok(Command::Incomplete));
        assert_eq!(
            parse_connect(b"CONNECT 4294967296\n"),
            Err(CommandError::BadPort("4294967296".into()))
        );
        assert_eq!(
            parse_connect(b"CONNECT -1\n"),
            Err(CommandError::BadPort("-1".into()))
        );
        assert_eq!(
            parse_connect(b"CONNECT \n"),
            Err(CommandError::BadPort(String::new()))
        );
        assert_eq!(
            parse_connect(b"LISTEN 5\n"),
            Err(CommandError::Malformed("LISTEN 5".into()))
        );
        assert_eq!(
            parse_connect(&[b'x'; MAX_COMMAND]),
            Err(CommandError::TooLong)
        );
        assert_eq!(ok_reply(1 << 30), "OK 1073741824\n");
    }

    #[test]
    fn guest_ports_name_sockets() {
        assert_eq!(
            guest_port_path(Path::new("/run/vm/v.sock"), 52),
            PathBuf::from("/run/vm/v.sock_52")
        );
    }

    #[test]
    fn host_ports_are_unique_and_bounded() {
        let mut ports = HostPorts::new(2);
        let a = ports.allocate();
        let b = ports.allocate();
        assert_eq!((a, b), (Some(FIRST_HOST_PORT), Some(FIRST_HOST_PORT + 1)));
        assert_eq!(ports.allocate(), None, "the limit holds");
        assert!(ports.release(FIRST_HOST_PORT));
        assert!(!ports.release(FIRST_HOST_PORT), "a port is released once");
        assert_eq!(ports.allocate(), Some(FIRST_HOST_PORT + 2));
    }

    #[test]
    fn host_ports_wrap_past_the_top_and_skip_those_in_use() {
        let mut ports = HostPorts::new(4);
        ports.next = u32::MAX;
        assert_eq!(ports.allocate(), Some(u32::MAX));
        assert_eq!(ports.allocate(), Some(FIRST_HOST_PORT));
        ports.next = u32::MAX;
        assert_eq!(ports.allocate(), Some(FIRST_HOST_PORT + 1));
    }

    proptest! {
        /// Whatever a host program sends, the parser answers, and an
        /// accepted command is a CONNECT with the port it names.
        #[test]
        fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(Command::Connect { port, rest_at }) = parse_connect(&bytes) {
                let line = String::from_utf8_lossy(&bytes[..rest_at]).to_ascii_uppercase();
                prop_assert!(line.starts_with("CONNECT "));
                prop_assert!(line.trim_end().ends_with(&port.to_string()));
                prop_assert!(rest_at <= MAX_COMMAND);
            }
        }

        #[test]
        fn every_port_parses(port: u32) {
            let cmd = format!("CONNECT {port}\n");
            prop_assert_eq!(
                parse_connect(cmd.as_bytes()),
                Ok(Command::Connect { port, rest_at: cmd.len() })
            );
        }

        /// Allocations and releases in any order never hand out a port in
        /// use and never exceed the limit.
        #[test]
        fn allocations_stay_unique(ops in proptest::collection::vec(any::<Option<u8>>(), 1..200)) {
            let mut ports = HostPorts::new(16);
            let mut held: Vec<u32> = Vec::new();
            for op in ops {
                match op {
                    None => {
                        if let Some(p) = ports.allocate() {
                            prop_assert!(!held.contains(&p));
                            prop_assert!(p >= FIRST_HOST_PORT);
                            held.push(p);
                        } else {
                            prop_assert_eq!(held.len(), 16);
                        }
                    }
                    Some(i) if !held.is_empty() => {
                        let p = held.swap_remove(usize::from(i) % held.len());
                        prop_assert!(ports.release(p));
                    }
                    Some(_) => {}
                }
                prop_assert_eq!(ports.in_use(), held.len());
            }
        }
    }
}
