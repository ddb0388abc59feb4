# _contract_guest: not a scenario of its own; the guest side of
# guest_contract_hvhost: hv_guest's contract tests, expecting the TLFS's
# answers from the host.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_contract $TESTS/hv_guest_contract
}
