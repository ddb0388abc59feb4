// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/hv_guest/`: what detection found, one value per file,
//! in the same text as the load-time log. Removed with the module.

use core::fmt::{self, Display, Formatter};

use kernel::{debugfs::Scope, prelude::*};

use crate::hvcall::cpuid::{HvInfo, LimitsLeaf, VendorText};

fn show<T: Display>(value: &T, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", value)
}

fn show_vendor(vendor: &[u8; 12], f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", VendorText(vendor))
}

fn show_hex(value: &u32, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "{:#x}", value)
}

fn show_limits(limits: &LimitsLeaf, f: &mut Formatter<'_>) -> fmt::Result {
    writeln!(f, "max_vps {}", limits.max_vps)?;
    writeln!(f, "max_lps {}", limits.max_lps)?;
    writeln!(f, "max_int_vectors {}", limits.max_int_vectors)
}

/// Creates the directory; it lives as long as the returned scope.
pub(crate) fn create(info: HvInfo) -> impl PinInit<Scope<HvInfo>> {
    Scope::dir(info, c"hv_guest", |info, dir| {
        dir.read_callback_file(c"vendor", &info.vendor, &show_vendor);
        dir.read_callback_file(c"max_leaf", &info.max_leaf, &show_hex);
        dir.read_callback_file(c"version", &info.version, &show);
        dir.read_callback_file(c"privileges", &info.privileges, &show);
        dir.read_callback_file(c"features", &info.features, &show);
        dir.read_callback_file(c"recommendations", &info.recommendations, &show);
        dir.read_callback_file(c"spin_retries", &info.spin_retries, &show_hex);
        dir.read_callback_file(c"limits", &info.limits, &show_limits);
    })
}
