// SPDX-License-Identifier: GPL-2.0

//! VMBus protocol versions (`include/linux/hyperv.h`): major in the high 16
//! bits, minor in the low 16, and what each version changes in the protocol
//! (`drivers/hv/connection.c`, `channel.c`). Both sides decide every
//! version-dependent step through the predicates here, so that guest and
//! host cannot disagree on where a behaviour starts.

use super::message::{MESSAGE_CONNECTION_ID, MESSAGE_CONNECTION_ID_4};

/// A VMBus protocol version as it travels in INITIATE_CONTACT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32);

impl Version {
    /// Windows 10 (4.0).
    pub const WIN10: Self = Self(0x0004_0000);
    /// 4.1.
    pub const V4_1: Self = Self(0x0004_0001);
    /// 5.0: INITIATE_CONTACT moves to message connection 4.
    pub const V5_0: Self = Self(0x0005_0000);
    /// 5.1.
    pub const V5_1: Self = Self(0x0005_0001);
    /// 5.2.
    pub const V5_2: Self = Self(0x0005_0002);
    /// 5.3.
    pub const V5_3: Self = Self(0x0005_0003);
    /// 6.0.
    pub const V6_0: Self = Self(0x0006_0000);

    /// What a 7.3 Linux guest proposes, in its order.
    pub const GUEST_PROPOSALS: [Self; 7] = [
        Self::V6_0,
        Self::V5_3,
        Self::V5_2,
        Self::V5_1,
        Self::V5_0,
        Self::V4_1,
        Self::WIN10,
    ];

    /// Every version from 4.0 to 6.0, oldest first: what hvhost serves by
    /// default.
    pub const SERVED: [Self; 7] = [
        Self::WIN10,
        Self::V4_1,
        Self::V5_0,
        Self::V5_1,
        Self::V5_2,
        Self::V5_3,
        Self::V6_0,
    ];

    /// The message connection INITIATE_CONTACT travels on: 4 from 5.0, 1
    /// before.
    pub const fn contact_connection(self) -> u32 {
        if self.0 >= Self::V5_0.0 {
            MESSAGE_CONNECTION_ID_4
        } else {
            MESSAGE_CONNECTION_ID
        }
    }

    /// Whether INITIATE_CONTACT's union names the message SINT and VTL (and
    /// from 6.0 the feature flags): from 5.0. Before, it holds the guest
    /// physical address of the guest's interrupt page.
    pub const fn contact_names_sint(self) -> bool {
        self.0 >= Self::V5_0.0
    }

    /// Whether VERSION_RESPONSE names the connection for every later
    /// message (`msg_conn_id`): from 5.0. Before, that is connection 1.
    pub const fn response_names_connection(self) -> bool {
        self.0 >= Self::V5_0.0
    }

    /// The message connection of everything after the version response,
    /// given the response's `msg_conn_id`.
    pub const fn message_connection(self, msg_conn_id: u32) -> u32 {
        if self.response_names_connection() {
            msg_conn_id
        } else {
            MESSAGE_CONNECTION_ID
        }
    }

    /// Whether INITIATE_CONTACT carries feature flags: from 6.0.
    pub const fn has_feature_flags(self) -> bool {
        self.0 >= Self::V6_0.0
    }

    /// Whether the guest may move a channel's interrupts to another VP
    /// (MODIFYCHANNEL): from 4.1.
    pub const fn has_modify_channel(self) -> bool {
        self.0 >= Self::V4_1.0
    }

    /// Whether the guest may ask for Hyper-V socket connections
    /// (TL_CONNECT_REQUEST): from 4.0 (Linux's `hv_sock` needs it).
    pub const fn has_sockets(self) -> bool {
        self.0 >= Self::WIN10.0
    }

    /// Whether the host tells the guest that a socket connection it asked
    /// for was refused (TL_CONNECT_RESULT, as Hyper-V does from Windows 10
    /// RS3): from 4.1. Linux's `hv_sock` ignores it and times out instead.
    pub const fn has_tl_connect_result(self) -> bool {
        self.0 >= Self::V4_1.0
    }

    /// Whether the host answers MODIFYCHANNEL with MODIFYCHANNEL_RESPONSE:
    /// from 5.3.
    pub const fn modify_channel_answered(self) -> bool {
        self.0 >= Self::V5_3.0
    }

    /// Parses `MAJOR.MINOR` in decimal (`4.0`, `5.3`) or the wire value in
    /// hex (`0x50003`, as Linux's `hv_vmbus.max_version` takes it).
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            return u32::from_str_radix(hex, 16).ok().map(Self);
        }
        let (major, minor) = s.split_once('.')?;
        let major: u16 = major.parse().ok()?;
        let minor: u16 = minor.parse().ok()?;
        Some(Self((u32::from(major) << 16) | u32::from(minor)))
    }

    /// Major number.
    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// Minor number.
    pub const fn minor(self) -> u16 {
        self.0 as u16
    }
}

impl core::fmt::Display for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_hyperv_h() {
        assert_eq!(Version::WIN10.0, 0x40000);
        assert_eq!(Version::V5_3.0, 0x50003);
        assert_eq!(Version::V6_0.to_string(), "6.0");
        assert!(Version::GUEST_PROPOSALS.windows(2).all(|w| w[0] > w[1]));
        assert!(Version::SERVED.windows(2).all(|w| w[0] < w[1]));
        assert!(Version::GUEST_PROPOSALS
            .iter()
            .all(|v| Version::SERVED.contains(v)));
    }

    #[test]
    fn where_behaviour_changes() {
        // connection.c: INITIATE_CONTACT on connection 4 and the SINT in the
        // union from 5.0; channel.c: MODIFYCHANNEL from 4.1, answered from 5.3.
        assert_eq!(Version::WIN10.contact_connection(), MESSAGE_CONNECTION_ID);
        assert_eq!(Version::V4_1.contact_connection(), MESSAGE_CONNECTION_ID);
        assert_eq!(Version::V5_0.contact_connection(), MESSAGE_CONNECTION_ID_4);
        assert!(!Version::V4_1.contact_names_sint() && Version::V5_0.contact_names_sint());
        assert_eq!(Version::V4_1.message_connection(7), MESSAGE_CONNECTION_ID);
        assert_eq!(Version::V5_0.message_connection(7), 7);
        assert!(!Version::WIN10.has_modify_channel() && Version::V4_1.has_modify_channel());
        assert!(
            !Version::V5_2.modify_channel_answered() && Version::V5_3.modify_channel_answered()
        );
        assert!(!Version::V5_3.has_feature_flags() && Version::V6_0.has_feature_flags());
        assert!(!Version::WIN10.has_tl_connect_result() && Version::V4_1.has_tl_connect_result());
        assert!(!Version(0x0003_0000).has_sockets() && Version::WIN10.has_sockets());
    }

    #[test]
    fn parse_both_spellings() {
        assert_eq!(Version::parse("4.0"), Some(Version::WIN10));
        assert_eq!(Version::parse("5.3"), Some(Version::V5_3));
        assert_eq!(Version::parse("0x60000"), Some(Version::V6_0));
        assert_eq!(Version::parse("0x40001"), Some(Version::V4_1));
        for bad in [
            "", "4", "4.", ".1", "x.0", "4.0.1", "0x", "0xg", "65536.0", "-1.0",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_round_trips(major in 0u16.., minor in 0u16..) {
            let v = Version((u32::from(major) << 16) | u32::from(minor));
            proptest::prop_assert_eq!(Version::parse(&v.to_string()), Some(v));
            proptest::prop_assert_eq!(Version::parse(&format!("{:#x}", v.0)), Some(v));
        }
    }
}
