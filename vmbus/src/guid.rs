// SPDX-License-Identifier: GPL-2.0

//! The 16-byte GUIDs that name VMBus device classes and instances, in the
//! byte order they travel in (`guid_t` in Linux: the first three fields
//! little-endian, the last eight bytes as they are), and the well-known class
//! GUIDs of the integration services (`include/linux/hyperv.h`).

use core::ffi::CStr;

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A GUID as it lies in a channel message: 16 bytes, no alignment.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct Guid(pub [u8; 16]);

const _: () = assert!(core::mem::size_of::<Guid>() == 16);

impl Guid {
    /// The all-zero GUID.
    pub const ZERO: Self = Self([0; 16]);

    /// Builds a GUID from the fields of its text form
    /// `{d1-d2-d3-d4[0..2]-d4[2..8]}`, as Linux's `GUID_INIT` does.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Self([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// The first field (32 bits) of the text form.
    pub const fn data1(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    /// The second field (16 bits) of the text form.
    pub const fn data2(&self) -> u16 {
        u16::from_le_bytes([self.0[4], self.0[5]])
    }

    /// The third field (16 bits) of the text form.
    pub const fn data3(&self) -> u16 {
        u16::from_le_bytes([self.0[6], self.0[7]])
    }

    /// The last eight bytes, in text order.
    pub const fn data4(&self) -> [u8; 8] {
        let b = &self.0;
        [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]
    }

    /// The class if this is one of [`KNOWN_CLASSES`].
    pub fn class(&self) -> Option<&'static Class> {
        KNOWN_CLASSES.iter().find(|c| c.guid == *self)
    }

    /// The name of the class if this is one of [`KNOWN_CLASSES`].
    pub fn class_name(&self) -> Option<&'static str> {
        self.class().map(Class::name_str)
    }
}

/// A device class this crate knows: its GUID and its one name, used for
/// logs, debugfs and the guest's device names (`hv_guest.<name>.<relid>`,
/// which its drivers' ID tables match), so a class is named in one place.
#[derive(Debug)]
pub struct Class {
    /// The class GUID the host offers.
    pub guid: Guid,
    /// The name: ASCII lower case and `_`, no dots (a device name part).
    pub name: &'static CStr,
}

impl Class {
    /// The name as text.
    pub fn name_str(&self) -> &'static str {
        // Every name below is ASCII (checked by a test); never the default.
        self.name.to_str().unwrap_or("?")
    }
}

impl core::fmt::Display for Guid {
    /// The usual lower-case text form, `57164f39-9115-4e78-ab55-382f3bd5422d`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let d4 = self.data4();
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            self.data1(),
            self.data2(),
            self.data3(),
            d4[0],
            d4[1]
        )?;
        for b in &d4[2..] {
            write!(f, "{:02x}", b)?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for Guid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{{{}}}", self)
    }
}

/// Heartbeat integration service (`HV_HEART_BEAT_GUID`).
pub const HEARTBEAT: Guid = Guid::from_fields(
    0x57164f39,
    0x9115,
    0x4e78,
    [0xab, 0x55, 0x38, 0x2f, 0x3b, 0xd5, 0x42, 0x2d],
);
/// Shutdown integration service (`HV_SHUTDOWN_GUID`).
pub const SHUTDOWN: Guid = Guid::from_fields(
    0x0e0b6031,
    0x5213,
    0x4934,
    [0x81, 0x8b, 0x38, 0xd9, 0x0c, 0xed, 0x39, 0xdb],
);
/// Time synchronisation integration service (`HV_TS_GUID`).
pub const TIMESYNC: Guid = Guid::from_fields(
    0x9527e630,
    0xd0ae,
    0x497b,
    [0xad, 0xce, 0xe8, 0x0a, 0xb0, 0x17, 0x5c, 0xaf],
);
/// Key-value pair exchange integration service (`HV_KVP_GUID`).
pub const KVP: Guid = Guid::from_fields(
    0xa9a0f4e7,
    0x5a45,
    0x4d96,
    [0xb8, 0x27, 0x8a, 0x84, 0x1e, 0x8c, 0x03, 0xe6],
);
/// Volume shadow copy (backup) integration service (`HV_VSS_GUID`).
pub const VSS: Guid = Guid::from_fields(
    0x35fa2e29,
    0xea23,
    0x4236,
    [0x96, 0xae, 0x3a, 0x6e, 0xba, 0xcb, 0xa4, 0x40],
);

