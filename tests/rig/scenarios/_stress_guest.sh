# _stress_guest: not a scenario of its own; the guest side of
# guest_load_unload_stress_hvhost.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_load_unload_traffic env HV_GUEST_EXPECT=hyperv HV_GUEST_CYCLES=100 \
		HV_GUEST_TRAFFIC=1 $TESTS/hv_guest_load_unload
}
