// SPDX-License-Identifier: GPL-2.0

//! The parser for channel messages from the other side: total over any
//! bytes (never panics, never reads past the input), and it enforces the
//! per-type minimum sizes of Linux's `channel_message_table` (extended to
//! the types only a host receives). The result copies the fixed part out of
//! the input; the variable GPADL parts stay borrowed as bytes.

use super::message::{
    read_prefix, ChannelMessage, CloseChannel, GpaRange, GpadlBody, GpadlCreated, GpadlHeader,
    GpadlTeardown, GpadlTorndown, InitiateContact, MessageHeader, MessageType, ModifyChannel,
    ModifyChannelResponse, OfferChannel, OpenChannel, OpenResult, RelidReleased,
    RescindChannelOffer, TlConnectRequest, TlConnectResult, VersionResponse, HEADER_SIZE,
    MAX_MESSAGE_SIZE,
};

/// A channel message, checked for size, its fixed part copied out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// OFFERCHANNEL.
    OfferChannel(OfferChannel),
    /// RESCIND_CHANNELOFFER.
    RescindChannelOffer(RescindChannelOffer),
    /// REQUESTOFFERS.
    RequestOffers,
    /// ALLOFFERS_DELIVERED.
    AllOffersDelivered,
    /// OPENCHANNEL.
    OpenChannel(OpenChannel),
    /// OPENCHANNEL_RESULT.
    OpenResult(OpenResult),
    /// CLOSECHANNEL.
    CloseChannel(CloseChannel),
    /// GPADL_HEADER with its first range data.
    GpadlHeader(GpadlHeaderView<'a>),
    /// GPADL_BODY with its PFNs.
    GpadlBody(GpadlBodyView<'a>),
    /// GPADL_CREATED.
    GpadlCreated(GpadlCreated),
    /// GPADL_TEARDOWN.
    GpadlTeardown(GpadlTeardown),
    /// GPADL_TORNDOWN.
    GpadlTorndown(GpadlTorndown),
    /// RELID_RELEASED.
    RelidReleased(RelidReleased),
    /// INITIATE_CONTACT.
    InitiateContact(InitiateContact),
    /// VERSION_RESPONSE.
    VersionResponse(VersionResponse),
    /// UNLOAD.
    Unload,
    /// UNLOAD_RESPONSE.
    UnloadResponse,
    /// TL_CONNECT_REQUEST.
    TlConnectRequest(TlConnectRequest),
    /// MODIFYCHANNEL.
    ModifyChannel(ModifyChannel),
    /// TL_CONNECT_RESULT.
    TlConnectResult(TlConnectResult),
    /// MODIFYCHANNEL_RESPONSE.
    ModifyChannelResponse(ModifyChannelResponse),
}

impl Message<'_> {
    /// The type number of this message.
    pub fn msgtype(&self) -> MessageType {
        match self {
            Self::OfferChannel(_) => MessageType::OFFERCHANNEL,
            Self::RescindChannelOffer(_) => MessageType::RESCIND_CHANNELOFFER,
            Self::RequestOffers => MessageType::REQUESTOFFERS,
            Self::AllOffersDelivered => MessageType::ALLOFFERS_DELIVERED,
            Self::OpenChannel(_) => MessageType::OPENCHANNEL,
            Self::OpenResult(_) => MessageType::OPENCHANNEL_RESULT,
            Self::CloseChannel(_) => MessageType::CLOSECHANNEL,
            Self::GpadlHeader(_) => MessageType::GPADL_HEADER,
            Self::GpadlBody(_) => MessageType::GPADL_BODY,
            Self::GpadlCreated(_) => MessageType::GPADL_CREATED,
            Self::GpadlTeardown(_) => MessageType::GPADL_TEARDOWN,
            Self::GpadlTorndown(_) => MessageType::GPADL_TORNDOWN,
            Self::RelidReleased(_) => MessageType::RELID_RELEASED,
            Self::InitiateContact(_) => MessageType::INITIATE_CONTACT,
            Self::VersionResponse(_) => MessageType::VERSION_RESPONSE,
            Self::Unload => MessageType::UNLOAD,
            Self::UnloadResponse => MessageType::UNLOAD_RESPONSE,
            Self::TlConnectRequest(_) => MessageType::TL_CONNECT_REQUEST,
            Self::ModifyChannel(_) => MessageType::MODIFYCHANNEL,
            Self::TlConnectResult(_) => MessageType::TL_CONNECT_RESULT,
            Self::ModifyChannelResponse(_) => MessageType::MODIFYCHANNEL_RESPONSE,
        }
    }
}

