# hvhost_boot_smp: in L1, hvhost boots the rig kernel with --cpus 2, 4 and
# 8: the guest brings up every AP (nproc equals the count), runs its
# tests, powers off, and hvhost exits 0 with one exit summary per vCPU.
# Under TCG this needs the rig's L0 (tests/rig/l0-qemu/) and L1's shadow
# paging, as every scenario does: README, "What the rig can and cannot run".
# timeout: 420
guest() {
	run_test boot_2cpus rig_hvhost_boot 2
	run_test boot_4cpus rig_hvhost_boot 4
	run_test boot_8cpus rig_hvhost_boot 8
}
