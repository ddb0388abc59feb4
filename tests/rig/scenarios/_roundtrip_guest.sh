# _roundtrip_guest: not a scenario of its own; the guest side of
# hvhost_testdev_roundtrip.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_roundtrip env HV_GUEST_CONTRACT=roundtrip $TESTS/hv_guest_contract
}
