# detect_none_l1: in L1 itself (QEMU TCG, no Hyper-V leaves), insmod of
# hv_guest.ko fails with ENODEV and the log says why.
# timeout: 180
guest() {
	run_test hv_guest_detect env HV_GUEST_EXPECT=none $TESTS/hv_guest_detect
}
