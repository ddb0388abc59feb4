# guest_contract_qemu: hv_guest's contract tests against QEMU+KVM's Hyper-V
# and QEMU's hyperv-testdev with 2 vCPUs: guest OS ID, hypercall page,
# typed hypercalls and their error statuses, a message echo and an event on
# every CPU with the module's own vectors, queued messages in order after
# EOM, and a clean unload.
# timeout: 400
L2_CPU=qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time
L2_SMP=2
L2_DEVICES="-device hyperv-testdev"
guest() {
	echo "# rig: nproc=$(nproc)"
	# QEMU answers a few error cases differently from the TLFS, and its test
	# device drops a message staged behind a busy slot: "run qemu" accepts
	# exactly those (see rust/selftest/contract.rs).
	run_test hv_guest_contract env HV_GUEST_CONTRACT="run qemu" $TESTS/hv_guest_contract
}
