// SPDX-License-Identifier: GPL-2.0

//! One thread that watches every socket connection's Unix stream and wakes
//! its VMBus channel when the stream can move bytes.
//!
//! The connections themselves run on the VMBus thread with non-blocking
//! streams: they read and write until `EAGAIN`, then wait for this
//! thread. Streams are registered edge-triggered, so an event means
//! something changed since the connection last hit `EAGAIN`. A
//! registration's wake-ups are coalesced: at most one is queued until the
//! connection runs ([`Registration::rearm`]).

use crate::sandbox::seccomp::{self, ThreadClass};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::vmbus::channel::ChannelWaker;

/// The token of the stop event.
const STOP: u64 = 0;

struct Watch {
    waker: ChannelWaker,
    /// A wake-up is queued and the connection has not run since.
    queued: Arc<AtomicBool>,
}

/// The watcher thread's shared state.
pub struct Poller {
    epoll: Epoll,
    stop: EventFd,
    watches: Mutex<HashMap<u64, Watch>>,
    next_token: AtomicU64,
}

/// A stream watched by the [`Poller`] until this is dropped.
pub struct Registration {
    poller: Arc<Poller>,
    fd: RawFd,
    token: u64,
    queued: Arc<AtomicBool>,
}

impl Registration {
    /// Lets the next event wake the channel again; the connection calls it
    /// before it reads and writes its stream.
    pub fn rearm(&self) {
        self.queued.store(false, Ordering::SeqCst);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The stream is still open here (it is dropped after this), so the
        // descriptor cannot have been reused.
        let _ = self
            .poller
            .epoll
            .ctl(ControlOperation::Delete, self.fd, EpollEvent::default());
        self.poller
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.token);
    }
}

impl Poller {
    /// Starts the thread; [`Self::stop`] ends it.
    pub fn start() -> io::Result<Arc<Self>> {
        let poller = Arc::new(Self {
            epoll: Epoll::new()?,
            stop: EventFd::new(EFD_NONBLOCK)?,
            watches: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(STOP + 1),
        });
        poller.epoll.ctl(
            ControlOperation::Add,
            poller.stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, STOP),
        )?;
        std::thread::Builder::new()
            .name("vsock-poll".into())
            .spawn({
                let poller = poller.clone();
                move || {
                    seccomp::enter_or_exit(ThreadClass::VsockPoll);
                    poller.run();
                }
            })?;
        Ok(poller)
    }

    /// Watches `stream` (readable, writable, hung up) for the channel of
    /// `waker`.
    pub fn register(
        self: &Arc<Self>,
        stream: &impl AsRawFd,
        waker: ChannelWaker,
    ) -> io::Result<Registration> {
        let fd = stream.as_raw_fd();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let queued = Arc::new(AtomicBool::new(false));
        self.watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                token,
                Watch {
                    waker,
                    queued: queued.clone(),
                },
            );
        let events =
            EventSet::IN | EventSet::OUT | EventSet::READ_HANG_UP | EventSet::EDGE_TRIGGERED;
        if let Err(e) = self
            .epoll
            .ctl(ControlOperation::Add, fd, EpollEvent::new(events, token))
        {
            self.watches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&token);
            return Err(e);
        }
        Ok(Registration {
            poller: self.clone(),
            fd,
            token,
            queued,
        })
    }

    /// Ends the thread.
    pub fn stop(&self) {
        let _ = self.stop.write(1);
    }

    fn run(&self) {
        let mut events = vec![EpollEvent::default(); 64];
        loop {
            let n = match self.epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!(
                        "vsock: epoll_wait failed: {e}; socket streams are no longer watched"
                    );
                    return;
                }
            };
            for event in &events[..n] {
                let token = event.data();
                if token == STOP {
                    return;
                }
                let watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
                // An event of a registration dropped meanwhile finds nothing.
                if let Some(w) = watches.get(&token) {
                    if !w.queued.swap(true, Ordering::SeqCst) {
                        w.waker.wake();
                    }
                }
            }
        }
    }
}
