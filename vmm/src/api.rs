// SPDX-License-Identifier: GPL-2.0

//! The control socket (`--api-socket PATH`): a running hvhost takes
//! requests from the host side, one line each, and answers one line.
//!
//! Requests (see [`Request::parse`]):
//! - `devices`: the VMBus devices, one `relid name state` per line;
//! - `remove NAME|RELID`: remove a VMBus device (the guest is sent a rescind);
//! - `add NAME`: add a VMBus device (`heartbeat`, `shutdown`, `timesync`),
//!   offered at once if the guest is connected;
//! - `shutdown`: ask the guest to shut down (as SIGTERM does);
//! - `stats`: the VMBus server's counters;
//! - `serial`: each 16550's registers and counters, a `serial port=...`
//!   record per UART;
//! - `storage-fault KIND`: the SCSI controller commits fault KIND on its
//!   next completion (`storage::fault`: a hostile host, for tests);
//! - `vsock-fault KIND`: the socket relay commits fault KIND on its next
//!   data packet to the guest, or makes an offer nobody asked for
//!   (`vsock::fault`, for tests);
//! - `disk-add PATH[,readonly][,lun=N]`: a disk on the SCSI controller
//!   (the guest is told to rescan); `disk-remove LUN`: take one away once
//!   the I/O queued for it is done (the guest rescans and drops it);
//! - `debugcon TEXT`: queue the line TEXT for the guest to read on the
//!   debug console port (printable ASCII; the test rig's answers).
//!
//! Answers start with `ok` or `error:`; multi-line answers end with an
//! empty line. The socket is a Unix stream socket created by hvhost (an
//! existing file at PATH is an error, not overwritten) and removed when
//! hvhost exits. One thread accepts connections and serves them in turn;
//! a client that sends nothing for [`CLIENT_TIMEOUT`] is dropped, so a
//! stuck client cannot stop the next one. Requests are executed by the
//! VMBus worker ([`crate::vmbus::Vmbus::control`]), never on this thread.

use crate::sandbox::seccomp::{self, ThreadClass};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a client may take to send its request.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request line accepted.
pub const MAX_REQUEST: usize = 256;

/// Which VMBus device a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceRef {
    /// By relid.
    Relid(u32),
    /// By name (the first device of that name).
    Name(String),
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// List the VMBus devices.
    Devices,
    /// Remove a VMBus device.
    Remove(DeviceRef),
    /// Add a VMBus device of this kind.
    Add(String),
    /// Ask the guest to shut down.
    Shutdown,
    /// The VMBus counters.
    Stats,
    /// The UARTs' registers and counters.
    Serial,
    /// A line for the guest to read on the debug console.
    Debugcon(String),
    /// Add a disk (its `--disk` specification).
    DiskAdd(String),
    /// Remove the disk at this LUN.
    DiskRemove(u8),
    /// Arm a fault of the SCSI controller (a hostile host, for tests).
    StorageFault(crate::storage::fault::Fault),
    /// Commit a fault of the socket relay (a hostile host, for tests).
    VsockFault(crate::vsock::fault::Fault),
}

/// Why a request was not understood.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but blanks.
    #[error("empty request")]
    Empty,
    /// An unknown verb.
    #[error("unknown request {0:?} (devices, add NAME, remove NAME|RELID, shutdown, stats, serial, debugcon TEXT, disk-add SPEC, disk-remove LUN, storage-fault KIND, vsock-fault KIND)")]
    Unknown(String),
    /// Wrong number of arguments.
    #[error("{verb} takes {expected}")]
    Arguments {
        /// The verb.
        verb: &'static str,
        /// What it takes.
        expected: &'static str,
    },
}

