// SPDX-License-Identifier: GPL-2.0

//! The SynIC of one virtual processor: its registers (SCONTROL, SIMP,
//! SIEFP, SINT0..15) and the delivery engine that puts messages into SIMP
//! slots and sets SIEFP flags, then interrupts the vCPU.
//!
//! Any thread may deliver (a vCPU posting to another, the timer thread, a
//! device); the vCPU thread writes the registers. One mutex per SynIC
//! serialises all of it, so delivery into a slot and the slot's queue are
//! always consistent; the guest itself is never blocked by it.
//!
//! Message slot protocol (TLFS "SynIC Message Flags"), host side:
//! 1. if the slot's type is NONE: write the body (everything but the type),
//!    then store the type with release ordering, then interrupt;
//! 2. otherwise set `msg_pending` with an atomic OR and re-read the type: if
//!    the guest freed the slot in between, go back to 1; if not, the guest
//!    will see `msg_pending` after freeing it and write EOM, which runs this
//!    again. Messages behind a busy slot wait in a per-SINT FIFO, bounded
//!    by [`MESSAGE_QUEUE_DEPTH`]: a full FIFO is HV_STATUS_INSUFFICIENT_BUFFERS.
//!
//! A masked SINT still gets its messages and flags, only the interrupt is
//! held back; a polling SINT never interrupts. Nothing is delivered while
//! SCONTROL is clear or the page is disabled: messages stay queued and go
//! out when the guest enables it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hvcall::hypercall::HvStatus;
use hvcall::synic::{
    event_flag_word, message_slot_offset, HvMessage, PageMsr, Scontrol, SintReg, HV_PAGE_SIZE,
    MESSAGE_FLAG_PENDING, SINT_COUNT, SYNIC_VERSION_1,
};
use zerocopy::IntoBytes;

use super::guest_mem::GuestPages;

/// Messages that may wait behind one busy SINT slot.
pub const MESSAGE_QUEUE_DEPTH: usize = 64;

/// Raises an interrupt vector on a local APIC.
pub trait InterruptSink: Send + Sync {
    /// Sends `vector` (fixed, edge) to the LAPIC with `apic_id`.
    fn raise(&self, apic_id: u32, vector: u8);
}

/// What an MSR write did: accepted, or the guest gets a #GP.
pub type MsrResult = Result<(), Gp>;

/// The guest gets a #GP for this access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gp;

/// The registers and queues one mutex protects.
struct State {
    scontrol: Scontrol,
    simp: PageMsr,
    siefp: PageMsr,
    sints: [SintReg; SINT_COUNT],
    /// Messages not yet in their slot, oldest first.
    queues: [VecDeque<HvMessage>; SINT_COUNT],
}

/// One vCPU's SynIC.
pub struct Synic {
    vp_index: u32,
    apic_id: u32,
    mem: Arc<dyn GuestPages>,
    irq: Arc<dyn InterruptSink>,
    state: Mutex<State>,
    auto_eoi_logged: AtomicBool,
}

