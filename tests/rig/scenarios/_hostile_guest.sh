# _hostile_guest: not a scenario of its own; the guest side of
# guest_hostile_host.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_hostile_host env HV_GUEST_CONTRACT=hostile $TESTS/hv_guest_contract
}
