// SPDX-License-Identifier: GPL-2.0

//! Faults hvhost's SCSI controller can be told to commit, to test that a
//! guest survives a hostile host (`hvctl storage-fault KIND`): each is
//! armed once and applied to the next completion of a SCSI command, on
//! whichever channel it goes.
//!
//! The faults are what a buggy or malicious storage host can do to a
//! guest's completion stream; a guest driver must survive each without a
//! crash, a hang or a request completed wrongly.

use std::fmt;
use std::str::FromStr;

use vmbus::packet::PacketDescriptor;
use vmbus::scsi::status as scsi_status;
use vmbus::vstor::{operation, srb, VmscsiRequest, VstorPacket, SENSE_BUFFER_SIZE};

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The completion goes with a transaction ID the guest never used
    /// (its request is never answered).
    UnknownId,
    /// The completion is cut to 16 bytes, shorter than a VSTOR packet
    /// (its request is never answered).
    Short,
    /// The completion's operation is not COMPLETE_IO (its request is
    /// never answered).
    WrongOperation,
    /// The command fails with CHECK CONDITION and sense bytes that are
    /// no sense format at all.
    BogusSense,
    /// After the real completion, a second one for a request the guest
    /// never sent (a tag past any queue's depth).
    Phantom,
    /// The completion is never sent.
    Drop,
}

impl Fault {
    /// Every fault, by name.
    pub const ALL: [(&'static str, Fault); 6] = [
        ("unknown-id", Fault::UnknownId),
        ("short", Fault::Short),
        ("wrong-operation", Fault::WrongOperation),
        ("bogus-sense", Fault::BogusSense),
        ("phantom", Fault::Phantom),
        ("drop", Fault::Drop),
    ];

    /// What to write for the completion `reply` of request `desc`: each
    /// entry is a descriptor to answer and the bytes to answer it with.
    pub fn apply(
        self,
        desc: &PacketDescriptor,
        reply: &VstorPacket,
    ) -> Vec<(PacketDescriptor, Vec<u8>)> {
        use zerocopy::IntoBytes;
        let bytes = reply.as_bytes().to_vec();
        match self {
            Fault::UnknownId => {
                // Bit 62 is inside the guest's sequence field: the ID
                // names a request that is not (or no longer) in flight.
                let mut d = *desc;
                d.trans_id ^= 1 << 62;
                vec![(d, bytes)]
            }
            Fault::Short => vec![(*desc, bytes[..16].to_vec())],
            Fault::WrongOperation => {
                let mut r = *reply;
                r.operation = operation::EXECUTE_SRB;
                vec![(*desc, r.as_bytes().to_vec())]
            }
            Fault::BogusSense => {
                let mut vm: VmscsiRequest = reply.body_as().unwrap_or_default();
                vm.srb_status = srb::ERROR | srb::AUTOSENSE_VALID;
                vm.scsi_status = scsi_status::CHECK_CONDITION;
                vm.sense_info_length = SENSE_BUFFER_SIZE as u8;
                vm.payload = [0x12; SENSE_BUFFER_SIZE];
                vm.data_transfer_length = 0;
                vec![(*desc, reply.with_body(&vm).as_bytes().to_vec())]
            }
            Fault::Phantom => {
                let mut d = *desc;
                // Tag 0xffff of the same queue: no queue is that deep.
                d.trans_id = (d.trans_id & !0xffff_ffff)
                    | ((d.trans_id.wrapping_sub(1) & 0xffff_0000) + 0x1_0000);
                vec![(*desc, bytes.clone()), (d, bytes)]
            }
            Fault::Drop => Vec::new(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::named::name_of(&Fault::ALL, self))
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        crate::named::parse_named(&Fault::ALL, s, "storage fault")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmbus::packet::{PacketFlags, PacketType};
    use vmbus::vstor::Outcome;

    fn desc(trans_id: u64) -> PacketDescriptor {
        PacketDescriptor {
            ty: PacketType::DATA_USING_GPA_DIRECT,
            flags: PacketFlags::COMPLETION_REQUESTED,
            trans_id,
            ..PacketDescriptor::default()
        }
    }

    #[test]
    fn names_round_trip() {
        for (name, f) in Fault::ALL {
            assert_eq!(name.parse::<Fault>(), Ok(f));
            assert_eq!(f.to_string(), name);
        }
        assert!("nonsense"
            .parse::<Fault>()
            .is_err_and(|e| e.contains("unknown-id")));
    }

    #[test]
    fn each_fault_breaks_what_it_says() {
        let id = (7u64 << 32) | (0x2_0005 + 1);
        let req = VmscsiRequest::command(0, &[0x88; 16], vmbus::vstor::direction::READ, 4096);
        let reply =
            VstorPacket::completion(0).with_body(&req.completed(srb::SUCCESS, 0, 4096, &[]));
        let d = desc(id);
        let out = Fault::UnknownId.apply(&d, &reply);
        assert_eq!(out.len(), 1);
        assert_ne!(out[0].0.trans_id, id);
        assert_eq!(out[0].0.trans_id & 0xffff_ffff, id & 0xffff_ffff);
        assert_eq!(Fault::Short.apply(&d, &reply)[0].1.len(), 16);
        let wrong = VstorPacket::from_data(&Fault::WrongOperation.apply(&d, &reply)[0].1)
            .expect("64 bytes");
        assert_ne!(wrong.operation, operation::COMPLETE_IO);
        let bogus =
            VstorPacket::from_data(&Fault::BogusSense.apply(&d, &reply)[0].1).expect("64 bytes");
        let vm: VmscsiRequest = bogus.body_as().expect("body");
        assert_eq!(vm.outcome(4096), Outcome::IoError);
        let phantom = Fault::Phantom.apply(&d, &reply);
        assert_eq!(phantom.len(), 2);
        assert_eq!(phantom[0].0.trans_id, id);
        // Same queue (bits 16..31 of the tag), tag 0xffff.
        assert_eq!((phantom[1].0.trans_id & 0xffff_ffff) - 1, 0x2_ffff);
        assert!(Fault::Drop.apply(&d, &reply).is_empty());
    }
}
