# vmbus_versions_stock_guest: the reference kernel (Linux's own hv_vmbus and
# hv_utils) under hvhost, once per VMBus version from 4.0 to 6.0, one boot
# after another in this L1. Linux proposes 6.0 down to 4.0 and takes the
# first one accepted; hv_vmbus.max_version caps that, so each boot settles
# on one version, and hvhost serves it with that version's rules (contact
# on connection 4 from 5.0 and on 1 before, the interrupt page below 5.0,
# MODIFYCHANNEL from 4.1, answered from 5.3). In each boot: the guest
# reports the version it was capped at, the heartbeat, shutdown and
# time-sync services negotiate and bind to hv_utils, MODIFYCHANNEL moves
# a channel's interrupts (from 4.1); hvhost's `hvctl stats` names the same
# version; the guest's heartbeat reaches hvhost; `hvctl shutdown` powers
# the guest off cleanly and hvhost exits 0 with no VMBus message dropped.
# timeout: 900
VERSIONS="0x40000:4.0 0x40001:4.1 0x50000:5.0 0x50001:5.1 0x50002:5.2 0x50003:5.3 0x60000:6.0"

rig_vmbus_version() {
	local wire=$1 v=$2
	HVHOST_KERNEL=/boot/ref-bzImage \
		HVHOST_EXTRA_CMDLINE="hv_vmbus.max_version=$wire rig.opt.vmbus_version=$v" \
		hvhost_start 240 _vmbus_versions_guest --cpus 2 --api-socket $HVHOST_API
	hvhost_stats_then_shutdown '# rig: vmbus ready' 200
	hvhost_wait
	hvhost_verdict_or_bail "the reference guest at VMBus $v"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	echo "# hvctl stats: $HVCTL_STATS"
	rig_check hvhost_stats_version [ "$(kv /tmp/hvctl.stats vmbus version)" = "$v" ]
	rig_check heartbeats_advance hvhost_heartbeats_advance 2
	echo "# hvctl shutdown: $HVCTL_SHUTDOWN"
	rig_check shutdown_requested_by_hvctl sh -c "echo '$HVCTL_SHUTDOWN' | grep -q '^ok delivered'"
	rig_check guest_powered_off grep -q 'reboot: Power down' /tmp/hvhost.console
	rig_check no_warnings_no_vmbus_errors hvhost_guest_clean
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	local p
	for p in $VERSIONS; do
		run_test "vmbus_${p#*:}" rig_vmbus_version "${p%%:*}" "${p#*:}"
	done
}
