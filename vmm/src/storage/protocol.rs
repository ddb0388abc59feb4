// SPDX-License-Identifier: GPL-2.0

//! The storage VSP's protocol state on one controller: initialisation
//! (BEGIN, version, properties, END), sub-channel requests, and which
//! requests are allowed when. It decides what to answer; the channel
//! carries the packets, and the controller executes the SCSI commands.
//!
//! As Linux 7.3's storvsc drives it: BEGIN_INITIALIZATION, then
//! QUERY_PROTOCOL_VERSION with 6.2 (then 6.0 if refused), QUERY_PROPERTIES,
//! END_INITIALIZATION, and CREATE_SUB_CHANNELS after END when the
//! properties offer them; OpenVMM accepts CREATE_SUB_CHANNELS before END
//! too, and so does this. SCSI commands are taken only once
//! initialisation has ended.

use vmbus::vstor::{
    status, ChannelProperties, VstorPacket, VstorRequest, VstorVersion, PROPERTY_MULTI_CHANNEL,
};

/// Where initialisation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for BEGIN_INITIALIZATION.
    Begin,
    /// BEGIN seen; waiting for a version the host accepts.
    Version,
    /// A version agreed; properties and END may come.
    Negotiated(VstorVersion),
    /// END seen: SCSI commands are served.
    Ready(VstorVersion),
}

/// What the channel should do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this completion.
    Complete(VstorPacket),
    /// Offer this many sub-channels (1..=n), then send the completion.
    CreateSubChannels(u16, VstorPacket),
    /// Execute the SCSI command (the channel sends its completion).
    Execute,
}

/// The protocol state of a controller's primary channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    phase: Phase,
    /// Most sub-channels offered.
    max_sub_channels: u16,
    /// Largest transfer, in bytes.
    max_transfer: u32,
    /// Sub-channels already created.
    sub_channels: u16,
}

impl Protocol {
    /// A controller offering up to `max_sub_channels` sub-channels and
    /// transfers of `max_transfer` bytes.
    pub fn new(max_sub_channels: u16, max_transfer: u32) -> Self {
        Self {
            phase: Phase::Begin,
            max_sub_channels,
            max_transfer,
            sub_channels: 0,
        }
    }

    /// Back to before BEGIN_INITIALIZATION, limits kept (the channel
    /// opened or closed).
    pub fn reset(&mut self) {
        *self = Self::new(self.max_sub_channels, self.max_transfer);
    }

    /// Where initialisation is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The agreed version, if any.
    pub fn version(&self) -> Option<VstorVersion> {
        match self.phase {
            Phase::Negotiated(v) | Phase::Ready(v) => Some(v),
            Phase::Begin | Phase::Version => None,
        }
    }

    /// Sub-channels created so far.
    pub fn sub_channels(&self) -> u16 {
        self.sub_channels
    }

    /// What to do with `request` (from the primary channel; a sub-channel
    /// only carries SCSI commands, see [`Self::on_sub_channel`]).
    pub fn handle(&mut self, request: &VstorRequest) -> Action {
        let ok = || Action::Complete(VstorPacket::completion(status::SUCCESS));
        let refuse = |s| Action::Complete(VstorPacket::completion(s));
        match (*request, self.phase) {
            // A guest may start over (a reload of its driver).
            (VstorRequest::BeginInitialization, _) => {
                self.phase = Phase::Version;
                self.sub_channels = 0;
                ok()
            }
            (VstorRequest::QueryProtocolVersion(v), Phase::Version) => {
                if VstorVersion::SUPPORTED.contains(&v) {
                    self.phase = Phase::Negotiated(v);
                    ok()
                } else {
                    refuse(status::REVISION_MISMATCH)
                }
            }
            (VstorRequest::QueryProperties, Phase::Negotiated(_) | Phase::Ready(_)) => {
                let props = ChannelProperties {
                    max_channel_cnt: self.max_sub_channels,
                    flags: if self.max_sub_channels > 0 {
                        PROPERTY_MULTI_CHANNEL
                    } else {
                        0
                    },
                    max_transfer_bytes: self.max_transfer,
                    ..ChannelProperties::default()
                };
                Action::Complete(VstorPacket::completion(status::SUCCESS).with_body(&props))
            }
            (VstorRequest::EndInitialization, Phase::Negotiated(v)) => {
                self.phase = Phase::Ready(v);
                ok()
            }
            (VstorRequest::CreateSubChannels(n), Phase::Negotiated(_) | Phase::Ready(_)) => {
                // Once per initialisation, at most what the properties offered.
                if n == 0 || self.sub_channels > 0 || n > self.max_sub_channels {
                    refuse(status::INVALID_PARAMETER)
                } else {
                    self.sub_channels = n;
                    Action::CreateSubChannels(n, VstorPacket::completion(status::SUCCESS))
                }
            }
            (VstorRequest::ExecuteSrb(_), Phase::Ready(_)) => Action::Execute,
            // Resets: nothing is queued here that a reset could drop.
            (VstorRequest::Reset(_), Phase::Ready(_)) => ok(),
            (VstorRequest::Unsupported(_), _) => refuse(status::NOT_SUPPORTED),
            // Anything else is out of order.
            _ => refuse(status::INVALID_DEVICE_STATE),
        }
    }