/// SCSI controller (`HV_SCSI_GUID`): the storage protocol of
/// [`super::vstor`].
pub const SCSI: Guid = Guid::from_fields(
    0xba6163d9,
    0x04a1,
    0x4d29,
    [0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc, 0x7f],
);

/// hvhost's packet sink for benchmarks (`hvhost --vmbus-perf`), a class of
/// this project's own, not Hyper-V's: `8f3f6b2e-0457-449d-95ee-b14c60dc90c7`
/// (a random version-4 GUID made once for it). The guest streams in-band
/// packets that the host counts and drops; a packet that asks for a
/// completion gets one carrying the host's counters ([`PerfCounters`]).
///
/// [`PerfCounters`]: super::perf::PerfCounters
pub const HVHOST_PERF: Guid = Guid::from_fields(
    0x8f3f6b2e,
    0x0457,
    0x449d,
    [0x95, 0xee, 0xb1, 0x4c, 0x60, 0xdc, 0x90, 0xc7],
);

/// The heartbeat class and its name.
pub const HEARTBEAT_CLASS: Class = Class {
    guid: HEARTBEAT,
    name: c"heartbeat",
};
/// The shutdown class and its name.
pub const SHUTDOWN_CLASS: Class = Class {
    guid: SHUTDOWN,
    name: c"shutdown",
};
/// The time synchronisation class and its name.
pub const TIMESYNC_CLASS: Class = Class {
    guid: TIMESYNC,
    name: c"timesync",
};
/// The key-value pair class and its name.
pub const KVP_CLASS: Class = Class {
    guid: KVP,
    name: c"kvp",
};
/// The backup class and its name.
pub const VSS_CLASS: Class = Class {
    guid: VSS,
    name: c"vss",
};
/// The SCSI controller class and its name.
pub const SCSI_CLASS: Class = Class {
    guid: SCSI,
    name: c"scsi",
};
/// hvhost's benchmark sink and its name.
pub const HVHOST_PERF_CLASS: Class = Class {
    guid: HVHOST_PERF,
    name: c"hvhost_perf",
};

/// The classes this crate names.
pub const KNOWN_CLASSES: &[Class] = &[
    HEARTBEAT_CLASS,
    SHUTDOWN_CLASS,
    TIMESYNC_CLASS,
    KVP_CLASS,
    VSS_CLASS,
    SCSI_CLASS,
    HVHOST_PERF_CLASS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_matches_hyperv_h_comments() {
        assert_eq!(
            HEARTBEAT.to_string(),
            "57164f39-9115-4e78-ab55-382f3bd5422d"
        );
        assert_eq!(SHUTDOWN.to_string(), "0e0b6031-5213-4934-818b-38d90ced39db");
        assert_eq!(TIMESYNC.to_string(), "9527e630-d0ae-497b-adce-e80ab0175caf");
        assert_eq!(KVP.to_string(), "a9a0f4e7-5a45-4d96-b827-8a841e8c03e6");
        assert_eq!(VSS.to_string(), "35fa2e29-ea23-4236-96ae-3a6ebacba440");
        assert_eq!(
            HVHOST_PERF.to_string(),
            "8f3f6b2e-0457-449d-95ee-b14c60dc90c7"
        );
        assert_eq!(
            format!("{:?}", Guid::ZERO),
            "{00000000-0000-0000-0000-000000000000}"
        );
    }

    #[test]
    fn wire_order_is_mixed_endian() {
        // GUID_INIT stores d1..d3 little-endian, d4 as written.
        assert_eq!(&HEARTBEAT.0[..4], &[0x39, 0x4f, 0x16, 0x57]);
        assert_eq!(&HEARTBEAT.0[4..8], &[0x15, 0x91, 0x78, 0x4e]);
        assert_eq!(
            &HEARTBEAT.0[8..],
            &[0xab, 0x55, 0x38, 0x2f, 0x3b, 0xd5, 0x42, 0x2d]
        );
        assert_eq!(KVP.class_name(), Some("kvp"));
        assert_eq!(Guid::ZERO.class_name(), None);
    }

    #[test]
    fn class_names_are_device_name_parts_and_unique() {
        for (i, c) in KNOWN_CLASSES.iter().enumerate() {
            let name = c.name.to_str().expect("ASCII");
            assert!(!name.is_empty());
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert_eq!(c.name_str(), name);
            assert_eq!(c.guid.class().map(|k| k.name), Some(c.name));
            for other in &KNOWN_CLASSES[i + 1..] {
                assert_ne!(other.guid, c.guid);
                assert_ne!(other.name, c.name);
            }
        }
    }
}
