// SPDX-License-Identifier: GPL-2.0

//! The SCSI controller (`--disk`): a device of class [`SCSI`] that speaks
//! the VSTOR protocol (`vmbus::vstor`) to Linux's storvsc or hv_guest's
//! disk driver and serves its disks ([`crate::storage::Controller`]).
//!
//! Control requests come in-band; SCSI commands with data come as
//! GPA-direct packets whose one range names the data's guest pages
//! ([`GuestBuffer`], checked before any byte moves), commands without data
//! in-band. Every request that asks for a completion gets one: a malformed
//! VSTOR packet is answered INVALID_PARAMETER, a bad range or a command
//! in-band with data SRB_STATUS_INVALID_REQUEST, each logged and counted;
//! only a packet that is not data at all (another VMBus packet type, or
//! unknown flags) breaks the protocol and closes the channel.
//!
//! Commands run on the VMBus thread, one at a time, against the image
//! (positional reads and writes; an image on a slow medium delays the
//! other channels). A completion that does not fit the guest's receive
//! ring is dropped and counted: Linux sizes its ring for every request it
//! can have in flight, so only a guest that stops reading loses one.

use std::time::Instant;

use vmbus::guid::{Guid, SCSI};
use vmbus::packet::{Packet, PacketFlags, PacketType};
use vmbus::ring::RingError;
use vmbus::vstor::{parse_request, srb, status, VmscsiRequest, VstorPacket, VstorRequest};
use zerocopy::IntoBytes as _;

use super::channel::ChannelIo;
use super::device::{DeviceError, VmbusDevice};
use crate::storage::disk::{DataBuffer, MAX_TRANSFER_BYTES};
use crate::storage::guest_buffer::GuestBuffer;
use crate::storage::protocol::{Action, Protocol};
use crate::storage::Controller;

/// The controller's counters (the disks count their own commands).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorvspCounters {
    /// VSTOR requests taken.
    pub requests: u64,
    /// SCSI commands executed.
    pub commands: u64,
    /// Requests refused as malformed (bad packet, bad range, data in-band).
    pub invalid: u64,
    /// Completions that did not fit the guest's receive ring.
    pub completions_dropped: u64,
}

/// The SCSI controller device.
pub struct Storvsp {
    controller: Controller,
    protocol: Protocol,
    counters: StorvspCounters,
}

impl Storvsp {
    /// A controller device serving `controller`'s disks.
    pub fn new(controller: Controller) -> Self {
        Self {
            controller,
            protocol: Protocol::new(0, MAX_TRANSFER_BYTES),
            counters: StorvspCounters::default(),
        }
    }

    fn complete(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>, reply: &VstorPacket) {
        if !packet
            .desc
            .flags
            .contains(PacketFlags::COMPLETION_REQUESTED)
        {
            return;
        }
        match io.send_completion(&packet.desc, reply.as_bytes()) {
            Ok(()) => {}
            Err(RingError::Full { need, free }) => {
                self.counters.completions_dropped += 1;
                log::warn!(
                    "vmbus: scsi: the guest's receive ring is full ({free} bytes free, {need} \
                     needed): completion of request {:#x} dropped",
                    packet.desc.trans_id
                );
            }
            Err(e) => log::error!("vmbus: scsi: completion not sent: {e}"),
        }
    }

    /// Executes the SCSI command `srb` of `packet`; its completion.
    fn execute(
        &mut self,
        io: &ChannelIo<'_>,
        packet: &Packet<'_>,
        request: &VmscsiRequest,
    ) -> VstorPacket {
        self.counters.commands += 1;
        let invalid = |this: &mut Self, why: &str| {
            this.counters.invalid += 1;
            log::warn!(
                "vmbus: scsi: request {:#x} (opcode {:#04x}) refused: {why}",
                packet.desc.trans_id,
                request.cdb().first().copied().unwrap_or(0)
            );
            VstorPacket::completion(status::INVALID_PARAMETER).with_body(&request.completed(
                srb::INVALID_REQUEST,
                0,
                0,
                &[],
            ))
        };
        let len = request.data_transfer_length;
        let mut empty = Vec::new();
        let mut guest;
        let buf: &mut dyn DataBuffer = if packet.desc.ty == PacketType::DATA_USING_GPA_DIRECT {
            let ranges = match packet.gpa_ranges() {
                Ok(r) => r,
                Err(e) => return invalid(self, &format!("GPA ranges: {e:?}")),
            };
            guest = match GuestBuffer::new(io.memory().as_ref(), ranges, len) {
                Ok(b) => b,
                Err(e) => return invalid(self, &e.to_string()),
            };
            &mut guest
        } else if len == 0 {
            &mut empty
        } else {
            return invalid(self, &format!("{len} bytes of data but no GPA range"));
        };
        let done = self.controller.execute(
            request.path_id,
            request.target_id,
            request.lun,
            request.cdb(),
            buf,
        );
        let sense = done.outcome.sense.map(|s| s.to_bytes());
        let reply = request.completed(
            done.srb_status,
            done.outcome.status,
            done.outcome.moved,
            sense.as_ref().map_or(&[][..], |s| &s[..]),
        );
        VstorPacket::completion(status::SUCCESS).with_body(&reply)
    }
}