impl Synic {
    /// The SynIC of VP `vp_index`, whose LAPIC has `apic_id`, in its reset
    /// state (disabled, every SINT masked).
    pub fn new(
        vp_index: u32,
        apic_id: u32,
        mem: Arc<dyn GuestPages>,
        irq: Arc<dyn InterruptSink>,
    ) -> Self {
        Self {
            vp_index,
            apic_id,
            mem,
            irq,
            state: Mutex::new(State {
                scontrol: Scontrol(0),
                simp: PageMsr(0),
                siefp: PageMsr(0),
                sints: [SintReg::RESET; SINT_COUNT],
                queues: Default::default(),
            }),
            auto_eoi_logged: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves registers that are still valid values.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The VP index.
    pub fn vp_index(&self) -> u32 {
        self.vp_index
    }

    /// SCONTROL.
    pub fn scontrol(&self) -> u64 {
        self.lock().scontrol.0
    }
    /// SVERSION.
    pub fn sversion(&self) -> u64 {
        SYNIC_VERSION_1
    }
    /// SIMP.
    pub fn simp(&self) -> u64 {
        self.lock().simp.0
    }
    /// SIEFP.
    pub fn siefp(&self) -> u64 {
        self.lock().siefp.0
    }
    /// SINTn.
    pub fn sint(&self, n: usize) -> Option<u64> {
        self.lock().sints.get(n).map(|s| s.0)
    }

    /// Guest write of SCONTROL: enabling delivers what was queued.
    pub fn set_scontrol(&self, value: u64) -> MsrResult {
        let mut st = self.lock();
        st.scontrol = Scontrol(value);
        self.flush_all(&mut st);
        Ok(())
    }

    /// Guest write of SIMP. Enabling clears the page (as KVM does) and
    /// delivers what was queued; a page outside RAM is a #GP (KVM's
    /// `kvm_clear_guest` failing).
    pub fn set_simp(&self, value: u64) -> MsrResult {
        let mut st = self.lock();
        let simp = PageMsr(value);
        if simp.enabled() {
            self.clear_page(simp.gpa())?;
        }
        st.simp = simp;
        self.flush_all(&mut st);
        Ok(())
    }

    /// Guest write of SIEFP; enabling clears the page, as KVM does.
    pub fn set_siefp(&self, value: u64) -> MsrResult {
        let mut st = self.lock();
        let siefp = PageMsr(value);
        if siefp.enabled() {
            self.clear_page(siefp.gpa())?;
        }
        st.siefp = siefp;
        Ok(())
    }

    fn clear_page(&self, gpa: u64) -> MsrResult {
        if !self.mem.is_ram(gpa, HV_PAGE_SIZE) {
            return Err(Gp);
        }
        self.mem
            .write(gpa, &[0; HV_PAGE_SIZE as usize])
            .map_err(|_| Gp)
    }

    /// Guest write of SINTn: an unmasked vector below 16 is a #GP (KVM's
    /// `synic_set_sint`). Unmasking delivers queued messages.
    pub fn set_sint(&self, n: usize, value: u64) -> MsrResult {
        let sint = SintReg(value);
        if !sint.guest_write_ok() {
            return Err(Gp);
        }
        if sint.auto_eoi() && !self.auto_eoi_logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "VP {}: the guest set AutoEOI on SINT{n} although it is deprecated (CPUID 0x40000004 \
                 EAX bit 9); hvhost cannot emulate it, the guest must EOI itself",
                self.vp_index
            );
        }
        let mut st = self.lock();
        let Some(slot) = st.sints.get_mut(n) else {
            return Err(Gp);
        };
        *slot = sint;
        self.flush(&mut st, n);
        Ok(())
    }

    /// Guest write of EOM: a slot was freed with `msg_pending` set; retry
    /// every SINT with queued messages.
    pub fn eom(&self) {
        let mut st = self.lock();
        self.flush_all(&mut st);
    }