/// A GPADL_HEADER: the fixed part and the range data this message carries
/// (a prefix of the whole range data, whole u64 words only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpadlHeaderView<'a> {
    /// The fixed part.
    pub header: GpadlHeader,
    /// Range data words in this message, as raw little-endian bytes; a
    /// multiple of 8 long and no longer than `range_buflen`.
    pub data: &'a [u8],
}

impl GpadlHeaderView<'_> {
    /// The range data words in this message.
    pub fn words(&self) -> Words<'_> {
        Words(self.data)
    }

    /// The first range's head, if this message carries it.
    pub fn first_range(&self) -> Option<GpaRange> {
        read_prefix(self.data)
    }
}

/// A GPADL_BODY: the fixed part and its PFNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpadlBodyView<'a> {
    /// The fixed part.
    pub body: GpadlBody,
    /// The PFNs (whole u64 words) as raw little-endian bytes.
    pub data: &'a [u8],
}

impl GpadlBodyView<'_> {
    /// The PFNs in this message.
    pub fn words(&self) -> Words<'_> {
        Words(self.data)
    }
}

/// Little-endian u64 words read from unaligned bytes.
#[derive(Clone, Debug)]
///
/// Written without division or panicking slice operations (no `chunks_exact`),
/// so the kernel build has no panic path here: a trailing partial word is
/// ignored.
pub struct Words<'a>(&'a [u8]);

impl Iterator for Words<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let (w, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*w))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.len() >> 3;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Words<'_> {}

/// Why bytes are not a channel message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the header, or than this type's layout.
    TooShort {
        /// The type, if the header was there to read.
        msgtype: Option<MessageType>,
        /// Bytes required.
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// Longer than a SynIC message payload.
    TooLong {
        /// Bytes given.
        got: usize,
    },
    /// A type with no layout (0, 18..20, 25 and up).
    UnknownType(MessageType),
    /// A GPADL_HEADER with zero ranges.
    BadGpadlRangeCount {
        /// The count.
        rangecount: u16,
    },
    /// A GPADL_HEADER whose `range_buflen` cannot hold its ranges or is not
    /// whole words.
    BadGpadlRangeBuflen {
        /// The length.
        range_buflen: u16,
        /// The count.
        rangecount: u16,
    },
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort {
                msgtype: Some(t),
                need,
                got,
            } => {
                write!(f, "{} message too short: {} bytes, need {}", t, got, need)
            }
            Self::TooShort {
                msgtype: None,
                need,
                got,
            } => {
                write!(
                    f,
                    "message too short for its header: {} bytes, need {}",
                    got, need
                )
            }
            Self::TooLong { got } => {
                write!(
                    f,
                    "message of {} bytes exceeds the {} byte payload",
                    got, MAX_MESSAGE_SIZE
                )
            }
            Self::UnknownType(t) => write!(f, "unknown message type {}", t.0),
            Self::BadGpadlRangeCount { rangecount } => {
                write!(f, "GPADL header with {} ranges", rangecount)
            }
            Self::BadGpadlRangeBuflen {
                range_buflen,
                rangecount,
            } => {
                write!(
                    f,
                    "GPADL range_buflen {} does not fit {} ranges",
                    range_buflen, rangecount
                )
            }
        }
    }
}

fn fixed<M: ChannelMessage>(bytes: &[u8]) -> Result<M, ParseError> {
    read_prefix(&bytes[HEADER_SIZE.min(bytes.len())..]).ok_or(ParseError::TooShort {
        msgtype: Some(M::TYPE),
        need: M::LEN,
        got: bytes.len(),
    })
}

