# guest_contract_hvhost: hv_guest's contract tests (as in guest_contract_qemu)
# under hvhost --test-device with 2 vCPUs, expecting the TLFS's answers
# everywhere: hvhost's own Hyper-V contract and test device are the peer.
# timeout: 400
guest() {
	run_test contract_under_hvhost rig_hvhost_guest _contract_guest 2 --test-device
}