    /// Queues `msg` for SINT `sint` and delivers what the slot allows.
    /// INSUFFICIENT_BUFFERS when the SINT's queue is full; INVALID_PARAMETER
    /// for a SINT number out of range.
    pub fn post_message(&self, sint: usize, msg: &HvMessage) -> Result<(), HvStatus> {
        if sint >= SINT_COUNT {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let mut st = self.lock();
        if st.queues[sint].len() >= MESSAGE_QUEUE_DEPTH {
            return Err(HvStatus::INSUFFICIENT_BUFFERS);
        }
        st.queues[sint].push_back(*msg);
        self.flush(&mut st, sint);
        Ok(())
    }

    /// Sets flag `flag` of SINT `sint` in the SIEFP page; interrupts only
    /// when the flag went from 0 to 1. Returns whether it did go 0 → 1.
    /// INVALID_PARAMETER for a SINT or flag out of range; a disabled SynIC
    /// or SIEFP loses the event (there is nowhere to record it), like an
    /// interrupt sent to a disabled controller.
    pub fn signal_event(&self, sint: usize, flag: usize) -> Result<bool, HvStatus> {
        let (word, bit) = event_flag_word(sint, flag).ok_or(HvStatus::INVALID_PARAMETER)?;
        let st = self.lock();
        if !st.scontrol.enabled() || !st.siefp.enabled() {
            log::debug!(
                "VP {}: event flag {flag} on SINT{sint} dropped: SIEFP not enabled",
                self.vp_index
            );
            return Ok(false);
        }
        let prev = match self
            .mem
            .fetch_or_u32(st.siefp.gpa() + word as u64, 1 << bit)
        {
            Ok(prev) => prev,
            Err(e) => {
                log::warn!("VP {}: cannot set an event flag: {e}", self.vp_index);
                return Ok(false);
            }
        };
        let newly_set = prev & (1 << bit) == 0;
        if newly_set {
            self.notify(&st, sint);
        }
        Ok(newly_set)
    }

    /// Interrupts the vCPU on SINT `sint` as if an event arrived (no message,
    /// no flag), honouring mask and polling.
    pub fn raise(&self, sint: usize) {
        let st = self.lock();
        if sint < SINT_COUNT && st.scontrol.enabled() {
            self.notify(&st, sint);
        }
    }

    /// Messages queued behind SINT `sint`'s slot.
    pub fn queued(&self, sint: usize) -> usize {
        self.lock().queues.get(sint).map_or(0, VecDeque::len)
    }

    fn notify(&self, st: &State, sint: usize) {
        let reg = st.sints[sint];
        if reg.masked() || reg.polling() {
            return;
        }
        self.irq.raise(self.apic_id, reg.vector());
    }

    fn flush_all(&self, st: &mut State) {
        for sint in 0..SINT_COUNT {
            self.flush(st, sint);
        }
    }

    /// Moves queued messages of `sint` into its slot while the slot is free.
    fn flush(&self, st: &mut State, sint: usize) {
        if st.queues[sint].is_empty() || !st.scontrol.enabled() || !st.simp.enabled() {
            return;
        }
        let Some(offset) = message_slot_offset(sint) else {
            return;
        };
        let slot = st.simp.gpa() + offset as u64;
        while let Some(msg) = st.queues[sint].front() {
            match self.try_place(slot, msg) {
                Ok(true) => {
                    st.queues[sint].pop_front();
                    self.notify(st, sint);
                }
                Ok(false) => break,
                Err(e) => {
                    log::warn!(
                        "VP {}: SIMP slot of SINT{sint} is not RAM ({e}); dropping {} queued message(s)",
                        self.vp_index,
                        st.queues[sint].len()
                    );
                    st.queues[sint].clear();
                    break;
                }
            }
        }
    }

    /// Places `msg` in the slot at `slot` if it is free (steps 1 and 2 of
    /// the protocol). Ok(false): busy, `msg_pending` is set.
    fn try_place(&self, slot: u64, msg: &HvMessage) -> Result<bool, super::guest_mem::GpaError> {
        loop {
            if self.mem.load_u32(slot)? == 0 {
                let mut body = *msg;
                body.header.message_flags = 0;
                // Body first (bytes 4..256), then the type that hands it over.
                self.mem.write(slot + 4, &body.as_bytes()[4..])?;
                self.mem.store_u32(slot, msg.header.message_type)?;
                return Ok(true);
            }
            // Busy: ask for an EOM, then make sure the guest did not free
            // the slot before it could see the flag.
            self.mem
                .fetch_or_u32(slot + 4, u32::from(MESSAGE_FLAG_PENDING) << 8)?;
            if self.mem.load_u32(slot)? != 0 {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::guest_mem::FakeMemory;
    use super::*;
    use hvcall::synic::{MessageType, PageMsr};
    use proptest::prelude::*;
    use std::sync::atomic::AtomicU64;

    /// Records raised interrupts.
    #[derive(Default)]
    pub(crate) struct Irqs {
        pub(crate) raised: Mutex<Vec<(u32, u8)>>,
        pub(crate) count: AtomicU64,
    }

    impl InterruptSink for Irqs {
        fn raise(&self, apic_id: u32, vector: u8) {
            self.count.fetch_add(1, Ordering::SeqCst);
            self.raised
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((apic_id, vector));
        }
    }

    pub(crate) const SIMP_GPA: u64 = 0x1000;
    pub(crate) const SIEFP_GPA: u64 = 0x2000;

    pub(crate) fn setup() -> (Arc<FakeMemory>, Arc<Irqs>, Synic) {
        let mem = Arc::new(FakeMemory::new(0x4000));
        let irqs = Arc::new(Irqs::default());
        let synic = Synic::new(1, 1, mem.clone(), irqs.clone());
        synic
            .set_simp(PageMsr::enabled_at(SIMP_GPA).0)
            .expect("simp");
        synic
            .set_siefp(PageMsr::enabled_at(SIEFP_GPA).0)
            .expect("siefp");
        synic.set_scontrol(1).expect("scontrol");
        (mem, irqs, synic)
    }

    pub(crate) fn msg(n: u8) -> HvMessage {
        HvMessage::new(MessageType(1), &[n; 7]).expect("fits")
    }

    fn slot(mem: &FakeMemory, sint: usize) -> HvMessage {
        let mut buf = [0u8; 256];
        mem.read(SIMP_GPA + sint as u64 * 256, &mut buf)
            .expect("slot");
        zerocopy::transmute!(buf)
    }

    /// The guest's side: read the slot, free it, EOM if pending.
    pub(crate) fn guest_take(mem: &FakeMemory, synic: &Synic, sint: usize) -> Option<u8> {
        let base = SIMP_GPA + sint as u64 * 256;
        if mem.load_u32(base).expect("type") == 0 {
            return None;
        }
        let mut first = [0u8; 1];
        mem.read(base + 16, &mut first).expect("payload");
        mem.store_u32(base, 0).expect("free");
        std::sync::atomic::fence(Ordering::SeqCst);
        if mem.load_u32(base + 4).expect("flags") & 0x100 != 0 {
            synic.eom();
        }
        Some(first[0])
    }

    #[test]
    fn message_lands_in_slot_with_interrupt() {
        let (mem, irqs, synic) = setup();
        synic.set_sint(2, 0x40).expect("sint");
        synic.post_message(2, &msg(9)).expect("post");
        let m = slot(&mem, 2);
        assert_eq!(
            (m.header.message_type, m.header.payload_size, m.payload[0]),
            (1, 7, 9)
        );
        assert_eq!(*irqs.raised.lock().expect("lock"), vec![(1, 0x40)]);
    }

    #[test]
    fn busy_slot_sets_pending_and_eom_delivers_in_order() {
        let (mem, irqs, synic) = setup();
        synic.set_sint(2, 0x40).expect("sint");
        for n in 1..=3 {
            synic.post_message(2, &msg(n)).expect("post");
        }
        assert_eq!(synic.queued(2), 2);
        assert_eq!(slot(&mem, 2).header.message_flags, MESSAGE_FLAG_PENDING);
        let got: Vec<_> = std::iter::from_fn(|| guest_take(&mem, &synic, 2)).collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert_eq!(irqs.count.load(Ordering::SeqCst), 3);
        assert_eq!(slot(&mem, 2).header.message_flags, 0);
    }

    #[test]
    fn full_queue_is_insufficient_buffers() {
        let (_mem, _irqs, synic) = setup();
        synic.post_message(3, &msg(0)).expect("slot");
        for _ in 0..MESSAGE_QUEUE_DEPTH {
            synic.post_message(3, &msg(0)).expect("queue");
        }
        assert_eq!(
            synic.post_message(3, &msg(0)),
            Err(HvStatus::INSUFFICIENT_BUFFERS)
        );
        assert_eq!(
            synic.post_message(16, &msg(0)),
            Err(HvStatus::INVALID_PARAMETER)
        );
    }

    #[test]
    fn masked_and_polling_sints_get_data_without_interrupt() {
        let (mem, irqs, synic) = setup();
        synic
            .set_sint(4, SintReg::new(0x50).with_masked(true).0)
            .expect("masked");
        synic
            .set_sint(5, SintReg::new(0x51).with_polling(true).0)
            .expect("polling");
        synic.post_message(4, &msg(1)).expect("post");
        synic.post_message(5, &msg(2)).expect("post");
        assert_eq!(synic.signal_event(4, 3), Ok(true));
        assert_eq!(slot(&mem, 4).payload[0], 1);
        assert_eq!(slot(&mem, 5).payload[0], 2);
        assert_eq!(mem.load_u32(SIEFP_GPA + 4 * 256).expect("flags"), 1 << 3);
        assert_eq!(irqs.count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn event_flag_interrupts_only_on_zero_to_one() {
        let (mem, irqs, synic) = setup();
        synic.set_sint(1, 0x60).expect("sint");
        assert_eq!(synic.signal_event(1, 40), Ok(true));
        assert_eq!(synic.signal_event(1, 40), Ok(false));
        assert_eq!(mem.load_u32(SIEFP_GPA + 256 + 4).expect("word"), 1 << 8);
        assert_eq!(irqs.count.load(Ordering::SeqCst), 1);
        mem.fetch_and_u32(SIEFP_GPA + 256 + 4, 0)
            .expect("guest clears");
        assert_eq!(synic.signal_event(1, 40), Ok(true));
        assert_eq!(irqs.count.load(Ordering::SeqCst), 2);
        assert_eq!(
            synic.signal_event(1, 2048),
            Err(HvStatus::INVALID_PARAMETER)
        );
    }

    #[test]
    fn disabled_synic_queues_until_enabled() {
        let (mem, irqs, synic) = setup();
        synic.set_scontrol(0).expect("disable");
        synic.set_sint(2, 0x40).expect("sint");
        synic.post_message(2, &msg(5)).expect("queued");
        assert_eq!(slot(&mem, 2).header.message_type, 0);
        assert_eq!(synic.signal_event(2, 0), Ok(false));
        synic.set_scontrol(1).expect("enable");
        assert_eq!(slot(&mem, 2).payload[0], 5);
        assert_eq!(irqs.count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn sint_vector_below_16_unmasked_is_gp() {
        let (_mem, _irqs, synic) = setup();
        assert_eq!(synic.set_sint(0, 15), Err(Gp));
        assert_eq!(synic.set_sint(0, 15 | SintReg::MASKED), Ok(()));
        assert_eq!(synic.set_sint(0, 16), Ok(()));
        assert_eq!(synic.sint(0), Some(16));
        assert_eq!(synic.set_simp(PageMsr::enabled_at(0x10_0000).0), Err(Gp));
    }

    /// Many sender threads against one guest reader: slots stay full, the
    /// queue overflows (senders retry on INSUFFICIENT_BUFFERS), EOMs race
    /// with posts. Every message arrives exactly once, in order per sender.
    #[test]
    fn stress_many_senders_one_guest() {
        const SENDERS: u8 = 8;
        const EACH: u32 = 2000;
        let (mem, irqs, synic) = setup();
        synic.set_sint(2, 0x40).expect("sint");
        let synic = Arc::new(synic);
        let senders: Vec<_> = (0..SENDERS)
            .map(|id| {
                let synic = synic.clone();
                std::thread::spawn(move || {
                    for seq in 0..EACH {
                        let mut body = [0u8; 5];
                        body[0] = id;
                        body[1..].copy_from_slice(&seq.to_le_bytes());
                        let m = HvMessage::new(MessageType(1), &body).expect("fits");
                        while synic.post_message(2, &m) == Err(HvStatus::INSUFFICIENT_BUFFERS) {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u32; SENDERS as usize];
        let total = u32::from(SENDERS) * EACH;
        let mut got = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let base = SIMP_GPA + 2 * 256;
        while got < total {
            assert!(
                std::time::Instant::now() < deadline,
                "stuck after {got} messages"
            );
            if mem.load_u32(base).expect("type") == 0 {
                std::thread::yield_now();
                continue;
            }
            let mut body = [0u8; 5];
            mem.read(base + 16, &mut body).expect("payload");
            mem.store_u32(base, 0).expect("free");
            std::sync::atomic::fence(Ordering::SeqCst);
            if mem.load_u32(base + 4).expect("flags") & 0x100 != 0 {
                synic.eom();
            }
            let id = usize::from(body[0]);
            let seq = u32::from_le_bytes([body[1], body[2], body[3], body[4]]);
            assert_eq!(seq, next[id], "sender {id} out of order");
            next[id] += 1;
            got += 1;
        }
        for s in senders {
            s.join().expect("sender");
        }
        assert_eq!(synic.queued(2), 0);
        assert!(irqs.count.load(Ordering::SeqCst) >= u64::from(total));
    }

    proptest! {
        /// Any interleaving of posts and guest reads delivers every accepted
        /// message exactly once, in order per SINT, and rejects posts only
        /// when the queue is full.
        #[test]
        fn posts_and_takes_preserve_order(ops in proptest::collection::vec((0usize..3, any::<bool>()), 1..300)) {
            let (mem, _irqs, synic) = setup();
            let mut next = [0u8; 3];
            let mut expect: [VecDeque<u8>; 3] = Default::default();
            for (sint, post) in ops {
                if post {
                    match synic.post_message(sint, &msg(next[sint])) {
                        Ok(()) => { expect[sint].push_back(next[sint]); next[sint] = next[sint].wrapping_add(1); }
                        Err(s) => {
                            prop_assert_eq!(s, HvStatus::INSUFFICIENT_BUFFERS);
                            prop_assert_eq!(synic.queued(sint), MESSAGE_QUEUE_DEPTH);
                        }
                    }
                } else if let Some(got) = guest_take(&mem, &synic, sint) {
                    prop_assert_eq!(Some(got), expect[sint].pop_front());
                }
            }
            for (sint, expected) in expect.iter_mut().enumerate() {
                while let Some(got) = guest_take(&mem, &synic, sint) {
                    prop_assert_eq!(Some(got), expected.pop_front());
                }
                prop_assert!(expected.is_empty());
            }
        }
    }
}
