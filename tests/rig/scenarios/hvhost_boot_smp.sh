# hvhost_boot_smp: in L1, hvhost boots the rig kernel with --cpus 2, 4 and
# 8: the guest brings up every AP (nproc equals the count), runs its
# tests, powers off, and hvhost exits 0 with one exit summary per vCPU.
# L1's KVM uses shadow paging for this one (kvm_amd.npt=0): under L0's TCG,
# nested paging lost the 8-vCPU guest (triple faults early in its boot) in
# 9 of 29 boots, shadow paging in none of 17; but shadow paging makes the
# IPI-heavy 2-vCPU scenarios worse (an MMIO "during event delivery" that
# L1's KVM refuses), so it is not the rig's default. README: "What the rig
# can and cannot run".
# l1: kvm_amd.npt=0
# timeout: 420
guest() {
	run_test boot_2cpus rig_hvhost_boot 2
	run_test boot_4cpus rig_hvhost_boot 4
	run_test boot_8cpus rig_hvhost_boot 8
}
