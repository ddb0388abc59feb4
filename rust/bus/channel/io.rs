// SPDX-License-Identifier: GPL-2.0

//! A channel's traffic: packets out (in-band, with GPA ranges, waiting for
//! ring space), packets in (the channel's work, or polling), and requests
//! whose completion comes back with the same transaction ID.

use kernel::prelude::*;
use kernel::sync::atomic::{Relaxed, Release};
use kernel::sync::MutexGuard;
use kernel::time::msecs_to_jiffies;

use super::{ring_errno, Channel, ChannelHandler, Pending, Rx, MAX_COMPLETION};
use crate::bus::ring::RingView;
use crate::vmbus::gpadl::GpadlRange;
use crate::vmbus::message::INTERRUPT_PAGE_SEND_OFFSET;
use crate::vmbus::packet::{Packet, PacketFlags, PacketType};
use crate::vmbus::ring::{RingError, RingProducer};

impl Channel {
    pub(super) fn signal(&self) {
        self.counters.signals.add(1, Relaxed);
        if !self.info.dedicated_interrupt {
            // The host finds which channel signalled in the interrupt page
            // (vmbus_set_event): the bit goes in before the hypercall.
            if let Err(e) = self
                .bus
                .interrupt_page
                .set_bit(INTERRUPT_PAGE_SEND_OFFSET, self.relid())
            {
                self.counters.errors.add(1, Relaxed);
                pr_err!("vmbus: relid {} has no interrupt page bit: {:?}\n", self.relid(), e);
                return;
            }
        }
        if let Err(e) = self
            .bus
            .core
            .hypercalls
            .signal_event(self.info.connection_id, 0)
        {
            self.counters.errors.add(1, Relaxed);
            pr_err!("vmbus: signalling relid {} failed: {}\n", self.relid(), e);
        }
    }

    fn send_with(
        &self,
        f: impl FnOnce(&mut RingProducer<RingView>) -> Result<bool, RingError>,
    ) -> Result {
        let mut tx = self.tx.lock();
        let producer = Option::as_mut(&mut *tx).ok_or(ENOTCONN)?;
        let signal = f(producer).map_err(|e| {
            if !matches!(e, RingError::Full { .. }) {
                pr_err!("vmbus: relid {} send ring: {}\n", self.relid(), e);
            }
            self.counters.errors.add(1, Relaxed);
            ring_errno(e)
        })?;
        drop(tx);
        self.counters.tx_packets.add(1, Relaxed);
        if signal {
            self.signal();
        }
        Ok(())
    }

    /// Sends an in-band packet. `EAGAIN` if the ring is full, `ENOTCONN`
    /// if the channel is not open.
    pub(crate) fn send_inband(&self, trans_id: u64, flags: PacketFlags, data: &[u8]) -> Result {
        self.send_with(|p| p.write_inband(trans_id, flags, data))
    }

