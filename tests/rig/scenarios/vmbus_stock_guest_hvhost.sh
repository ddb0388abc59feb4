# vmbus_stock_guest_hvhost: Linux's own hv_vmbus and hv_utils (the reference
# kernel) connect to hvhost's VMBus at 6.0 with 2 vCPUs: Linux's log (its
# only account of them) shows the version and the Heartbeat, Shutdown and
# TimeSync IC versions, the three utility devices are on /sys/bus/vmbus with
# hv_utils bound, hvhost's exit report counts the guest's heartbeat
# answers, and SIGTERM to hvhost asks the guest to shut down (VMBus
# shutdown service): the guest accepts, powers off cleanly and hvhost exits
# 0. Writing a channel's sysfs cpu makes Linux send MODIFYCHANNEL: hvhost
# moves the channel's interrupts to VP 1 and the heartbeat's events arrive
# on CPU 1. No WARNING, BUG or Oops in the guest's log; hvhost's report
# counts no VMBus message dropped, no refusal and no channel fault.
# timeout: 400
rig_vmbus_stock() {
	HVHOST_KERNEL=/boot/ref-bzImage hvhost_start 300 _vmbus_stock_guest --cpus 2
	hvhost_term_when '# rig: vmbus ready' 240
	hvhost_wait
	c=/tmp/hvhost.console e=/tmp/hvhost.err
	hvhost_verdict_or_bail "the reference guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	grep -E 'hv_vmbus: Vmbus version|hv_utils: .* IC version' $c | sed 's/^/# /'
	rig_check vmbus_version_6_0 grep -q 'hv_vmbus: Vmbus version:6\.0' $c
	ic_all() {
		grep -q 'hv_utils: Heartbeat IC version' $c && grep -q 'hv_utils: Shutdown IC version' $c &&
			grep -q 'hv_utils: TimeSync IC version' $c
	}
	rig_check ic_versions_logged ic_all
	hvhost_guest_ktap guest_tests
	rig_check heartbeats_advance hvhost_heartbeats_advance 2
	grep '^channel .*name=shutdown' /tmp/hvhost.report | sed 's/^/# /'
	rig_check shutdown_accepted hvhost_shutdown_accepted
	rig_check guest_powered_off grep -q 'reboot: Power down' $c
	bad='WARNING:|BUG:|Call Trace|Oops|unchecked MSR access'
	grep -E "$bad" $c | sed 's/^/# bad: /'
	rig_check no_warnings sh -c "! grep -qE '$bad' $c"
	rig_check no_vmbus_errors hvhost_vmbus_clean
	rig_check modifychannel_moved_the_channel report_is vmbus modifies 1
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test vmbus_stock_guest_hvhost rig_vmbus_stock
}
