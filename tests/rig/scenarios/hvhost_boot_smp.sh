# hvhost_boot_smp: hvhost boots the rig kernel with --cpus 2 and 4; the guest sees that many CPUs
# skip: needs hvhost booting Linux (issue 3)
