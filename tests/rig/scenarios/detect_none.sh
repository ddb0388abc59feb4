# detect_none: under a hypervisor that is not Hyper-V (L2 under QEMU+KVM
# with plain qemu64: KVM's own leaves, max leaf 0x40000001), insmod of
# hv_guest.ko fails with ENODEV, the log says why, nothing is left behind.
# The KUnit tests of the shared contract run here too: they need no Hyper-V.
# timeout: 300
L2_CPU=qemu64
guest() {
	run_test hv_guest_detect env HV_GUEST_EXPECT=none $TESTS/hv_guest_detect
	run_test hv_guest_kunit $TESTS/hv_guest_kunit.sh
}
