// SPDX-License-Identifier: GPL-2.0

//! `--vsock PATH`: where Hyper-V socket connections come from and go to.
//!
//! - A guest program's connect ([`SocketService::guest_connect`], on the
//!   VMBus thread) connects to `PATH_port` without blocking: no listener,
//!   a full backlog or the connection limit refuse it, and the guest gets
//!   no offer.
//! - Host programs connect to `PATH` itself. A thread accepts them; each
//!   gets a short-lived thread of its own that reads `CONNECT <port>` (at
//!   most [`COMMAND_TIMEOUT`]) and hands the connection to the VMBus
//!   thread, which offers it to the guest. The `OK` goes out when the
//!   guest opens the channel; if it does not within [`OPEN_TIMEOUT`] (no
//!   guest program listens on the port), the offer is withdrawn and the
//!   stream closed without it.

use crate::sandbox::seccomp::{self, ThreadClass};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use vmbus::guid::Guid;
use vmbus::hvsock;

use super::fault::{Fault, UNSOLICITED_ENDPOINT_PORT};
use super::hybrid::{guest_port_path, parse_connect, Command, HostPorts, MAX_COMMAND};
use super::poller::Poller;
use super::relay::{HvSock, Shared};
use crate::vmbus::device::{SocketService, VmbusDevice};

/// `--vsock-max-conns`' default.
pub const DEFAULT_MAX_CONNS: usize = 256;
/// How long the guest has to open a connection's channel.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a host program has to send its `CONNECT` line.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Host programs that may be sending their command at once; more are
/// closed at once.
pub const MAX_HANDSHAKES: usize = 16;

/// How sockets are set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsockConfig {
    /// `--vsock PATH`.
    pub path: PathBuf,
    /// `--vsock-max-conns`.
    pub max_conns: usize,
}

/// Why sockets could not start.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    /// The path is there and is not a socket.
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    /// The listener or a thread could not be set up.
    #[error("{what}: {err}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        err: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> VsockError {
    let what = what.into();
    move |err| VsockError::Io { what, err }
}

/// Hands a host program's connection to the VMBus thread for its offer.
pub type Offerer = Box<dyn Fn(Box<dyn VmbusDevice>) + Send + Sync>;

/// The socket service of one VM.
pub struct Sockets {
    path: PathBuf,
    shared: Shared,
}

impl Sockets {
    /// Listens on `config.path` and starts the stream watcher; host
    /// programs' connections go to `offer`.
    pub fn start(config: &VsockConfig, offer: Offerer) -> Result<Self, VsockError> {
        let path = config.path.clone();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_socket() => {
                // A socket file left by an earlier run: nobody listens.
                std::fs::remove_file(&path)
                    .map_err(io_err(format!("removing {}", path.display())))?;
            }
            Ok(_) => return Err(VsockError::NotASocket(path)),
            Err(_) => {}
        }
        let listener = UnixListener::bind(&path)
            .map_err(io_err(format!("listening on {}", path.display())))?;
        let poller = Poller::start().map_err(io_err("starting the stream watcher"))?;
        let shared = Shared {
            poller,
            live: Arc::new(AtomicUsize::new(0)),
            max: config.max_conns,
            host_ports: Arc::new(Mutex::new(HostPorts::new(config.max_conns))),
            fault: Arc::new(AtomicU8::new(0)),
        };
        std::thread::Builder::new()
            .name("vsock-listen".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    seccomp::enter_or_exit(ThreadClass::VsockListen);
                    accept_loop(&listener, &shared, Arc::new(offer));
                }
            })
            .map_err(io_err("starting the listener thread"))?;
        log::info!(
            "vsock: host programs connect to {}; guest connections go to {}_<port>; at most {} \
             connections",
            path.display(),
            path.display(),
            config.max_conns
        );
        Ok(Self { path, shared })
    }
}

impl Drop for Sockets {
    fn drop(&mut self) {
        // The socket's file is removed by whoever owns the path: the VMBus
        // thread, where this is dropped, may not touch the file system.
        self.shared.poller.stop();
    }
}