impl Request {
    /// Parses one request line.
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let mut words = line.split_ascii_whitespace();
        let Some(verb) = words.next() else {
            return Err(ParseError::Empty);
        };
        if verb == "debugcon" {
            // The rest of the line, as it is, but for the blanks around it.
            let text = line.trim().strip_prefix(verb).unwrap_or_default().trim();
            return if text.is_empty() {
                Err(ParseError::Arguments {
                    verb: "debugcon",
                    expected: "a line of text",
                })
            } else {
                Ok(Request::Debugcon(text.to_string()))
            };
        }
        let args: Vec<&str> = words.collect();
        let one = |verb: &'static str| match args.as_slice() {
            [a] => Ok(a.to_string()),
            _ => Err(ParseError::Arguments {
                verb,
                expected: "one argument",
            }),
        };
        let none = |verb: &'static str, r: Request| {
            if args.is_empty() {
                Ok(r)
            } else {
                Err(ParseError::Arguments {
                    verb,
                    expected: "no argument",
                })
            }
        };
        match verb {
            "devices" => none("devices", Request::Devices),
            "shutdown" => none("shutdown", Request::Shutdown),
            "stats" => none("stats", Request::Stats),
            "serial" => none("serial", Request::Serial),
            "add" => one("add").map(Request::Add),
            "disk-add" => one("disk-add").map(Request::DiskAdd),
            "disk-remove" => one("disk-remove").and_then(|a| {
                a.parse()
                    .map(Request::DiskRemove)
                    .map_err(|_| ParseError::Arguments {
                        verb: "disk-remove",
                        expected: "a LUN (0..255)",
                    })
            }),
            "storage-fault" => one("storage-fault").and_then(|a| {
                a.parse()
                    .map(Request::StorageFault)
                    .map_err(|_| ParseError::Arguments {
                        verb: "storage-fault",
                        expected: "a fault: unknown-id, short, wrong-operation, bogus-sense, phantom or drop",
                    })
            }),
            "vsock-fault" => one("vsock-fault").and_then(|a| {
                a.parse()
                    .map(Request::VsockFault)
                    .map_err(|_| ParseError::Arguments {
                        verb: "vsock-fault",
                        expected: "a fault: oversize, bad-type, past-packet or unsolicited-offer",
                    })
            }),
            "remove" => one("remove").map(|a| {
                Request::Remove(match a.parse::<u32>() {
                    Ok(relid) => DeviceRef::Relid(relid),
                    Err(_) => DeviceRef::Name(a),
                })
            }),
            other => Err(ParseError::Unknown(other.chars().take(32).collect())),
        }
    }
}

/// Executes a request; the answer (without the `ok`/`error:` prefix).
pub type Handler = dyn Fn(Request) -> Result<String, String> + Send + Sync;

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Something is at the path already.
    #[error("{0} exists: remove it or choose another --api-socket path")]
    Exists(PathBuf),
    /// bind() or the thread failed.
    #[error("cannot serve the control socket {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The running control socket. Dropping it stops the thread (after the
/// request in progress, if any), which drops the handler, and removes the
/// file.
pub struct ApiServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Creates the socket at `path` and serves it with `handler` on a
    /// thread of its own.
    pub fn start(path: &Path, handler: Arc<Handler>) -> Result<Self, ApiError> {
        if path.symlink_metadata().is_ok() {
            return Err(ApiError::Exists(path.to_path_buf()));
        }
        let io = |source| ApiError::Io {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(io)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = stop.clone();
        let thread = std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                seccomp::enter_or_exit(ThreadClass::Api);
                serve(&listener, handler.as_ref(), &stop_thread);
            })
            .map_err(|e| {
                let _ = std::fs::remove_file(path);
                io(e)
            })?;
        log::info!("api: listening on {}", path.display());
        Ok(Self {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake accept(): the thread sees the flag and ends.
        match UnixStream::connect(&self.path) {
            Ok(_) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(e) => log::warn!("api: cannot wake the control thread: {e}"),
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("api: cannot remove {}: {e}", self.path.display());
        }
    }
}

fn serve(listener: &UnixListener, handler: &Handler, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match stream {
            Ok(s) => {
                if let Err(e) = serve_client(s, handler) {
                    log::warn!("api: client: {e}");
                }
            }
            Err(e) => {
                log::error!("api: accept failed: {e}; the control socket stops");
                return;
            }
        }
    }
}

fn serve_client(stream: UnixStream, handler: &Handler) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut reader = BufReader::new((&stream).take(MAX_REQUEST as u64 + 1));
    let mut line = String::new();
    let answer = match reader.read_line(&mut line) {
        Ok(_) if line.len() > MAX_REQUEST => {
            format!("error: request longer than {MAX_REQUEST} bytes")
        }
        Ok(_) => match Request::parse(&line) {
            Ok(req) => {
                log::info!("api: {}", line.trim());
                match handler(req) {
                    Ok(text) if text.is_empty() => "ok".to_string(),
                    Ok(text) if text.contains('\n') => format!("ok\n{text}\n"),
                    Ok(text) => format!("ok {text}"),
                    Err(e) => format!("error: {e}"),
                }
            }
            Err(e) => format!("error: {e}"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            "error: request is not UTF-8".into()
        }
        Err(e) => return Err(e),
    };
    let mut out = &stream;
    out.write_all(answer.as_bytes())?;
    out.write_all(b"\n")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    // Closing with unread bytes would reset the connection and lose the
    // answer: read the rest of an overlong request (bounded) first.
    let _ = std::io::copy(&mut (&stream).take(64 * 1024), &mut std::io::sink());
    Ok(())
}