/// Parses one channel message: `bytes` is the SynIC message payload, as
/// long as its `payload_size` says. Bytes past the type's layout are
/// ignored, as Linux does, except for GPADL messages, whose whole words are
/// their range data.
pub fn parse(bytes: &[u8]) -> Result<Message<'_>, ParseError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLong { got: bytes.len() });
    }
    let header: MessageHeader = read_prefix(bytes).ok_or(ParseError::TooShort {
        msgtype: None,
        need: HEADER_SIZE,
        got: bytes.len(),
    })?;
    let t = header.msgtype;
    let Some(min) = t.min_len() else {
        return Err(ParseError::UnknownType(t));
    };
    if bytes.len() < min {
        return Err(ParseError::TooShort {
            msgtype: Some(t),
            need: min,
            got: bytes.len(),
        });
    }
    Ok(match t {
        MessageType::OFFERCHANNEL => Message::OfferChannel(fixed(bytes)?),
        MessageType::RESCIND_CHANNELOFFER => Message::RescindChannelOffer(fixed(bytes)?),
        MessageType::REQUESTOFFERS => Message::RequestOffers,
        MessageType::ALLOFFERS_DELIVERED => Message::AllOffersDelivered,
        MessageType::OPENCHANNEL => Message::OpenChannel(fixed(bytes)?),
        MessageType::OPENCHANNEL_RESULT => Message::OpenResult(fixed(bytes)?),
        MessageType::CLOSECHANNEL => Message::CloseChannel(fixed(bytes)?),
        MessageType::GPADL_HEADER => {
            let header: GpadlHeader = fixed(bytes)?;
            let (count, buflen) = (header.rangecount, header.range_buflen);
            if count == 0 {
                return Err(ParseError::BadGpadlRangeCount { rangecount: count });
            }
            // Each range is at least its head; the data is whole words.
            if buflen % 8 != 0
                || (buflen as usize) < count as usize * core::mem::size_of::<GpaRange>()
            {
                return Err(ParseError::BadGpadlRangeBuflen {
                    range_buflen: buflen,
                    rangecount: count,
                });
            }
            let rest = &bytes[GpadlHeader::LEN..];
            let words = (rest.len() / 8).min(buflen as usize / 8);
            Message::GpadlHeader(GpadlHeaderView {
                header,
                data: &rest[..words * 8],
            })
        }
        MessageType::GPADL_BODY => {
            let body: GpadlBody = fixed(bytes)?;
            let rest = &bytes[GpadlBody::LEN..];
            Message::GpadlBody(GpadlBodyView {
                body,
                data: &rest[..rest.len() / 8 * 8],
            })
        }
        MessageType::GPADL_CREATED => Message::GpadlCreated(fixed(bytes)?),
        MessageType::GPADL_TEARDOWN => Message::GpadlTeardown(fixed(bytes)?),
        MessageType::GPADL_TORNDOWN => Message::GpadlTorndown(fixed(bytes)?),
        MessageType::RELID_RELEASED => Message::RelidReleased(fixed(bytes)?),
        MessageType::INITIATE_CONTACT => Message::InitiateContact(fixed(bytes)?),
        MessageType::VERSION_RESPONSE => Message::VersionResponse(fixed(bytes)?),
        MessageType::UNLOAD => Message::Unload,
        MessageType::UNLOAD_RESPONSE => Message::UnloadResponse,
        MessageType::TL_CONNECT_REQUEST => Message::TlConnectRequest(fixed(bytes)?),
        MessageType::MODIFYCHANNEL => Message::ModifyChannel(fixed(bytes)?),
        MessageType::TL_CONNECT_RESULT => Message::TlConnectResult(fixed(bytes)?),
        MessageType::MODIFYCHANNEL_RESPONSE => Message::ModifyChannelResponse(fixed(bytes)?),
        _ => return Err(ParseError::UnknownType(t)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::guid::{Guid, HEARTBEAT};
    use super::super::message::*;
    use super::*;

    fn roundtrip<M: ChannelMessage + Copy>(m: M, wrap: fn(M) -> Message<'static>) {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let n = encode(&m, &mut buf).expect("fits");
        assert_eq!(n, M::LEN);
        let parsed = parse(&buf[..n]).expect("parses");
        assert_eq!(parsed, wrap(m));
        assert_eq!(parsed.msgtype(), M::TYPE);
        // One byte short is refused with the precise sizes.
        assert_eq!(
            parse(&buf[..n - 1]),
            Err(ParseError::TooShort {
                msgtype: Some(M::TYPE),
                need: n,
                got: n - 1
            })
        );
    }

    #[test]
    fn every_fixed_message_roundtrips() {
        let offer = Offer {
            if_type: HEARTBEAT,
            if_instance: Guid([7; 16]),
            reserved: [0; 16],
            chn_flags: OfferFlags::NAMED_PIPE_MODE,
            mmio_megabytes: 0,
            user_def: [4; MAX_USER_DEFINED_BYTES],
            sub_channel_index: 0,
            reserved3: 0,
        };
        roundtrip(
            OfferChannel {
                offer,
                child_relid: 5,
                monitorid: 3,
                monitor_flags: 1,
                interrupt_flags: 1,
                connection_id: 0x2005,
            },
            Message::OfferChannel,
        );
        roundtrip(
            RescindChannelOffer { child_relid: 5 },
            Message::RescindChannelOffer,
        );
        roundtrip(
            OpenChannel {
                child_relid: 5,
                openid: 5,
                ringbuffer_gpadlhandle: 0xe1e10,
                target_vp: 1,
                downstream_ringbuffer_pageoffset: 4,
                userdata: [9; MAX_USER_DEFINED_BYTES],
            },
            Message::OpenChannel,
        );
        roundtrip(
            OpenResult {
                child_relid: 5,
                openid: 5,
                status: 0,
            },
            Message::OpenResult,
        );
        roundtrip(CloseChannel { child_relid: 5 }, Message::CloseChannel);
        roundtrip(
            GpadlCreated {
                child_relid: 5,
                gpadl: 9,
                creation_status: 0,
            },
            Message::GpadlCreated,
        );
        roundtrip(
            GpadlTeardown {
                child_relid: 5,
                gpadl: 9,
            },
            Message::GpadlTeardown,
        );
        roundtrip(GpadlTorndown { gpadl: 9 }, Message::GpadlTorndown);
        roundtrip(RelidReleased { child_relid: 5 }, Message::RelidReleased);
        roundtrip(
            InitiateContact {
                vmbus_version_requested: 0x60000,
                target_vcpu: 0,
                msg_sint: 2,
                msg_vtl: 0,
                reserved: [0; 2],
                feature_flags: 0,
                monitor_page1: 0x1000,
                monitor_page2: 0x2000,
            },
            Message::InitiateContact,
        );
        roundtrip(
            VersionResponse {
                version_supported: 1,
                connection_state: ConnectionState::SUCCESSFUL,
                padding: 0,
                msg_conn_id: 4,
            },
            Message::VersionResponse,
        );
        roundtrip(
            TlConnectRequest {
                guest_endpoint_id: Guid([1; 16]),
                host_service_id: Guid([2; 16]),
            },
            Message::TlConnectRequest,
        );
        roundtrip(
            TlConnectResult {
                guest_endpoint_id: Guid([1; 16]),
                host_service_id: Guid([2; 16]),
                status: 0xc000_0236,
            },
            Message::TlConnectResult,
        );
        roundtrip(
            ModifyChannel {
                child_relid: 5,
                target_vp: 1,
            },
            Message::ModifyChannel,
        );
        roundtrip(
            ModifyChannelResponse {
                child_relid: 5,
                status: 0,
            },
            Message::ModifyChannelResponse,
        );
    }

    #[test]
    fn header_only_messages() {
        let mut buf = [0u8; 16];
        for (t, m) in [
            (MessageType::REQUESTOFFERS, Message::RequestOffers),
            (
                MessageType::ALLOFFERS_DELIVERED,
                Message::AllOffersDelivered,
            ),
            (MessageType::UNLOAD, Message::Unload),
            (MessageType::UNLOAD_RESPONSE, Message::UnloadResponse),
        ] {
            assert_eq!(encode_empty(t, &mut buf), Ok(8));
            assert_eq!(parse(&buf[..8]), Ok(m));
            assert_eq!(parse(&buf[..16]), Ok(m), "trailing bytes are ignored");
        }
    }

    #[test]
    fn precise_errors() {
        assert_eq!(
            parse(&[]),
            Err(ParseError::TooShort {
                msgtype: None,
                need: 8,
                got: 0
            })
        );
        assert_eq!(
            parse(&[1, 0, 0, 0]),
            Err(ParseError::TooShort {
                msgtype: None,
                need: 8,
                got: 4
            })
        );
        assert_eq!(
            parse(&[0; 8]),
            Err(ParseError::UnknownType(MessageType::INVALID))
        );
        assert_eq!(
            parse(&[19, 0, 0, 0, 0, 0, 0, 0]),
            Err(ParseError::UnknownType(MessageType(19)))
        );
        assert_eq!(
            parse(&[25, 0, 0, 0, 0, 0, 0, 0]),
            Err(ParseError::UnknownType(MessageType(25)))
        );
        assert_eq!(parse(&[0u8; 241]), Err(ParseError::TooLong { got: 241 }));
        let mut buf = [0u8; 40];
        buf[0] = 1;
        assert_eq!(
            parse(&buf),
            Err(ParseError::TooShort {
                msgtype: Some(MessageType::OFFERCHANNEL),
                need: 196,
                got: 40
            })
        );
        assert!(ParseError::UnknownType(MessageType(30))
            .to_string()
            .contains("30"));
    }

    #[test]
    fn gpadl_header_checks_counts() {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let h = GpadlHeader {
            child_relid: 1,
            gpadl: 2,
            range_buflen: 16,
            rangecount: 0,
        };
        let n = encode_with_tail(&h, &[0; 16], &mut buf).expect("fits");
        assert_eq!(
            parse(&buf[..n]),
            Err(ParseError::BadGpadlRangeCount { rangecount: 0 })
        );
        let h = GpadlHeader { rangecount: 3, ..h };
        let n = encode_with_tail(&h, &[0; 16], &mut buf).expect("fits");
        assert_eq!(
            parse(&buf[..n]),
            Err(ParseError::BadGpadlRangeBuflen {
                range_buflen: 16,
                rangecount: 3
            })
        );
        let h = GpadlHeader {
            range_buflen: 17,
            rangecount: 1,
            ..h
        };
        let n = encode_with_tail(&h, &[0; 16], &mut buf).expect("fits");
        assert_eq!(
            parse(&buf[..n]),
            Err(ParseError::BadGpadlRangeBuflen {
                range_buflen: 17,
                rangecount: 1
            })
        );
        // Data beyond range_buflen and partial words are not range data.
        let h = GpadlHeader {
            range_buflen: 16,
            rangecount: 1,
            ..h
        };
        let n = encode_with_tail(&h, &[1; 30], &mut buf).expect("fits");
        let Ok(Message::GpadlHeader(v)) = parse(&buf[..n]) else {
            panic!("not a header")
        };
        assert_eq!(v.data.len(), 16);
        assert_eq!(v.words().count(), 2);
        let n = encode_with_tail(&h, &[1; 13], &mut buf).expect("fits");
        let Ok(Message::GpadlHeader(v)) = parse(&buf[..n]) else {
            panic!("not a header")
        };
        assert_eq!(v.data.len(), 8);
        assert_eq!(
            v.first_range(),
            Some(GpaRange {
                byte_count: 0x0101_0101,
                byte_offset: 0x0101_0101
            })
        );
    }
}
