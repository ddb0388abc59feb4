// SPDX-License-Identifier: GPL-2.0

//! VMBus protocol versions (`include/linux/hyperv.h`): major in the high 16
//! bits, minor in the low 16.

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
    }
}
