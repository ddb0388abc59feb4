# load_unload_loop: 50 load/unload cycles of hv_guest.ko under QEMU's
# Hyper-V leave nothing behind (module refcount, /sys/module, debugfs) and
# no warning or oops in the kernel log.
# timeout: 400
L2_CPU=qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time
L2_SMP=1
guest() {
	run_test hv_guest_load_unload env HV_GUEST_EXPECT=hyperv HV_GUEST_CYCLES=50 $TESTS/hv_guest_load_unload
}
