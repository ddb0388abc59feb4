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
//! On CREATE_SUB_CHANNELS the primary asks the server for sub-channels
//! ([`StorvspSubChannel`], same class and instance), which serve SCSI
//! commands on the same disks once the primary is ready, and go when it
//! closes.
//!
//! Commands run on the VMBus thread, one at a time, against the image
//! (positional reads and writes; an image on a slow medium delays the
//! other channels). A completion that does not fit the guest's receive
//! ring is dropped and counted: Linux sizes its ring for every request it
//! can have in flight, so only a guest that stops reading loses one.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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

/// What the primary channel and its sub-channels share: the disks, the
/// protocol state (sub-channels serve SCSI only once the primary is
/// ready) and the counters.
struct Shared {
    controller: Controller,
    protocol: Protocol,
    counters: StorvspCounters,
}

/// The shared state, locked by whichever channel runs (all on the VMBus
/// thread, so never contended today).
#[derive(Clone)]
struct Service(Arc<Mutex<Shared>>);

impl Service {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The SCSI controller device (its primary channel).
pub struct Storvsp {
    service: Service,
    max_sub_channels: u16,
    /// SCSI commands on this channel.
    channel_commands: u64,
}

/// One sub-channel of the controller: SCSI commands only.
pub struct StorvspSubChannel {
    service: Service,
    channel_commands: u64,
}

impl Storvsp {
    /// A controller device serving `controller`'s disks, offering up to
    /// `max_sub_channels` sub-channels (one per vCPU beyond the first, as
    /// Linux asks for).
    pub fn new(controller: Controller, max_sub_channels: u16) -> Self {
        Self {
            service: Service(Arc::new(Mutex::new(Shared {
                controller,
                protocol: Protocol::new(max_sub_channels, MAX_TRANSFER_BYTES),
                counters: StorvspCounters::default(),
            }))),
            max_sub_channels,
            channel_commands: 0,
        }
    }
}

/// Checks a packet's type and flags: only data is VSTOR.
fn check_packet(packet: &Packet<'_>) -> Result<(), DeviceError> {
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
    Ok(())
}

impl Shared {
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

    /// Parses `packet`; a malformed one is answered INVALID_PARAMETER here
    /// (`None`).
    fn parse(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Option<VstorRequest> {
        self.counters.requests += 1;
        match parse_request(packet.data()) {
            Ok((_, r)) => Some(r),
            Err(e) => {
                self.counters.invalid += 1;
                log::warn!(
                    "vmbus: scsi: request {:#x} refused: {e}",
                    packet.desc.trans_id
                );
                self.complete(
                    io,
                    packet,
                    &VstorPacket::completion(status::INVALID_PARAMETER),
                );
                None
            }
        }
    }

    /// Executes the SCSI command `request` of `packet`; its completion.
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
        INSTANCE
    }

    fn open(&mut self, _io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        self.service.lock().protocol = Protocol::new(self.max_sub_channels, MAX_TRANSFER_BYTES);
        Ok(())
    }

    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError> {
        check_packet(packet)?;
        let mut shared = self.service.lock();
        let Some(request) = shared.parse(io, packet) else {
            return Ok(());
        };
        let before = shared.protocol.phase();
        let reply = match shared.protocol.handle(&request) {
            Action::Complete(reply) => reply,
            Action::CreateSubChannels(n, reply) => {
                for _ in 0..n {
                    io.offer_sub_channel(Box::new(StorvspSubChannel {
                        service: self.service.clone(),
                        channel_commands: 0,
                    }));
                }
                log::info!("vmbus: scsi: the guest asked for {n} sub-channel(s)");
                reply
            }
            Action::Execute => match request {
                VstorRequest::ExecuteSrb(srb) => {
                    self.channel_commands += 1;
                    shared.execute(io, packet, &srb)
                }
                _ => VstorPacket::completion(status::INVALID_DEVICE_STATE),
            },
        };
        if reply.status != status::SUCCESS {
            log::info!(
                "vmbus: scsi: {request:?} answered {:#x} ({:?})",
                reply.status,
                shared.protocol.phase()
            );
        }
        if shared.protocol.phase() != before {
            log::debug!("vmbus: scsi: {:?} -> {:?}", before, shared.protocol.phase());
        }
        shared.complete(io, packet, &reply);
        Ok(())
    }

    fn poll(&mut self, _io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        Ok(None)
    }

    fn close(&mut self) {
        self.service.lock().protocol = Protocol::new(self.max_sub_channels, MAX_TRANSFER_BYTES);
    }

    fn counters(&self) -> String {
        let shared = self.service.lock();
        let c = &shared.counters;
        let mut out = format!(
            "version={} requests={} commands={} invalid={} completions_dropped={} \
             channel_commands={}",
            shared
                .protocol
                .version()
                .map_or("none".to_string(), |v| format!(
                    "{}.{}",
                    v.major(),
                    v.minor()
                )),
            c.requests,
            c.commands,
            c.invalid,
            c.completions_dropped,
            self.channel_commands
        );
        for (lun, d) in shared.controller.counters() {
            out.push_str(&format!(
                " lun{lun}_reads={} lun{lun}_writes={} lun{lun}_bytes_read={} \
                 lun{lun}_bytes_written={} lun{lun}_flushes={} lun{lun}_discards={} lun{lun}_errors={}",
                d.reads, d.writes, d.bytes_read, d.bytes_written, d.flushes, d.discards, d.errors
            ));
        }
        out
    }
}

impl VmbusDevice for StorvspSubChannel {
    fn name(&self) -> &'static str {
        "scsi"
    }

    fn class_id(&self) -> Guid {
        SCSI
    }

    fn instance_id(&self) -> Guid {
        INSTANCE
    }

    fn open(&mut self, _io: &mut ChannelIo<'_>) -> Result<(), DeviceError> {
        Ok(())
    }

    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError> {
        check_packet(packet)?;
        let mut shared = self.service.lock();
        let Some(request) = shared.parse(io, packet) else {
            return Ok(());
        };
        let reply = match (shared.protocol.on_sub_channel(&request), request) {
            (Action::Execute, VstorRequest::ExecuteSrb(srb)) => {
                self.channel_commands += 1;
                shared.execute(io, packet, &srb)
            }
            (Action::Complete(reply), _) => {
                log::info!(
                    "vmbus: scsi: {request:?} on a sub-channel answered {:#x}",
                    reply.status
                );
                reply
            }
            _ => VstorPacket::completion(status::INVALID_DEVICE_STATE),
        };
        shared.complete(io, packet, &reply);
        Ok(())
    }

    fn poll(&mut self, _io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError> {
        Ok(None)
    }

    fn close(&mut self) {}

    fn counters(&self) -> String {
        format!("channel_commands={}", self.channel_commands)
    }
}

/// The controller's instance GUID (one controller per VM).
const INSTANCE: Guid = super::ic::instance_guid(0x20);
