# _hvhost_guest: not a scenario of its own; the guest side of the hvhost
# scenarios. Reports its CPU count, then checks that hv_guest.ko detects
# hvhost's Hyper-V interface (hvhost advertises it since issue 4).
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_detect env HV_GUEST_EXPECT=hyperv $TESTS/hv_guest_detect
}
