# hvhost_boot_1cpu: in L1, hvhost boots the rig kernel with 1 vCPU: the
# guest reaches /init, sees 1 CPU, finds hvhost's Hyper-V interface
# (hv_guest.ko loads and shows what CPUID says), powers off, and hvhost
# exits 0 with its per-vCPU exit summary.
# timeout: 300
guest() {
	run_test boot_1cpu rig_hvhost_boot 1
}