    #[cfg(hv_guest_selftest)]
    /// Sends an in-band packet; if the send ring is full, waits for space
    /// as Linux's drivers do (see the module docs): `pending_send_sz` is set
    /// to half the ring (or the packet, if larger), so that one wakeup buys
    /// many packets, not one, and the host signals when its reads cross it.
    /// Errors: `ETIMEDOUT` after `timeout_ms` without space, `ENOTCONN` if
    /// the channel closed (or the host broke it), `ENODEV` if rescinded,
    /// `EMSGSIZE` if the packet can never fit, `EINTR` on a signal.
    pub(crate) fn send_inband_wait(
        &self,
        trans_id: u64,
        flags: PacketFlags,
        data: &[u8],
        timeout_ms: u32,
    ) -> Result {
        let mut left = msecs_to_jiffies(timeout_ms);
        let mut tx = self.tx.lock();
        let mut waited = false;
        loop {
            let producer = Option::as_mut(&mut *tx).ok_or(ENOTCONN)?;
            if self.is_rescinded() {
                if waited {
                    producer.clear_pending_send_size();
                }
                return Err(ENODEV);
            }
            let need = match producer.write_inband(trans_id, flags, data) {
                Ok(signal) => {
                    if waited {
                        producer.clear_pending_send_size();
                    }
                    drop(tx);
                    self.counters.tx_packets.add(1, Relaxed);
                    if signal {
                        self.signal();
                    }
                    return Ok(());
                }
                Err(RingError::Full { need, .. }) => need,
                Err(e) => {
                    pr_err!("vmbus: relid {} send ring: {}\n", self.relid(), e);
                    self.counters.errors.add(1, Relaxed);
                    return Err(ring_errno(e));
                }
            };
            self.counters.ring_full.add(1, Relaxed);
            let size = producer.data_len();
            let need = u32::try_from(need).map_err(|_| EMSGSIZE)?;
            // A write needs more than `need` free bytes and at most the
            // whole data area is ever free.
            if need >= size {
                return Err(EMSGSIZE);
            }
            let threshold = need.max(size / 2);
            waited = true;
            match producer.set_pending_send_size(threshold) {
                // Freed meanwhile: no signal will come, write now.
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    producer.clear_pending_send_size();
                    pr_err!("vmbus: relid {} send ring: {}\n", self.relid(), e);
                    return Err(ring_errno(e));
                }
            }
            if left == 0 {
                producer.clear_pending_send_size();
                return Err(ETIMEDOUT);
            }
            self.counters.space_waits.add(1, Relaxed);
            match self.space.wait_interruptible_timeout(&mut tx, left) {
                kernel::sync::CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                kernel::sync::CondVarTimeoutResult::Timeout => left = 0,
                kernel::sync::CondVarTimeoutResult::Signal { .. } => {
                    if let Some(p) = Option::as_mut(&mut *tx) {
                        p.clear_pending_send_size();
                    }
                    return Err(EINTR);
                }
            }
        }
    }

    /// Sends a packet that refers to guest pages (GPA direct).
    pub(crate) fn send_with_pages(
        &self,
        trans_id: u64,
        flags: PacketFlags,
        ranges: &[GpadlRange<'_>],
        data: &[u8],
    ) -> Result {
        self.send_with(|p| p.write_gpa_direct(trans_id, flags, ranges, data))
    }

    /// Sends `data` asking for a completion, waits for it and copies its
    /// data into `reply`; returns the bytes copied.
    pub(crate) fn request(&self, data: &[u8], reply: &mut [u8], timeout_ms: u32) -> Result<usize> {
        self.request_with_pages(&[], data, reply, timeout_ms)
    }

    /// [`Channel::request`] with a packet that refers to guest pages
    /// (`ranges`; in-band if there are none).
    pub(crate) fn request_with_pages(
        &self,
        ranges: &[GpadlRange<'_>],
        data: &[u8],
        reply: &mut [u8],
        timeout_ms: u32,
    ) -> Result<usize> {
        let trans_id = self.next_trans_id.fetch_add(1, Relaxed);
        self.pending.lock().push(
            Pending {
                trans_id,
                done: false,
                data: KVec::new(),
            },
            GFP_KERNEL,
        )?;
        let sent = if ranges.is_empty() {
            self.send_inband(trans_id, PacketFlags::COMPLETION_REQUESTED, data)
        } else {
            self.send_with_pages(trans_id, PacketFlags::COMPLETION_REQUESTED, ranges, data)
        };
        let mut left = msecs_to_jiffies(timeout_ms);
        let mut pending = self.pending.lock();
        let result = loop {
            let Some(i) = pending.iter().position(|p| p.trans_id == trans_id) else {
                break Err(EIO);
            };
            if let Err(e) = sent {
                break Err(e);
            }
            if pending[i].done {
                break Ok(i);
            }
            if left == 0 || self.is_rescinded() {
                break Err(if left == 0 { ETIMEDOUT } else { ENODEV });
            }
            match self
                .completed
                .wait_interruptible_timeout(&mut pending, left)
            {
                kernel::sync::CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                kernel::sync::CondVarTimeoutResult::Timeout => left = 0,
                kernel::sync::CondVarTimeoutResult::Signal { .. } => left = 0,
            }
        };
        let Some(i) = pending.iter().position(|p| p.trans_id == trans_id) else {
            return result.map(|_| 0);
        };
        let p = pending.remove(i).map_err(|_| EIO)?;
        result?;
        if self.tx.lock().is_none() {
            return Err(ENOTCONN);
        }
        let n = p.data.len().min(reply.len());
        reply[..n].copy_from_slice(&p.data[..n]);
        Ok(n)
    }

    /// Reads what the host sent and hands each packet to `f` (instead of
    /// the handler); returns the number of packets.
    #[allow(dead_code)]
    pub(crate) fn poll(&self, mut f: impl FnMut(&Packet<'_>)) -> Result<usize> {
        let mut n = 0;
        self.read_packets(|p| {
            n += 1;
            f(p)
        })?;
        Ok(n)
    }

    /// The channel work: reads everything and calls the handler.
    pub(super) fn drain(&self, handler: Option<&dyn ChannelHandler>) {
        let me = self.self_arc();
        let _ = self.read_packets(|p| {
            if let Some(h) = handler {
                h.on_packet(&me, p);
            }
        });
    }

    fn read_packets(&self, mut f: impl FnMut(&Packet<'_>)) -> Result {
        let mut rx_guard = self.rx.lock();
        let Some(rx) = Option::as_mut(&mut *rx_guard) else {
            return Err(ENOTCONN);
        };
        let result = loop {
            rx.consumer.mask_interrupts();
            let mut failed = None;
            loop {
                match rx.consumer.read_packet(&mut rx.buf) {
                    Ok(None) => break,
                    Ok(Some(p)) => {
                        self.counters.rx_packets.add(1, Relaxed);
                        if !self.complete(&p) {
                            f(&p);
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                match rx.consumer.commit() {
                    Ok(true) => self.signal(),
                    Ok(false) => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
            match rx.consumer.unmask_interrupts() {
                Ok(true) => continue,
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let Err(e) = result else {
            return Ok(());
        };
        self.stop_broken(rx_guard, e)
    }

    /// The host broke the ring: stops using it (the driver's next send
    /// fails too) and says why; the channel is closed on unbind. `EIO`.
    fn stop_broken(&self, mut rx_guard: MutexGuard<'_, Option<Rx>>, e: RingError) -> Result {
        self.counters.errors.add(1, Relaxed);
        pr_err!(
            "vmbus: relid {}: bad packet from the host: {}; channel stopped\n",
            self.relid(),
            e
        );
        *rx_guard = None;
        drop(rx_guard);
        *self.tx.lock() = None;
        self.space.notify_all();
        self.broken.store(true, Release);
        Err(EIO)
    }

    /// For a driver that reads the ring itself
    /// ([`ChannelHandler::reads_ring`]): copies the next packet from the
    /// host, if there is one, into `buf` (the packet starts at `buf[0]`)
    /// and hands it to `f` (completions too: such a driver sends no
    /// requests). The packet leaves the ring when `f` returns, and the
    /// host is signalled if it waits for the space. `ENOTCONN` if the
    /// channel is not open, `EIO` if the host broke the ring or sent a
    /// packet longer than `buf` (the channel stops).
    pub(crate) fn read_one<R>(
        &self,
        buf: &mut [u8],
        f: impl FnOnce(&Packet<'_>) -> R,
    ) -> Result<Option<R>> {
        self.read_one_locked(self.rx.lock(), buf, f)
    }

    /// [`Self::read_one`] where the caller must not sleep: the socket layer
    /// asks whether data is there between `prepare_to_wait()` and
    /// `schedule()`, in a state where a sleeping lock is a bug. `EAGAIN`
    /// when the ring is held elsewhere: by an open or a close, which wake
    /// the socket when they are done (its reads are serialised by the
    /// socket lock).
    pub(crate) fn try_read_one<R>(
        &self,
        buf: &mut [u8],
        f: impl FnOnce(&Packet<'_>) -> R,
    ) -> Result<Option<R>> {
        let rx_guard = self.rx.try_lock().ok_or(EAGAIN)?;
        self.read_one_locked(rx_guard, buf, f)
    }

    fn read_one_locked<R>(
        &self,
        mut rx_guard: MutexGuard<'_, Option<Rx>>,
        buf: &mut [u8],
        f: impl FnOnce(&Packet<'_>) -> R,
    ) -> Result<Option<R>> {
        let Some(rx) = Option::as_mut(&mut *rx_guard) else {
            return Err(ENOTCONN);
        };
        let r = match rx.consumer.read_packet(buf) {
            Ok(None) => return Ok(None),
            Ok(Some(p)) => {
                self.counters.rx_packets.add(1, Relaxed);
                f(&p)
            }
            Err(e) => return self.stop_broken(rx_guard, e).map(|()| None),
        };
        match rx.consumer.commit() {
            Ok(true) => self.signal(),
            Ok(false) => {}
            Err(e) => return self.stop_broken(rx_guard, e).map(|()| None),
        }
        Ok(Some(r))
    }

    /// Whether the host has written something not read yet (false when
    /// the channel is not open or its ring is broken).
    pub(crate) fn readable(&self) -> bool {
        let rx = self.rx.lock();
        Option::as_ref(&*rx).is_some_and(|rx| rx.consumer.bytes_available().is_ok_and(|n| n > 0))
    }

    /// Free bytes in the send ring; 0 when the channel is not open.
    pub(crate) fn send_space(&self) -> u32 {
        let tx = self.tx.lock();
        Option::as_ref(&*tx).map_or(0, |p| p.free_bytes().unwrap_or(0))
    }

    /// Asks the host to signal whenever its reads leave more than `bytes`
    /// free in the send ring (`pending_send_sz`, kept until the channel
    /// closes): a driver that does not wait in [`Channel::send_inband_wait`]
    /// learns so when it can write again. `ENOTCONN` if not open.
    pub(crate) fn keep_pending_send(&self, bytes: u32) -> Result {
        let tx = self.tx.lock();
        let producer = Option::as_ref(&*tx).ok_or(ENOTCONN)?;
        producer.enable_pending_send_size();
        producer.set_pending_send_size(bytes).map_err(ring_errno)?;
        Ok(())
    }

    /// If `p` completes a pending request, records it and returns true.
    fn complete(&self, p: &Packet<'_>) -> bool {
        if p.desc.ty != PacketType::COMP {
            return false;
        }
        let mut pending = self.pending.lock();
        let Some(entry) = pending
            .iter_mut()
            .find(|e| e.trans_id == p.desc.trans_id && !e.done)
        else {
            return false;
        };
        let data = p.data();
        let n = data.len().min(MAX_COMPLETION);
        entry.data.clear();
        if entry
            .data
            .extend_from_slice(&data[..n], GFP_KERNEL)
            .is_err()
        {
            entry.data.clear();
        }
        entry.done = true;
        drop(pending);
        self.completed.notify_all();
        true
    }
}
