# guest_load_unload_stress: 100 load/unload cycles of hv_guest under QEMU+KVM
# Hyper-V with the test device and 2 vCPUs, each cycle sending a message
# echo and an event on every CPU; afterwards no irq, /proc/interrupts line,
# debugfs entry or memory (within a bound) is left, and dmesg is clean.
# timeout: 600
L2_CPU=qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time
L2_SMP=1
L2_DEVICES="-device hyperv-testdev"
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_load_unload_traffic env HV_GUEST_EXPECT=hyperv HV_GUEST_CYCLES=100 \
		HV_GUEST_TRAFFIC=1 $TESTS/hv_guest_load_unload
}