impl VmbusDevice for Storvsp {
    fn name(&self) -> &'static str {
        "scsi"
    }

    fn class_id(&self) -> Guid {
        SCSI
    }

    fn instance_id(&self) -> Guid {
        super::ic::instance_guid(0x20)
    }

    fn open(&mut self, _io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        self.protocol = Protocol::new(0, MAX_TRANSFER_BYTES);
        Ok(())
    }

    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError> {
        let desc = &packet.desc;
        if desc.ty != PacketType::DATA_INBAND && desc.ty != PacketType::DATA_USING_GPA_DIRECT {
            return Err(DeviceError::Protocol(format!(
                "scsi: packet of type {:?}: only in-band and GPA-direct data are VSTOR",
                desc.ty
            )));
        }
        if desc.flags.0 & !PacketFlags::COMPLETION_REQUESTED.0 != 0 {
            return Err(DeviceError::Protocol(format!(
                "scsi: unknown packet flags {:#x}",
                desc.flags.0
            )));
        }
        self.counters.requests += 1;
        let request = match parse_request(packet.data()) {
            Ok((_, r)) => r,
            Err(e) => {
                self.counters.invalid += 1;
                log::warn!("vmbus: scsi: request {:#x} refused: {e}", desc.trans_id);
                self.complete(
                    io,
                    packet,
                    &VstorPacket::completion(status::INVALID_PARAMETER),
                );
                return Ok(());
            }
        };
        let before = self.protocol.phase();
        let reply = match self.protocol.handle(&request) {
            Action::Complete(reply) => reply,
            // No sub-channels are offered (properties say 0), so the
            // protocol never asks for them.
            Action::CreateSubChannels(_, _) => VstorPacket::completion(status::INVALID_PARAMETER),
            Action::Execute => match request {
                VstorRequest::ExecuteSrb(srb) => self.execute(io, packet, &srb),
                _ => VstorPacket::completion(status::INVALID_DEVICE_STATE),
            },
        };
        if reply.status != status::SUCCESS {
            log::info!(
                "vmbus: scsi: {request:?} answered {:#x} ({:?})",
                reply.status,
                self.protocol.phase()
            );
        }
        if self.protocol.phase() != before {
            log::debug!("vmbus: scsi: {:?} -> {:?}", before, self.protocol.phase());
        }
        self.complete(io, packet, &reply);
        Ok(())
    }

    fn poll(&mut self, _io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        Ok(None)
    }

    fn close(&mut self) {
        self.protocol = Protocol::new(0, MAX_TRANSFER_BYTES);
    }

    fn counters(&self) -> String {
        let c = &self.counters;
        let mut out = format!(
            "version={} requests={} commands={} invalid={} completions_dropped={}",
            self.protocol
                .version()
                .map_or("none".to_string(), |v| format!(
                    "{}.{}",
                    v.major(),
                    v.minor()
                )),
            c.requests,
            c.commands,
            c.invalid,
            c.completions_dropped
        );
        for (lun, d) in self.controller.counters() {
            out.push_str(&format!(
                " lun{lun}_reads={} lun{lun}_writes={} lun{lun}_bytes_read={} \
                 lun{lun}_bytes_written={} lun{lun}_flushes={} lun{lun}_discards={} lun{lun}_errors={}",
                d.reads, d.writes, d.bytes_read, d.bytes_written, d.flushes, d.discards, d.errors
            ));
        }
        out
    }
}