impl SocketService for Sockets {
    fn guest_connect(
        &mut self,
        endpoint: Guid,
        service: Guid,
    ) -> Result<Box<dyn VmbusDevice>, String> {
        let port = hvsock::port_of(&service)
            .ok_or_else(|| format!("service {service} is not an AF_VSOCK port's"))?;
        let slot = self
            .shared
            .reserve()
            .ok_or_else(|| format!("the connection limit ({}) is reached", self.shared.max))?;
        let path = guest_port_path(&self.path, port);
        let stream = connect_nonblocking(&path)
            .map_err(|e| format!("host port {port}: connecting to {}: {e}", path.display()))?;
        let device = HvSock::guest_initiated(
            stream,
            (self.shared.clone(), slot),
            endpoint,
            service,
            port,
            Instant::now() + OPEN_TIMEOUT,
        )
        .map_err(|e| format!("host port {port}: {e}"))?;
        Ok(Box::new(device))
    }

    fn fault(&mut self, fault: Fault) -> Result<Option<Box<dyn VmbusDevice>>, String> {
        if fault.on_packet() {
            self.shared.arm(fault);
            return Ok(None);
        }
        // An offer as for a guest connect from an endpoint that never
        // asked, on a stream nobody reads: the guest must refuse it, and
        // it expires like any offer not opened.
        let slot = self
            .shared
            .reserve()
            .ok_or_else(|| format!("the connection limit ({}) is reached", self.shared.max))?;
        let (stream, _peer) = UnixStream::pair().map_err(|e| format!("a stream pair: {e}"))?;
        let port = 1;
        let device = HvSock::guest_initiated(
            stream,
            (self.shared.clone(), slot),
            hvsock::service_id(UNSOLICITED_ENDPOINT_PORT),
            hvsock::service_id(port),
            port,
            Instant::now() + OPEN_TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
        Ok(Some(Box::new(device)))
    }
}

/// Connects to the Unix socket at `path` without waiting: a listener whose
/// backlog is full refuses (`EAGAIN`) rather than stall the VMBus thread.
fn connect_nonblocking(path: &Path) -> io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(UnixStream::from(fd))
}

fn accept_loop(listener: &UnixListener, shared: &Shared, offer: Arc<Offerer>) {
    let handshakes = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("vsock: accepting a host connection: {e}");
                continue;
            }
        };
        if handshakes.fetch_add(1, Ordering::SeqCst) >= MAX_HANDSHAKES {
            handshakes.fetch_sub(1, Ordering::SeqCst);
            log::warn!(
                "vsock: host connection closed: {MAX_HANDSHAKES} others are still sending their \
                 command"
            );
            continue;
        }
        let spawned = std::thread::Builder::new()
            .name("vsock-connect".into())
            .spawn({
                let (shared, offer, handshakes) =
                    (shared.clone(), offer.clone(), handshakes.clone());
                move || {
                    seccomp::enter_or_exit(ThreadClass::VsockConnect);
                    if let Err(why) = handshake(stream, &shared, &offer) {
                        log::warn!("vsock: host connection refused: {why}");
                    }
                    handshakes.fetch_sub(1, Ordering::SeqCst);
                }
            });
        if let Err(e) = spawned {
            handshakes.fetch_sub(1, Ordering::SeqCst);
            log::warn!("vsock: host connection closed: no thread for it: {e}");
        }
    }
}

/// Reads a host program's `CONNECT` and hands the connection over.
fn handshake(mut stream: UnixStream, shared: &Shared, offer: &Offerer) -> Result<(), String> {
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(2 * MAX_COMMAND);
    let (port, rest_at) = loop {
        match parse_connect(&buf).map_err(|e| e.to_string())? {
            Command::Connect { port, rest_at } => break (port, rest_at),
            Command::Incomplete => {}
        }
        let mut chunk = [0u8; MAX_COMMAND];
        match stream.read(&mut chunk) {
            Ok(0) => return Err("closed before its command".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no command within {COMMAND_TIMEOUT:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let slot = shared.reserve().ok_or_else(|| {
        format!(
            "guest port {port}: the connection limit ({}) is reached",
            shared.max
        )
    })?;
    let host_port = shared
        .host_ports
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .allocate()
        .ok_or_else(|| format!("guest port {port}: no host port left"))?;
    let early = buf.split_off(rest_at);
    match HvSock::host_initiated(
        stream,
        (shared.clone(), slot),
        port,
        host_port,
        early,
        Instant::now() + OPEN_TIMEOUT,
    ) {
        Ok(device) => {
            log::info!("vsock: host port {host_port} connects to guest port {port}");
            offer(Box::new(device));
            Ok(())
        }
        Err(e) => {
            shared
                .host_ports
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .release(host_port);
            Err(format!("guest port {port}: {e}"))
        }
    }
}