    /// What to do with `request` on a sub-channel: SCSI commands once the
    /// primary is ready; nothing else.
    pub fn on_sub_channel(&self, request: &VstorRequest) -> Action {
        match (request, self.phase) {
            (VstorRequest::ExecuteSrb(_), Phase::Ready(_)) => Action::Execute,
            _ => Action::Complete(VstorPacket::completion(status::INVALID_DEVICE_STATE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmbus::vstor::{VmscsiRequest, MAX_CDB_LENGTH};

    fn status_of(a: Action) -> u32 {
        match a {
            Action::Complete(p) | Action::CreateSubChannels(_, p) => p.status,
            Action::Execute => u32::MAX,
        }
    }

    fn srb() -> VstorRequest {
        VstorRequest::ExecuteSrb(VmscsiRequest::command(0, &[0; MAX_CDB_LENGTH], 2, 0))
    }

    #[test]
    fn linux_init_sequence_with_sub_channels() {
        let mut p = Protocol::new(3, 1 << 20);
        assert_eq!(status_of(p.handle(&srb())), status::INVALID_DEVICE_STATE);
        assert_eq!(status_of(p.handle(&VstorRequest::BeginInitialization)), 0);
        assert_eq!(
            status_of(p.handle(&VstorRequest::QueryProtocolVersion(VstorVersion::WIN10))),
            0
        );
        assert_eq!(p.version(), Some(VstorVersion::WIN10));
        let Action::Complete(props) = p.handle(&VstorRequest::QueryProperties) else {
            panic!("properties");
        };
        let props: ChannelProperties = props.body_as().expect("body");
        assert_eq!(
            (props.max_channel_cnt, props.flags, props.max_transfer_bytes),
            (3, PROPERTY_MULTI_CHANNEL, 1 << 20)
        );
        assert_eq!(status_of(p.handle(&VstorRequest::EndInitialization)), 0);
        assert_eq!(p.phase(), Phase::Ready(VstorVersion::WIN10));
        assert!(matches!(
            p.handle(&VstorRequest::CreateSubChannels(3)),
            Action::CreateSubChannels(3, _)
        ));
        // Only once.
        assert_eq!(
            status_of(p.handle(&VstorRequest::CreateSubChannels(1))),
            status::INVALID_PARAMETER
        );
        assert_eq!(p.handle(&srb()), Action::Execute);
        assert_eq!(p.on_sub_channel(&srb()), Action::Execute);
        assert_eq!(
            status_of(p.on_sub_channel(&VstorRequest::QueryProperties)),
            status::INVALID_DEVICE_STATE
        );
    }

    #[test]
    fn older_guests_fall_back_and_bad_orders_are_refused() {
        let mut p = Protocol::new(0, 1 << 20);
        // Before BEGIN.
        assert_eq!(
            status_of(p.handle(&VstorRequest::QueryProtocolVersion(VstorVersion::WIN10))),
            status::INVALID_DEVICE_STATE
        );
        p.handle(&VstorRequest::BeginInitialization);
        assert_eq!(
            status_of(p.handle(&VstorRequest::QueryProtocolVersion(VstorVersion(0x0501)))),
            status::REVISION_MISMATCH
        );
        assert_eq!(
            status_of(p.handle(&VstorRequest::QueryProtocolVersion(VstorVersion::WIN8_1))),
            0
        );
        // No sub-channels offered: none created.
        assert_eq!(
            status_of(p.handle(&VstorRequest::CreateSubChannels(1))),
            status::INVALID_PARAMETER
        );
        assert_eq!(
            status_of(p.handle(&VstorRequest::Unsupported(12))),
            status::NOT_SUPPORTED
        );
        assert_eq!(status_of(p.handle(&srb())), status::INVALID_DEVICE_STATE);
        p.handle(&VstorRequest::EndInitialization);
        assert_eq!(p.handle(&srb()), Action::Execute);
        // A second END, or a version change now, is out of order.
        assert_eq!(
            status_of(p.handle(&VstorRequest::EndInitialization)),
            status::INVALID_DEVICE_STATE
        );
        // A reload starts over.
        p.handle(&VstorRequest::BeginInitialization);
        assert_eq!(p.phase(), Phase::Version);
        assert_eq!(status_of(p.handle(&srb())), status::INVALID_DEVICE_STATE);
    }
}
