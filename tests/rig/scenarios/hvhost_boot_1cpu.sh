# hvhost_boot_1cpu: hvhost boots the rig kernel with 1 vCPU to /init and powers off
# skip: needs hvhost booting Linux (issue 3)
