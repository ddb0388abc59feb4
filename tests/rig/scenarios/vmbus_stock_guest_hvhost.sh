# vmbus_stock_guest_hvhost: Linux's own hv_vmbus and hv_utils (the reference
# kernel) connect to hvhost's VMBus at 6.0 with 2 vCPUs: the log shows the
# version and the Heartbeat, Shutdown and TimeSync IC versions, the three
# utility devices are on /sys/bus/vmbus with hv_utils bound, hvhost logs the
# guest's heartbeat sequence advancing, and SIGTERM to hvhost asks the guest
# to shut down (VMBus shutdown service): the guest powers off cleanly and
# hvhost exits 0. Writing a channel's sysfs cpu makes Linux send
# MODIFYCHANNEL: hvhost moves the channel's interrupts to VP 1 and the
# heartbeat's events arrive on CPU 1. No WARNING, BUG or Oops in the guest's log; no VMBus
# message dropped and no channel fault in hvhost's.
# timeout: 400
rig_vmbus_stock() {
	echo "TAP version 13"
	echo "1..10"
	HVHOST_KERNEL=/boot/ref-bzImage hvhost_start 300 _vmbus_stock_guest --cpus 2
	hvhost_term_when '# rig: vmbus ready' 240
	hvhost_wait
	c=/tmp/hvhost.console e=/tmp/hvhost.err
	hvhost_verdict_or_bail "the reference guest"
	RIG_CHECK_FAILED=
	rig_check 1 hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	grep -E 'hv_vmbus: Vmbus version|hv_utils: .* IC version' $c | sed 's/^/# /'
	rig_check 2 vmbus_version_6_0 grep -q 'hv_vmbus: Vmbus version:6\.0' $c
	ic_all() {
		grep -q 'hv_utils: Heartbeat IC version' $c && grep -q 'hv_utils: Shutdown IC version' $c &&
			grep -q 'hv_utils: TimeSync IC version' $c
	}
	rig_check 3 ic_versions_logged ic_all
	hvhost_guest_ktap 4 guest_tests
	grep 'vmbus: heartbeat' $e | sed -n '1p;$p' | sed 's/^/# /'
	rig_check 5 heartbeats_advance hvhost_heartbeats_advance 2
	grep -E 'shutdown|Shutdown request' $e $c | sed 's/^/# /'
	rig_check 6 shutdown_accepted sh -c "grep -q 'shutdown: the guest accepted' $e &&
		grep -q 'Shutdown request received - graceful shutdown initiated' $c"
	rig_check 7 guest_powered_off grep -q 'reboot: Power down' $c
	bad='WARNING:|BUG:|Call Trace|Oops|unchecked MSR access'
	grep -E "$bad" $c | sed 's/^/# bad: /'
	rig_check 8 no_warnings sh -c "! grep -qE '$bad' $c"
	rig_check 9 no_vmbus_errors hvhost_vmbus_clean
	grep 'now interrupts VP' $e | sed 's/^/# /'
	rig_check 10 modifychannel_moved_the_channel grep -q 'vmbus: channel [0-9]* now interrupts VP 1' $e
	[ -z "$RIG_CHECK_FAILED" ]
}

guest() {
	run_test vmbus_stock_guest_hvhost rig_vmbus_stock
}
