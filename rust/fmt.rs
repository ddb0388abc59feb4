// SPDX-License-Identifier: GPL-2.0

//! The kernel's `pr_*!` macros format through `kernel::fmt::Display`, not
//! `core::fmt::Display`. The shared contract types implement the latter (the
//! host uses them too); this forwards the one to the other for each type the
//! module prints.

#[cfg(hv_guest_selftest)]
/// A byte buffer `write!` can append to (the selftest build's reports).
pub(crate) struct Out<'a>(pub(crate) &'a mut kernel::alloc::KVec<u8>);

#[cfg(hv_guest_selftest)]
impl core::fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), kernel::alloc::flags::GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

macro_rules! forward_display {
    ($($ty:ty),* $(,)?) => {$(
        impl kernel::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Display::fmt(self, f)
            }
        }
    )*};
}

use crate::hvcall::cpuid::{
    DetectError, Features, Privileges, Recommendations, VendorText, VersionLeaf,
};

use crate::vmbus::{
    gpadl::GpadlError,
    guid::Guid,
    ic::{IcError, IcVersion},
    message::MessageType,
    parse::ParseError,
    ring::RingError,
    version::Version,
};

forward_display!(
    GpadlError,
    Guid,
    IcError,
    IcVersion,
    MessageType,
    ParseError,
    RingError,
    Version,
    DetectError,
    Features,
    Privileges,
    Recommendations,
    VersionLeaf,
    VendorText<'_>,
    crate::hypercall::HvError,
);
