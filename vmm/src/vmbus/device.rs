// SPDX-License-Identifier: GPL-2.0

//! What a VMBus device is to the server: an offer (class and instance
//! GUID) and the callbacks of its channel's life. Devices run on the VMBus
//! worker thread only, one callback at a time; they never block (no I/O
//! waits, no sleeps): a device that needs time asks to be polled again.

use std::time::Instant;

use vmbus::guid::Guid;
use vmbus::message::{OfferFlags, MAX_USER_DEFINED_BYTES};
use vmbus::packet::Packet;
use vmbus::ring::RingError;

use super::channel::ChannelIo;

/// Why a device gives up its channel (the server closes it and logs this).
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The guest's ring is corrupt or unreachable.
    #[error("ring: {0}")]
    Ring(RingError),
    /// The guest broke the device's protocol beyond recovery.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl From<RingError> for DeviceError {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}

/// A request from the host side to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceCommand {
    /// Ask the guest to shut down (power off) cleanly.
    Shutdown,
}

/// What became of a [`DeviceCommand`] a device took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandState {
    /// The guest can take it now: it goes out in the device's next poll
    /// (at once when the channel is open).
    Ready,
    /// Kept until the guest opens the device's channel (and, for an IC,
    /// negotiates its versions).
    Queued,
    /// The guest opened the channel but shares no protocol version with
    /// the device: it cannot get the request on this channel.
    Refused,
}

/// A device offered on VMBus.
pub trait VmbusDevice: Send {
    /// Short name for logs ("heartbeat").
    fn name(&self) -> &'static str;
    /// The offer's `if_type`: what kind of device this is.
    fn class_id(&self) -> Guid;
    /// The offer's `if_instance`: which one.
    fn instance_id(&self) -> Guid;
    /// The guest opened the channel; the rings are usable.
    fn open(&mut self, io: &mut ChannelIo<'_>) -> Result<(), DeviceError>;
    /// A packet from the guest (copied out of the ring, descriptor checked).
    fn packet(&mut self, io: &mut ChannelIo<'_>, packet: &Packet<'_>) -> Result<(), DeviceError>;
    /// Time-driven work; returns when to be polled next (`None`: only on
    /// packets or commands). Called after open, packets, commands and at
    /// the deadline it returned.
    fn poll(&mut self, io: &mut ChannelIo<'_>) -> Result<Option<Instant>, DeviceError>;
    /// The channel closed (guest CLOSECHANNEL, UNLOAD, rescind, or a fault).
    fn close(&mut self);
    /// A host request: `None` if this device does not take it, else whether
    /// the guest can take it now. The device acts on it in its next
    /// [`Self::poll`], which follows at once if the channel is open.
    fn command(&mut self, _cmd: DeviceCommand) -> Option<CommandState> {
        None
    }
    /// The device's own counters as `key=value` fields, space-separated,
    /// for the report (`hvctl stats`, `--report`); empty if it has none.
    fn counters(&self) -> String {
        String::new()
    }
    /// The disk hot-plug interface, if this device is a disk controller.
    /// The server polls the device after a change (it tells the guest).
    fn disks(&mut self) -> Option<&mut dyn DiskHotplug> {
        None
    }
    /// Whether the device takes another packet now. A device that cannot
    /// hand on what the guest sends (its peer is slow) says no: the server
    /// leaves the rest in the guest's ring, which holds the guest back,
    /// until the device wakes its channel ([`super::channel::ChannelWaker`]).
    fn takes_packets(&self) -> bool {
        true
    }
    /// If this device is one Hyper-V socket connection, how it is offered.
    /// Such a channel lives for one connection: the server rescinds it
    /// when it is done ([`super::channel::ChannelIo::rescind`]), when the
    /// guest closes it or breaks its ring, or when the guest has not
    /// opened it by [`SocketOffer::open_by`]; it is not offered again
    /// after the guest unloads VMBus.
    fn socket(&self) -> Option<SocketOffer> {
        None
    }
}

/// The offer of a Hyper-V socket channel ([`VmbusDevice::socket`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOffer {
    /// A host program connects to a listening guest (else the guest asked
    /// for the connection).
    pub for_guest_accept: bool,
    /// The guest opens the channel by then, or the offer is withdrawn.
    pub open_by: Instant,
}

impl SocketOffer {
    /// The offer's `chn_flags`.
    pub fn flags(&self) -> OfferFlags {
        vmbus::hvsock::OFFER_FLAGS
    }

    /// The offer's user-defined area.
    pub fn user_defined(&self) -> [u8; MAX_USER_DEFINED_BYTES] {
        vmbus::hvsock::user_defined(self.for_guest_accept)
    }
}

/// Where the server takes the guest's requests for Hyper-V socket
/// connections (TL_CONNECT_REQUEST).
pub trait SocketService: Send {
    /// The guest's endpoint `endpoint` asks for host service `service`: the
    /// device of the connection, to be offered, or why there is none.
    fn guest_connect(
        &mut self,
        endpoint: Guid,
        service: Guid,
    ) -> Result<Box<dyn VmbusDevice>, String>;

    /// Commits `fault` (`hvctl vsock-fault`): arms a packet fault, or
    /// returns the device of an offer to make at once.
    fn fault(
        &mut self,
        fault: crate::vsock::fault::Fault,
    ) -> Result<Option<Box<dyn VmbusDevice>>, String>;
}

/// Adding and removing disks on a running controller (`hvctl disk-add`,
/// `disk-remove`), and arming a fault (`hvctl storage-fault`).
pub trait DiskHotplug {
    /// Adds an open disk image at `lun` (or the first free LUN); its LUN, or why not.
    fn add_disk(
        &mut self,
        lun: Option<u8>,
        image: crate::storage::image::DiskImage,
    ) -> Result<u8, String>;
    /// Removes the disk at `lun` once the I/O queued for it is done.
    fn remove_disk(&mut self, lun: u8) -> Result<(), String>;
    /// Commits `fault` on the next completion of a SCSI command.
    fn arm_fault(&mut self, fault: crate::storage::fault::Fault);
}
