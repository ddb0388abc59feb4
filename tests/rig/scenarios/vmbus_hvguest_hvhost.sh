# vmbus_hvguest_hvhost: hv_guest's VMBus client under hvhost's VMBus server
# (2 vCPUs): connected at 6.0, the heartbeat, shutdown and timesync devices
# listed with hv_guest's drivers bound and their channels open, heartbeats
# answered (hvhost's exit report counts them), the host's time sample
# applied; 20 unload/reload cycles with the channels open, and hvhost sees
# every one closed and VMBus unloaded each time; MODIFYCHANNEL moves the
# heartbeat channel's interrupts to CPU 1 (hvhost counts it, the guest's
# CPU 1 takes them; an offline CPU or unknown relid is refused in the
# guest); finally SIGTERM to hvhost
# asks the guest to shut down, hv_guest's shutdown driver accepts and the
# guest powers off; hvhost exits 0 with no VMBus message dropped.
# timeout: 600
# debug: 1200
rig_vmbus_hvguest() {
	hvhost_start 500 _vmbus_hvguest_guest --cpus 2
	hvhost_term_when '# rig: vmbus ready' 450
	hvhost_wait
	c=/tmp/hvhost.console e=/tmp/hvhost.err
	hvhost_verdict_or_bail "hv_guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	rig_check heartbeats_advance hvhost_heartbeats_advance 1
	# 21 loads (20 cycles and the last one) close 3 channels each on unload,
	# except the last, which powers off with them open: 60 closes and 20
	# UNLOADs at least.
	# Each UNLOAD must find nothing left: the guest closed every channel
	# and tore every GPADL down before it.
	closes=$(kv /tmp/hvhost.report vmbus closes)
	unloads=$(kv /tmp/hvhost.report vmbus unloads)
	clean=$(kv /tmp/hvhost.report vmbus unloads_clean)
	echo "# hvhost saw $closes channel closes and $unloads unloads, $clean of them with nothing left open"
	rig_check host_sees_channels_closed_and_gpadls_torn_down_each_cycle \
		sh -c "[ $closes -ge 60 ] && [ $unloads -ge 20 ] && [ $clean = $unloads ]"
	grep -hE 'shutdown: (asking|the guest accepted|request received)' $e $c | sed 's/^/# /'
	rig_check shutdown_accepted hvhost_shutdown_accepted
	bad='WARNING:|BUG:|Call Trace|Oops|unchecked MSR access|vmbus: rejected'
	grep -E "$bad" $c | sed 's/^/# bad: /'
	rig_check no_warnings sh -c "! grep -qE '$bad' $c"
	rig_check no_vmbus_errors hvhost_vmbus_clean
	rig_check modifychannel_moved_the_channel report_is vmbus modifies 1
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test vmbus_hvguest_hvhost rig_vmbus_hvguest
}
