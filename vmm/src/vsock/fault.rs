// SPDX-License-Identifier: GPL-2.0

//! Faults hvhost's socket relay can be told to commit, to test that a
//! guest's transport survives a hostile host (`hvctl vsock-fault KIND`).
//! A packet fault is armed once and applied to the next data packet any
//! connection sends the guest; the unsolicited offer is made at once.
//!
//! Each is what a buggy or malicious host can do to a guest's socket: the
//! guest must reset that connection (or refuse the offer), never crash,
//! hang or hand the program bytes that were not sent.

use std::fmt;
use std::str::FromStr;

use vmbus::hvsock::{DataHeader, HOST_SEND_MAX, PIPE_MSG_DATA};

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The packet's header claims more bytes than the guest accepts in
    /// one packet.
    Oversize,
    /// The packet's header has a pipe type that is not data.
    BadType,
    /// The packet's header claims more bytes than the packet carries.
    PastPacket,
    /// An offer for a connection no guest program asked for: a guest
    /// endpoint that never sent TL_CONNECT_REQUEST.
    UnsolicitedOffer,
}

/// The guest port of [`Fault::UnsolicitedOffer`]'s endpoint: one no
/// guest program connects from (Linux's ephemeral ports stay below 2^31,
/// hv_guest's selftest floods from 0x7000_0000).
pub const UNSOLICITED_ENDPOINT_PORT: u32 = 0x6fff_fff0;

impl Fault {
    /// Every fault, by name.
    pub const ALL: [(&'static str, Fault); 4] = [
        ("oversize", Fault::Oversize),
        ("bad-type", Fault::BadType),
        ("past-packet", Fault::PastPacket),
        ("unsolicited-offer", Fault::UnsolicitedOffer),
    ];

    /// Whether the fault is committed on a data packet (else at once).
    pub const fn on_packet(self) -> bool {
        !matches!(self, Fault::UnsolicitedOffer)
    }

    /// The header to send, instead of the true one, with a packet of
    /// `len` data bytes (`len` > 0, at most `HOST_SEND_MAX - 16`); `None`
    /// for a fault that is no packet's.
    pub fn header(self, len: usize) -> Option<DataHeader> {
        let len = len as u32;
        Some(match self {
            Fault::Oversize => DataHeader::data(HOST_SEND_MAX as u32 + 1),
            Fault::BadType => DataHeader {
                pkt_type: PIPE_MSG_DATA + 1,
                data_size: len,
            },
            // Past the padding to 8 too: the ring pads each packet.
            Fault::PastPacket => DataHeader::data(((len + 7) & !7) + 8),
            Fault::UnsolicitedOffer => return None,
        })
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
        crate::named::parse_named(&Fault::ALL, s, "socket fault")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmbus::hvsock::{parse_data, PipeError};
    use zerocopy::IntoBytes;

    fn packet(h: DataHeader, len: usize) -> Vec<u8> {
        let mut p = h.as_bytes().to_vec();
        p.resize(p.len() + ((len + 7) & !7), 0xab);
        p
    }

    #[test]
    fn names_round_trip() {
        for (name, f) in Fault::ALL {
            assert_eq!(name.parse::<Fault>(), Ok(f));
            assert_eq!(f.to_string(), name);
        }
        assert!("nope".parse::<Fault>().is_err());
    }

    /// Each packet fault is refused by the shared parser, for the reason
    /// it names, whatever the length and the ring's padding.
    #[test]
    fn each_packet_fault_is_refused_for_its_reason() {
        for len in [1, 7, 8, 9, 4088, HOST_SEND_MAX - 16] {
            let p = |f: Fault| packet(f.header(len).expect("a packet fault"), len);
            assert!(matches!(
                parse_data(&p(Fault::Oversize), HOST_SEND_MAX),
                Err(PipeError::Oversize { .. })
            ));
            assert!(matches!(
                parse_data(&p(Fault::BadType), HOST_SEND_MAX),
                Err(PipeError::BadType { pkt_type: 2 })
            ));
            assert!(matches!(
                parse_data(&p(Fault::PastPacket), HOST_SEND_MAX),
                Err(PipeError::PastPacket { .. })
            ));
        }
        assert!(Fault::UnsolicitedOffer.header(1).is_none());
        assert!(!Fault::UnsolicitedOffer.on_packet() && Fault::Oversize.on_packet());
    }
}
