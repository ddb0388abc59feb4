# _hvhost_guest: not a scenario of its own; the guest side of the hvhost
# scenarios. Reports its CPU count, then checks that hv_guest.ko refuses to
# load (hvhost offers no Hyper-V leaves yet: that is the next issue).
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_detect env HV_GUEST_EXPECT=none $TESTS/hv_guest_detect
}
