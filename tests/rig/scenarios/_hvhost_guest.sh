# _hvhost_guest: not a scenario of its own; the guest side of the hvhost
# boot scenarios. Reports its CPU count, then checks that hv_guest.ko finds
# hvhost's Hyper-V interface, loads, shows it in debugfs exactly as CPUID
# says, and unloads.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_detect env HV_GUEST_EXPECT=hyperv $TESTS/hv_guest_detect
}
