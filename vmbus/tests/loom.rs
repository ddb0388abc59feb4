// SPDX-License-Identifier: GPL-2.0

//! Loom models of one producer and one consumer thread over a small ring:
//! every interleaving (up to the preemption bound) delivers every packet
//! once, in order, without a data race on the ring bytes (loom checks each
//! byte access against the happens-before order the indices give), and
//! without a lost wakeup: both sides sleep on an event only the other side's
//! signal decision sets, so a missed signal is a deadlock loom reports.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p vmbus --release --test loom`

#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use vmbus::packet::PacketFlags;
use vmbus::ring::{HeaderField, RingConsumer, RingError, RingMemory, RingProducer};

struct LoomMemory {
    data: Vec<UnsafeCell<u8>>,
    fields: [AtomicU32; 5],
}

impl LoomMemory {
    fn new(len: usize) -> Self {
        Self {
            data: (0..len).map(|_| UnsafeCell::new(0)).collect(),
            fields: [
                AtomicU32::new(0),
                AtomicU32::new(0),
                AtomicU32::new(0),
                AtomicU32::new(0),
                AtomicU32::new(0),
            ],
        }
    }

    fn field(&self, f: HeaderField) -> &AtomicU32 {
        &self.fields[match f {
            HeaderField::WriteIndex => 0,
            HeaderField::ReadIndex => 1,
            HeaderField::InterruptMask => 2,
            HeaderField::PendingSendSize => 3,
            HeaderField::FeatureBits => 4,
        }]
    }
}

struct Shared(Arc<LoomMemory>);

impl RingMemory for Shared {
    fn data_len(&self) -> usize {
        self.0.data.len()
    }
    fn read_data(&self, offset: usize, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: loom's cell hands out the pointer only for this read
            // and reports any access not ordered by happens-before.
            *b = self.0.data[offset + i].with(|p| unsafe { *p });
        }
    }
    fn write_data(&self, offset: usize, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            // SAFETY: as above, for this write.
            self.0.data[offset + i].with_mut(|p| unsafe { *p = *b });
        }
    }
    fn load_acquire(&self, field: HeaderField) -> u32 {
        self.0.field(field).load(Ordering::Acquire)
    }
    fn store_release(&self, field: HeaderField, value: u32) {
        self.0.field(field).store(value, Ordering::Release)
    }
    fn fence(&self) {
        fence(Ordering::SeqCst)
    }
}

/// A binary semaphore: the interrupt (event) from one side to the other.
struct Event {
    set: Mutex<bool>,
    cv: Condvar,
}

impl Event {
    fn new() -> Self {
        Self {
            set: Mutex::new(false),
            cv: Condvar::new(),
        }
    }
    fn signal(&self) {
        *self.set.lock().expect("lock") = true;
        self.cv.notify_one();
    }
    fn wait(&self) {
        let mut g = self.set.lock().expect("lock");
        while !*g {
            g = self.cv.wait(g).expect("lock");
        }
        *g = false;
    }
}

fn producer_consumer(data_len: usize, packets: u64, payload: usize) {
    let mem = Arc::new(LoomMemory::new(data_len));
    let to_consumer = Arc::new(Event::new());
    let to_producer = Arc::new(Event::new());

    let producer = {
        let (mem, to_consumer, to_producer) =
            (mem.clone(), to_consumer.clone(), to_producer.clone());
        loom::thread::spawn(move || {
            let mut p = RingProducer::new(Shared(mem)).expect("ring");
            p.enable_pending_send_size();
            for i in 0..packets {
                let data = vec![i as u8 + 1; payload];
                loop {
                    match p.write_inband(i, PacketFlags::NONE, &data) {
                        Ok(signal) => {
                            if signal {
                                to_consumer.signal();
                            }
                            break;
                        }
                        Err(RingError::Full { need, .. }) => {
                            // Ask for a signal, then re-check: space freed
                            // before the request would never be signalled.
                            if !p.set_pending_send_size(need as u32).expect("ring") {
                                to_producer.wait();
                            }
                            p.clear_pending_send_size();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        })
    };

    let mut c = RingConsumer::new(Shared(mem)).expect("ring");
    let mut buf = [0u8; 64];
    let mut next = 0u64;
    loop {
        // hv_begin_read .. drain .. hv_end_read, again while it finds more.
        c.mask_interrupts();
        loop {
            while let Some((pk, signal)) = c.read_and_commit(&mut buf).expect("ring") {
                assert_eq!(pk.desc.trans_id, next, "lost or duplicated packet");
                assert!(
                    pk.data()[..payload].iter().all(|&b| b == next as u8 + 1),
                    "torn packet"
                );
                next += 1;
                if signal {
                    to_producer.signal();
                }
            }
            if !c.unmask_interrupts().expect("ring") {
                break;
            }
            c.mask_interrupts();
        }
        if next == packets {
            break;
        }
        to_consumer.wait();
    }
    producer.join().expect("producer");
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Three packets that all fit: only the interrupt-mask rule is at work.
#[test]
fn loom_no_lost_wakeup_on_write() {
    model(|| producer_consumer(128, 3, 8));
}

/// Only one packet fits at a time: the producer has to wait for space
/// through `pending_send_sz` every time.
#[test]
fn loom_no_lost_wakeup_when_full() {
    model(|| producer_consumer(64, 3, 8));
}
