// SPDX-License-Identifier: GPL-2.0

//! Synthetic timers (STIMER0..3 CONFIG/COUNT of every VP) and the one
//! thread that fires them.
//!
//! In direct mode an expiry interrupts the VP with the timer's vector (as
//! Linux's clock event device wants); otherwise it posts HVMSG_TIMER_EXPIRED
//! to the configured SINT. One-shot COUNT is an absolute reference time,
//! periodic COUNT a period in 100 ns units. The register rules follow KVM's
//! `stimer_set_config`/`stimer_set_count`: a COUNT write of zero stops the
//! timer, a non-zero one starts it when AUTO_ENABLE is set; a message-mode
//! timer with SINTx 0 cannot stay enabled; a one-shot timer clears ENABLE
//! when it fires.
//!
//! Locking: one mutex over every timer's registers and deadline, shared by
//! the vCPU threads (MSR accesses) and the timer thread, with a condvar to
//! wake the thread when a deadline moves. Delivery happens with the mutex
//! held; SynIC locks are taken inside it, never the other way round.

use crate::sandbox::seccomp::{self, ThreadClass};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hvcall::synic::{HvMessage, MessageType, StimerConfig, STIMER_COUNT};

use super::clock::RefClock;
use super::synic::{InterruptSink, Synic};

#[derive(Clone, Copy, Default)]
struct Timer {
    config: StimerConfig,
    count: u64,
    deadline: Option<Instant>,
}

struct Shared {
    timers: Mutex<Vec<[Timer; STIMER_COUNT]>>,
    wake: Condvar,
    stop: AtomicBool,
    clock: Arc<RefClock>,
    irq: Arc<dyn InterruptSink>,
    synics: Vec<Arc<Synic>>,
    /// LAPIC ID of each VP.
    apic_ids: Vec<u32>,
}

/// The synthetic timers of a partition.
pub struct Stimers {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<[Timer; STIMER_COUNT]>> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn arm(&self, t: &mut Timer, now: Instant) {
        t.deadline = if !t.config.enable() || t.count == 0 {
            None
        } else if t.config.periodic() {
            Some(now + Duration::from_nanos(t.count.saturating_mul(100)))
        } else {
            Some(self.clock.instant_of(t.count).max(now))
        };
    }

    fn fire(&self, vp: usize, index: usize, t: &mut Timer, now: Instant) {
        if t.config.direct_mode() {
            if let Some(&apic) = self.apic_ids.get(vp) {
                self.irq.raise(apic, t.config.apic_vector());
            }
        } else if let Some(synic) = self.synics.get(vp) {
            // struct hv_timer_message_payload: index, reserved, expiration, delivery.
            let mut payload = [0u8; 24];
            payload[0..4].copy_from_slice(&(index as u32).to_le_bytes());
            let expiration = t.deadline.map_or(0, |d| self.clock.at(d));
            payload[8..16].copy_from_slice(&expiration.to_le_bytes());
            payload[16..24].copy_from_slice(&self.clock.at(now).to_le_bytes());
            if let Some(msg) = HvMessage::new(MessageType::TIMER_EXPIRED, &payload) {
                if let Err(status) = synic.post_message(usize::from(t.config.sintx()), &msg) {
                    log::debug!("VP {vp} stimer{index}: expiry message lost: {status}");
                }
            }
        }
        if t.config.periodic() {
            let period = Duration::from_nanos(t.count.saturating_mul(100).max(1000));
            let mut next = t.deadline.unwrap_or(now) + period;
            if next <= now {
                // Fell behind (host was busy): skip missed periods rather than burst.
                next = now + period;
            }
            t.deadline = Some(next);
        } else {
            t.config = t.config.with_enable(false);
            t.deadline = None;
        }
    }

