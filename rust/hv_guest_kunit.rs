// SPDX-License-Identifier: GPL-2.0

//! hv_guest_kunit: KUnit tests of the shared contract's pure logic, as
//! compiled by the kernel's toolchain. A separate module from hv_guest, so
//! that it runs on any machine, including those where hv_guest refuses to
//! load. The cases themselves live in `hvcall/src/selftest.rs` and also run
//! as host unit tests.

use kernel::prelude::*;

#[path = "../hvcall/src"]
#[allow(dead_code, unreachable_pub)]
mod hvcall {
    pub(crate) mod bits;
    pub(crate) mod cpuid;
    pub(crate) mod hypercall;
    pub(crate) mod msr;
    pub(crate) mod selftest;
    pub(crate) mod synic;
}

module! {
    type: HvGuestKunit,
    name: "hv_guest_kunit",
    authors: ["hvguest developers"],
    description: "KUnit tests of the hvcall contract",
    license: "GPL",
}

struct HvGuestKunit;

impl kernel::Module for HvGuestKunit {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

#[kunit_tests(hv_guest_hvcall)]
mod tests {
    use super::hvcall::selftest;

    // One KUnit case per selftest case, so that KTAP names each; the list in
    // `selftest::CASES` is checked to match by `all_cases_are_listed`.

    #[test]
    fn constants_match_headers() {
        assert_eq!(selftest::constants_match_headers(), Ok(()));
    }

    #[test]
    fn detects_qemu_hyperv() {
        assert_eq!(selftest::detects_qemu_hyperv(), Ok(()));
    }

    #[test]
    fn refuses_without_hypervisor_bit() {
        assert_eq!(selftest::refuses_without_hypervisor_bit(), Ok(()));
    }

    #[test]
    fn refuses_kvm_signature() {
        assert_eq!(selftest::refuses_kvm_signature(), Ok(()));
    }

    #[test]
    fn refuses_other_interface() {
        assert_eq!(selftest::refuses_other_interface(), Ok(()));
    }

    #[test]
    fn refuses_missing_privileges() {
        assert_eq!(selftest::refuses_missing_privileges(), Ok(()));
    }

    #[test]
    fn decodes_bits_and_version() {
        assert_eq!(selftest::decodes_bits_and_version(), Ok(()));
    }

    #[test]
    fn control_word_round_trip() {
        assert_eq!(selftest::control_word_round_trip(), Ok(()));
    }

    #[test]
    fn result_word_and_fast_input() {
        assert_eq!(selftest::result_word_and_fast_input(), Ok(()));
    }

    #[test]
    fn sint_and_page_geometry() {
        assert_eq!(selftest::sint_and_page_geometry(), Ok(()));
    }

    #[test]
    fn all_cases_are_listed() {
        // Ten cases above; a case added to selftest.rs must be added here.
        assert_eq!(selftest::CASES.len(), 10);
    }
}