/// Sends `request` to the socket at `path` and returns the answer (the
/// client side, used by `hvctl`).
pub fn call(path: &Path, request: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let sent = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(b"\n"))
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write));
    match sent {
        // hvhost answered (an error) before it read everything.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(Request::parse("devices\n"), Ok(Request::Devices));
        assert_eq!(Request::parse("  stats "), Ok(Request::Stats));
        assert_eq!(Request::parse("serial"), Ok(Request::Serial));
        assert!(Request::parse("serial com2").is_err());
        assert_eq!(Request::parse("shutdown"), Ok(Request::Shutdown));
        assert_eq!(
            Request::parse("remove heartbeat"),
            Ok(Request::Remove(DeviceRef::Name("heartbeat".into())))
        );
        assert_eq!(
            Request::parse("remove 3"),
            Ok(Request::Remove(DeviceRef::Relid(3)))
        );
        assert_eq!(
            Request::parse("add timesync"),
            Ok(Request::Add("timesync".into()))
        );
        assert_eq!(
            Request::parse("disk-add /tmp/d.img,readonly,lun=3"),
            Ok(Request::DiskAdd("/tmp/d.img,readonly,lun=3".into()))
        );
        assert_eq!(Request::parse("disk-remove 3"), Ok(Request::DiskRemove(3)));
        assert_eq!(
            Request::parse("storage-fault phantom"),
            Ok(Request::StorageFault(crate::storage::fault::Fault::Phantom))
        );
        assert!(Request::parse("storage-fault x").is_err());
        assert_eq!(
            Request::parse("vsock-fault past-packet"),
            Ok(Request::VsockFault(crate::vsock::fault::Fault::PastPacket))
        );
        assert!(Request::parse("vsock-fault").is_err());
        assert!(matches!(
            Request::parse("disk-remove x"),
            Err(ParseError::Arguments {
                verb: "disk-remove",
                ..
            })
        ));
        assert_eq!(
            Request::parse(" debugcon ack 3  ok relid 5 removed \n"),
            Ok(Request::Debugcon("ack 3  ok relid 5 removed".into()))
        );
    }

    #[test]
    fn rejects_bad_requests() {
        assert_eq!(Request::parse(" \n"), Err(ParseError::Empty));
        assert!(matches!(
            Request::parse("reboot"),
            Err(ParseError::Unknown(_))
        ));
        assert!(matches!(
            Request::parse("remove"),
            Err(ParseError::Arguments { .. })
        ));
        assert!(matches!(
            Request::parse("remove a b"),
            Err(ParseError::Arguments { .. })
        ));
        assert!(matches!(
            Request::parse("devices all"),
            Err(ParseError::Arguments { .. })
        ));
        assert_eq!(
            Request::parse("debugcon \t "),
            Err(ParseError::Arguments {
                verb: "debugcon",
                expected: "a line of text"
            })
        );
        // Hostile verbs are not echoed back whole.
        let long = "x".repeat(200);
        match Request::parse(&long) {
            Err(ParseError::Unknown(v)) => assert_eq!(v.len(), 32),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serves_requests_over_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.sock");
        let handler: Arc<Handler> = Arc::new(|req| match req {
            Request::Devices => Ok("1 heartbeat open\n2 shutdown open".into()),
            Request::Remove(DeviceRef::Relid(r)) => Ok(format!("removed relid {r}")),
            Request::Remove(DeviceRef::Name(n)) => Err(format!("no device {n}")),
            _ => Ok(String::new()),
        });
        let server = ApiServer::start(&path, handler).expect("start");
        assert!(matches!(
            ApiServer::start(&path, Arc::new(|_| Ok(String::new()))),
            Err(ApiError::Exists(_))
        ));
        assert_eq!(
            call(&path, "remove 2").expect("call"),
            "ok removed relid 2\n"
        );
        assert_eq!(
            call(&path, "remove nope").expect("call"),
            "error: no device nope\n"
        );
        assert_eq!(
            call(&path, "devices").expect("call"),
            "ok\n1 heartbeat open\n2 shutdown open\n\n"
        );
        assert_eq!(call(&path, "stats").expect("call"), "ok\n");
        assert!(call(&path, "frobnicate")
            .expect("call")
            .starts_with("error: unknown request"));
        let long = "y".repeat(MAX_REQUEST + 10);
        assert!(call(&path, &long)
            .expect("call")
            .starts_with("error: request longer"));
        // A client that connects and says nothing is dropped after the
        // timeout; the next one is served.
        let silent = UnixStream::connect(&path).expect("connect");
        let t = std::time::Instant::now();
        assert_eq!(call(&path, "shutdown").expect("call"), "ok\n");
        assert!(t.elapsed() >= CLIENT_TIMEOUT - Duration::from_millis(100));
        drop(silent);
        // Dropping the server ends the thread, which drops the handler.
        let probe = Arc::new(());
        let weak = Arc::downgrade(&probe);
        drop(server);
        assert!(!path.exists());
        let server = ApiServer::start(
            &path,
            Arc::new(move |_| Ok(format!("{}", Arc::strong_count(&probe)))),
        )
        .expect("restart");
        assert_eq!(call(&path, "stats").expect("call"), "ok 1\n");
        drop(server);
        assert!(weak.upgrade().is_none(), "the handler outlived the server");
    }
}