    fn run(&self) {
        let mut timers = self.lock();
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for (vp, vp_timers) in timers.iter_mut().enumerate() {
                for (index, t) in vp_timers.iter_mut().enumerate() {
                    if let Some(d) = t.deadline {
                        if d <= now {
                            self.fire(vp, index, t, now);
                        }
                    }
                    if let Some(d) = t.deadline {
                        next = Some(next.map_or(d, |n| n.min(d)));
                    }
                }
            }
            timers = match next {
                Some(d) => {
                    let wait = d.saturating_duration_since(Instant::now());
                    self.wake
                        .wait_timeout(timers, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .wake
                    .wait(timers)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

impl Stimers {
    /// Timers for the VPs of `synics` (VP index = position), with their
    /// LAPIC IDs; starts the timer thread.
    pub fn new(
        clock: Arc<RefClock>,
        irq: Arc<dyn InterruptSink>,
        synics: Vec<Arc<Synic>>,
        apic_ids: Vec<u32>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            timers: Mutex::new(vec![[Timer::default(); STIMER_COUNT]; apic_ids.len()]),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            clock,
            irq,
            synics,
            apic_ids,
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hv-stimer".into())
            .spawn(move || {
                seccomp::enter_or_exit(ThreadClass::Stimer);
                worker.run();
            })?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn with_timer<R>(
        &self,
        vp: usize,
        index: usize,
        f: impl FnOnce(&Shared, &mut Timer) -> R,
    ) -> Option<R> {
        let mut timers = self.shared.lock();
        let t = timers.get_mut(vp)?.get_mut(index)?;
        let r = f(&self.shared, t);
        drop(timers);
        self.shared.wake.notify_one();
        Some(r)
    }

    /// STIMERn_CONFIG of `vp`.
    pub fn config(&self, vp: usize, index: usize) -> Option<u64> {
        self.shared.lock().get(vp)?.get(index).map(|t| t.config.0)
    }

    /// STIMERn_COUNT of `vp`.
    pub fn count(&self, vp: usize, index: usize) -> Option<u64> {
        self.shared.lock().get(vp)?.get(index).map(|t| t.count)
    }

    /// Guest write of STIMERn_CONFIG.
    pub fn set_config(&self, vp: usize, index: usize, value: u64) -> Option<()> {
        self.with_timer(vp, index, |shared, t| {
            let mut config = StimerConfig(value);
            if t.config.enable() && !config.direct_mode() && config.sintx() == 0 {
                config = config.with_enable(false);
            }
            t.config = config;
            shared.arm(t, Instant::now());
        })
    }

    /// Guest write of STIMERn_COUNT.
    pub fn set_count(&self, vp: usize, index: usize, value: u64) -> Option<()> {
        self.with_timer(vp, index, |shared, t| {
            t.count = value;
            if value == 0 {
                t.config = t.config.with_enable(false);
            } else if t.config.auto_enable() {
                t.config = t.config.with_enable(true);
            }
            shared.arm(t, Instant::now());
        })
    }

    /// Stops the timer thread (also on drop).
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _timers = self.shared.lock();
            self.shared.wake.notify_all();
        }
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            if t.join().is_err() {
                log::error!("the synthetic timer thread panicked");
            }
        }
    }
}

impl Drop for Stimers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::super::synic::tests::Irqs;
    use super::*;

    fn service() -> (Arc<Irqs>, Arc<RefClock>, Stimers) {
        let irqs = Arc::new(Irqs::default());
        let clock = Arc::new(RefClock::new(None));
        let s = Stimers::new(clock.clone(), irqs.clone(), vec![], vec![0, 1]).expect("thread");
        (irqs, clock, s)
    }

    fn wait_for(irqs: &Irqs, n: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while irqs.count.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn one_shot_direct_fires_once_and_clears_enable() {
        let (irqs, clock, s) = service();
        let config = StimerConfig::direct(0xed, false).0 | StimerConfig::AUTO_ENABLE;
        s.set_config(1, 0, config).expect("vp 1");
        assert!(!StimerConfig(s.config(1, 0).expect("cfg")).enable());
        s.set_count(1, 0, clock.now() + 10_000).expect("count"); // 1 ms
        assert!(StimerConfig(s.config(1, 0).expect("cfg")).enable());
        assert!(wait_for(&irqs, 1));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(irqs.count.load(Ordering::SeqCst), 1);
        assert_eq!(irqs.raised.lock().expect("lock")[0], (1, 0xed));
        assert!(!StimerConfig(s.config(1, 0).expect("cfg")).enable());
    }

    #[test]
    fn periodic_direct_keeps_firing_until_count_zero() {
        let (irqs, _clock, s) = service();
        s.set_count(0, 0, 20_000).expect("2 ms period");
        s.set_config(0, 0, StimerConfig::direct(0x40, true).with_enable(true).0)
            .expect("cfg");
        assert!(wait_for(&irqs, 3));
        s.set_count(0, 0, 0).expect("stop");
        assert!(!StimerConfig(s.config(0, 0).expect("cfg")).enable());
        std::thread::sleep(Duration::from_millis(10));
        let n = irqs.count.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(irqs.count.load(Ordering::SeqCst), n);
    }

    #[test]
    fn message_mode_with_sint0_cannot_stay_enabled() {
        let (_irqs, _clock, s) = service();
        s.set_config(0, 1, StimerConfig(0).with_enable(true).0 | 3 << 16)
            .expect("sint 3");
        assert!(StimerConfig(s.config(0, 1).expect("cfg")).enable());
        s.set_config(0, 1, StimerConfig(0).with_enable(true).0)
            .expect("sint 0");
        assert!(!StimerConfig(s.config(0, 1).expect("cfg")).enable());
        assert_eq!(s.config(2, 0), None);
        assert_eq!(s.set_count(0, 4, 1), None);
    }
}
