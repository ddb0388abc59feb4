// SPDX-License-Identifier: GPL-2.0

//! Readings of the vCPUs' progress ([`VcpuSample`]) for the VMBus drain,
//! which looks for a streaming guest's next packet while a VP may still be
//! writing it (`crate::vmbus::channel`).
//!
//! Per vCPU, from the thread that runs it (which registers itself when it
//! starts):
//! - **asleep**: the thread is neither running nor waiting for a CPU (its
//!   `/proc/thread-self/stat` state is not `R`): the vCPU sleeps in KVM on
//!   HLT (after KVM's halt polling) until an interrupt wakes it, or the
//!   thread is blocked in hvhost. Either way the guest writes nothing on
//!   that vCPU until something wakes it. Unlike KVM's own `blocking`
//!   statistic, this also covers a thread blocked in hvhost, which the
//!   drain must not wait for either.
//! - **run time**: the thread's CPU clock (`pthread_getcpuclockid`). It
//!   advances only while the thread is on a CPU.
//!
//! A vCPU whose thread has not started, or has exited, cannot be read: the
//! drain does not wait for it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use crate::vmbus::port::{GuestActivity, VcpuSample};

/// Whether a `/proc/.../stat` line says the thread is running or waits for
/// a CPU (state `R`); `None` if the line is not one.
pub fn stat_says_runnable(line: &[u8]) -> Option<bool> {
    // The command name is in parentheses and may hold anything, spaces and
    // parentheses included: the state follows the last `)`.
    let close = line.iter().rposition(|&c| c == b')')?;
    match line.get(close + 1..close + 3)? {
        [b' ', state] if state.is_ascii_alphabetic() => Some(*state == b'R'),
        _ => None,
    }
}

/// A thread's scheduler state, from its `/proc` stat file.
struct ThreadState(File);

impl ThreadState {
    fn of_current_thread() -> io::Result<Self> {
        File::open("/proc/thread-self/stat").map(Self)
    }

    /// Whether the thread runs or waits for a CPU, or `None` once it has
    /// exited.
    fn runnable(&self) -> Option<bool> {
        let mut buf = [0u8; 512];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        stat_says_runnable(&buf[..n])
    }
}

/// A thread's CPU clock.
#[derive(Clone, Copy)]
struct ThreadClock(libc::clockid_t);

impl ThreadClock {
    fn of_current_thread() -> io::Result<Self> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: `pthread_self()` is the calling, live thread and `id` is a
        // valid place for the result.
        let r = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(Self(id))
    }

    /// The thread's run time in ns, or `None` once it has exited.
    fn now_ns(self) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid place for the result; a clock of a thread
        // that exited fails with EINVAL, which is handled.
        if unsafe { libc::clock_gettime(self.0, &mut ts) } != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u64::try_from(ts.tv_nsec).ok()?;
        Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }
}

/// One vCPU thread's readings.
struct Thread {
    clock: ThreadClock,
    state: ThreadState,
}

/// The vCPUs of a VM as their threads show them, readable from any
/// thread.
pub struct VcpuActivity {
    vcpus: Vec<OnceLock<Thread>>,
}

impl VcpuActivity {
    /// Readings of `vcpus` vCPUs, each readable once its thread has called
    /// [`Self::enter_vcpu_thread`].
    pub fn new(vcpus: usize) -> Self {
        Self {
            vcpus: (0..vcpus).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Called by vCPU `index`'s thread when it starts: that thread's CPU
    /// clock and scheduler state are the vCPU's.
    pub fn enter_vcpu_thread(&self, index: usize) {
        let Some(slot) = self.vcpus.get(index) else {
            return;
        };
        let thread = ThreadClock::of_current_thread().and_then(|clock| {
            Ok(Thread {
                clock,
                state: ThreadState::of_current_thread()?,
            })
        });
        match thread {
            Ok(t) => {
                let _ = slot.set(t);
            }
            Err(e) => log::warn!(
                "vcpu{index}: its thread's CPU time or state cannot be read ({e}): VMBus \
                 drains will not wait for its next packet"
            ),
        }
    }
}

impl GuestActivity for VcpuActivity {
    fn sample(&self, vp: u32) -> Option<VcpuSample> {
        let thread = self.vcpus.get(usize::try_from(vp).ok()?)?.get()?;
        let run_ns = thread.clock.now_ns()?;
        let asleep = !thread.state.runnable()?;
        Some(VcpuSample { asleep, run_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_the_last_parenthesis() {
        assert_eq!(stat_says_runnable(b"412 (vcpu0) R 1 412 0"), Some(true));
        assert_eq!(stat_says_runnable(b"412 (vcpu0) S 1 412 0"), Some(false));
        assert_eq!(stat_says_runnable(b"412 (a) R (b) S 1 2"), Some(false));
        assert_eq!(stat_says_runnable(b"412 (x) D 1"), Some(false));
        for bad in [
            &b""[..],
            b"412 (vcpu0",
            b"412 (vcpu0)",
            b"412 (vcpu0) ",
            b"412 (v) 7 1",
        ] {
            assert_eq!(
                stat_says_runnable(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn this_thread_reads_as_running_and_a_sleeping_one_as_asleep() {
        let activity = std::sync::Arc::new(VcpuActivity::new(2));
        activity.enter_vcpu_thread(0);
        let s = activity.sample(0).expect("sample");
        assert!(!s.asleep);
        assert!(activity.sample(1).is_none(), "a thread not started yet");
        assert!(activity.sample(2).is_none(), "no such vCPU");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let sleeper = {
            let activity = activity.clone();
            std::thread::spawn(move || {
                activity.enter_vcpu_thread(1);
                let _ = rx.recv();
            })
        };
        // Until it sleeps in recv(), it runs.
        while activity.sample(1).is_none_or(|s| !s.asleep) {
            std::thread::yield_now();
        }
        drop(tx);
        sleeper.join().expect("sleeper");
        assert!(activity.sample(1).is_none(), "a thread that exited");
        // This thread's run time advances while it runs.
        let t0 = activity.sample(0).expect("sample").run_ns;
        while activity.sample(0).expect("sample").run_ns == t0 {
            std::hint::spin_loop();
        }
    }
}
