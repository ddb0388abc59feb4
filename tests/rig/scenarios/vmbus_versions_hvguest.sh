# vmbus_versions_hvguest: hv_guest's VMBus client under hvhost restricted by
# --vmbus-versions to one version, 5.3 and then 4.0 (one boot each, 2
# vCPUs): hv_guest proposes 6.0 downwards and settles on that version, its
# heartbeat, shutdown and timesync drivers bind with IC traffic flowing,
# two unload/reload cycles complete UNLOAD cleanly; hvhost's `hvctl stats`
# names the version and, at 4.0 only, the interrupt page that hv_guest
# allocated and named in INITIATE_CONTACT (the guest's debugfs says which);
# `hvctl shutdown` powers the guest off through hv_guest's shutdown driver;
# hvhost exits 0 with no VMBus message dropped. A third boot at 4.0 with
# --vmbus-shared-interrupts: every channel comes without a dedicated
# interrupt, hv_guest signals them by setting the channel's bit in its
# interrupt page, and all of the above still works through it.
# timeout: 600

# rig_hvguest_version VERSION [shared]: one boot; "shared" adds
# --vmbus-shared-interrupts (every channel without a dedicated interrupt).
rig_hvguest_version() {
	local v=$1 shared=${2:+1} guest_page host_page
	HVHOST_EXTRA_CMDLINE="rig.opt.vmbus_version=$v rig.opt.shared=${shared:-0}" \
		hvhost_start 300 _vmbus_versions_hvguest_guest --cpus 2 --vmbus-versions "$v" --api-socket $HVHOST_API \
		${shared:+--vmbus-shared-interrupts}
	hvhost_stats_then_shutdown '# rig: vmbus ready' 260
	hvhost_wait
	hvhost_verdict_or_bail "hv_guest at VMBus $v"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	echo "# hvctl stats: $HVCTL_STATS"
	rig_check hvhost_stats_version [ "$(kv /tmp/hvctl.stats vmbus version)" = "$v" ]
	guest_page=$(sed -n 's/^# rig: interrupt_page //p' /tmp/hvhost.ktap)
	host_page=$(kv /tmp/hvctl.stats vmbus interrupt_page)
	echo "# interrupt page: guest says ${guest_page:-nothing}, hvhost ${host_page:-nothing}"
	case $v in
	4.*) rig_check interrupt_page_named_and_recorded \
		sh -c "[ -n '$guest_page' ] && [ '$guest_page' != none ] && [ '$guest_page' = '$host_page' ]" ;;
	*) rig_check no_interrupt_page_from_5_0 sh -c "[ '$guest_page' = none ] && [ '$host_page' = none ]" ;;
	esac
	echo "# hvctl shutdown: $HVCTL_SHUTDOWN"
	shutdown_by_hvctl() { echo "$HVCTL_SHUTDOWN" | grep -q '^ok delivered' && hvhost_shutdown_accepted; }
	rig_check shutdown_by_hvctl_accepted shutdown_by_hvctl
	rig_check no_warnings_no_vmbus_errors hvhost_guest_clean 'vmbus: rejected'
	# The guest's heartbeat answers reach hvhost (through the interrupt
	# page when the channels share connection 2).
	rig_check heartbeats_advance hvhost_heartbeats_advance 1
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test vmbus_5.3 rig_hvguest_version 5.3
	run_test vmbus_4.0 rig_hvguest_version 4.0
	run_test vmbus_4.0_shared_interrupts rig_hvguest_version 4.0 shared
}
