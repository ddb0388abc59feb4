# _hvhost_msr_guest: not a scenario of its own; the L2 side of
# hvhost_msr_contract: the rig kernel (HYPERV=n, so it leaves the synthetic
# MSRs alone) runs hv_msr_contract through /dev/cpu/N/msr; then hv_guest's
# hypercall-status tests (kernel mode is needed to call the page), which
# also load and unload the module (it rewrites GUEST_OS_ID and HYPERCALL,
# so they run after the MSR checks).
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_msr_contract $TESTS/hv_msr_contract
	run_test hypercall_statuses env HV_GUEST_CONTRACT=statuses $TESTS/hv_guest_contract
}
