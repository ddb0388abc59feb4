# hvhost_exit_status: hvhost's exit status says how the guest ended, so that
# a caller (this rig among them) never takes a reset for a clean end: 0 when
# the guest powered off, 2 when it rebooted (`reboot -f`, the restart that a
# panic with panic=-1 takes too).
# A triple fault or KVM error is 1 (vmm/src/control.rs, unit-tested there).
# timeout: 240
guest() {
	run_test exit_status rig_exit_status
}

rig_exit_status() {
	HVHOST_EXTRA_CMDLINE=rig.opt.end=poweroff
	hvhost_run _exit_guest --cpus 1 --no-vmbus
	rig_check poweroff_exits_0 [ "$HVHOST_STATUS" = 0 ]
	rig_check poweroff_reached_the_guest grep -q '^# rig: ending with poweroff' /tmp/hvhost.ktap
	HVHOST_EXTRA_CMDLINE=rig.opt.end=reboot
	hvhost_run _exit_guest --cpus 1 --no-vmbus
	HVHOST_EXTRA_CMDLINE=
	echo "# reboot: status $HVHOST_STATUS ($(hvhost_status_text $HVHOST_STATUS))"
	rig_check reboot_exits_2 [ "$HVHOST_STATUS" = 2 ]
	rig_check reboot_reached_the_guest grep -q '^# rig: ending with reboot' /tmp/hvhost.ktap
	[ "$KTAP_CNT_FAIL" = 0 ]
}
