# _hvhost_msr_guest: not a scenario of its own; the L2 side of
# hvhost_msr_contract: the rig kernel (HYPERV=n, so it leaves the synthetic
# MSRs alone) runs hv_msr_contract through /dev/cpu/N/msr.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_msr_contract $TESTS/hv_msr_contract
}
