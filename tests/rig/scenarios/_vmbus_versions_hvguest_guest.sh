# _vmbus_versions_hvguest_guest: not a scenario of its own; the L2 side of
# vmbus_versions_hvguest: hv_guest under hvhost restricted to the version in
# rig.opt.vmbus_version. The hv_guest_vmbus selftest at that version (two
# load/unload cycles, the three IC drivers bound, IC traffic), then the
# module loaded again reports its interrupt page to L1 and waits for
# hvhost's shutdown request.
# helper

interrupt_page() {
	local S=/sys/kernel/debug/hv_guest/vmbus/state page
	[ -d /sys/module/hv_guest ] || insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 30 grep -q '^phase=Connected ' $S
	sed 's/^/# /' $S
	page=$(kv $S - interrupt_page)
	[ -n "$page" ] || return 1
	rig_mark "interrupt_page $page"
}

# Every channel's dedicated_interrupt flag (debugfs channels) is what
# hvhost was asked to offer: 0 with rig.opt.shared=1, else 1.
interrupt_kind() {
	local want=1 flags
	[ "$RIG_OPT_SHARED" = 1 ] && want=0
	flags=$(grep -o ' dedicated_interrupt=[01] ' /sys/kernel/debug/hv_guest/vmbus/channels | tr -dc '01\n')
	echo "# dedicated_interrupt of each channel: $(echo $flags) (want $want)"
	[ -n "$flags" ] && [ -z "$(echo "$flags" | grep -v "^$want\$")" ]
}

host_shutdown_request() {
	if rig_wait_host_shutdown; then
		dmesg | grep 'shutdown:' | sed 's/^/# /'
	else
		echo "# no request in 150 s"
		return 1
	fi
}

guest() {
	rig_poweroff_hook
	run_test hv_guest_vmbus env HV_GUEST_VMBUS_VERSION=$RIG_OPT_VMBUS_VERSION \
		HV_GUEST_VMBUS_DEVICES="heartbeat shutdown timesync" HV_GUEST_VMBUS_WAIT_IC=1 \
		HV_GUEST_VMBUS_CYCLES=2 $TESTS/hv_guest_vmbus
	run_test interrupt_page interrupt_page
	run_test interrupt_kind interrupt_kind
	run_test host_shutdown_request host_shutdown_request
}
