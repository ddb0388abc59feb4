# _vmbus_rescind_perf_guest: not a scenario of its own; the L2 side of
# vmbus_rescind's third part: hv_guest streams 4 KiB packets to hvhost's
# perf sink (hvhost --vmbus-perf), the sender often asleep waiting for ring
# space, and hvhost removes the sink mid-stream (rig_request "hvctl remove
# perf"). The stream must end at once with ENODEV or ENOTCONN (never hang
# or time out), the channel and its ring pages go with nothing leaked, the
# other channels keep working and the module unloads cleanly.
# helper

D=/sys/kernel/debug/hv_guest/vmbus

perf_block() {
	grep ' driver=hvhost_perf ' $D/channels
}

perf_open() {
	[ "$(kv $D/channels driver=hvhost_perf state)" = Open ]
}

perf_gone() {
	[ -z "$(perf_block)" ]
}

live_pages() {
	hv_state ring_pages_live
}

rescind_mid_stream() {
	local pages relid
	insmod $HV_GUEST_SELFTEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 perf_open || { sed 's/^/# /' $D/channels; return 1; }
	relid=$(kv $D/channels driver=hvhost_perf relid)
	pages=$(live_pages)
	rm -f /tmp/stream.done
	(
		echo "stream 5000000 4096" >$D/devices/hvhost_perf.$relid/perf 2>/tmp/stream.err
		echo $? >/tmp/stream.done
	) &
	sleep 3
	echo "# before the rescind: tx_packets=$(kv $D/channels driver=hvhost_perf tx_packets)"
	rig_request hvctl remove perf || { echo "# remove perf: $RIG_ANSWER"; return 1; }
	if ! wait_for 60 [ -e /tmp/stream.done ]; then
		echo "# the stream did not end within 60 s of the rescind"
		return 1
	fi
	echo "# stream ended with status $(cat /tmp/stream.done): $(cat /tmp/stream.err)"
	[ "$(cat /tmp/stream.done)" != 0 ] || { echo "# the stream claims it finished"; return 1; }
	grep -qE 'No such device|not connected' /tmp/stream.err || return 1
	wait_for 30 perf_gone || { echo "# relid $relid still listed"; return 1; }
	[ ! -e /sys/bus/auxiliary/devices/hv_guest.hvhost_perf.$relid ] || return 1
	sed 's/^/# /' $D/state
	[ "$(live_pages)" -lt "$pages" ] && [ "$(hv_state ring_pages_leaked)" = 0 ] || return 1
	[ "$(grep -c ' state=Open ' $D/channels)" = 3 ] || { echo "# the IC channels suffered"; return 1; }
	rmmod_clean && dmesg_clean
}

guest() {
	rig_poweroff_hook
	run_test rescind_mid_stream rescind_mid_stream
	insmod $HV_GUEST_SELFTEST_KO
	run_test host_shutdown_request rig_wait_host_shutdown
}
