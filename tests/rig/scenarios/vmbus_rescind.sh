# vmbus_rescind: hvhost removes a VMBus device while the guest uses it
# (control socket: "hvctl remove heartbeat", which the guest asks L1 for
# with rig_request and whose answer it checks), then adds it back ("hvctl
# add heartbeat"), with 2 vCPUs, against two guests:
# - hv_guest: five cycles; each time the heartbeat driver unbinds, the
#   channel and its ring pages go (live ring pages drop, none leaked), the
#   relid is released, the other channels are untouched; the new offer is
#   bound, opened and answers heartbeats; afterwards the module unloads
#   cleanly and loads again with all channels open;
# - Linux's own hv_vmbus/hv_utils (the reference kernel): two cycles; the
#   device leaves /sys/bus/vmbus and comes back bound to hv_utils.
# - hv_guest streaming 4 KiB packets to hvhost's perf sink (--vmbus-perf),
#   the sender waiting for ring space, when hvhost removes the sink: the
#   stream ends at once with ENODEV/ENOTCONN, the channel and its ring
#   pages go, nothing leaks, the module unloads cleanly.
# hvhost sees every relid released, answers every request "ok", drops no
# message, has no channel fault, and the guests shut down on SIGTERM.
# timeout: 1200
# debug: 1800
# rescind_boot WHAT KERNEL GUEST_SCENARIO [HVHOST_ARGS...]: boots the
# guest under hvhost with the control socket served, then checks hvhost's
# exit status and the guest's own tests.
rescind_boot() {
	local what=$1 kernel=$2 scen=$3
	shift 3
	rm -f $HVHOST_API
	HVHOST_KERNEL=$kernel hvhost_start 400 "$scen" --cpus 2 --api-socket $HVHOST_API "$@"
	hvhost_term_when '# rig: vmbus ready' 360
	hvhost_wait
	c=/tmp/hvhost.console e=/tmp/hvhost.err
	hvhost_verdict_or_bail "$what"
	sed 's/^/# /' /tmp/hvhost.ctl
	rig_check "${what}_hvhost_exit_status_0" [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap "${what}_guest_tests" "$what"
}

rescind_run() {
	local what=$1 kernel=$2 scen=$3 cycles=$4
	rescind_boot "$what" "$kernel" "$scen"
	requests_ok() {
		local removes adds
		removes=$(grep -c ': hvctl remove heartbeat -> ok relid [0-9]* rescinded' /tmp/hvhost.ctl)
		adds=$(grep -c ': hvctl add heartbeat -> ok relid [0-9]*' /tmp/hvhost.ctl)
		echo "# $removes removes and $adds adds answered ok"
		[ "$removes" = "$cycles" ] && [ "$adds" = "$cycles" ] && ! grep -q -- '-> error' /tmp/hvhost.ctl
	}
	rig_check "${what}_requests_answered_ok" requests_ok
	releases_seen() { report_is vmbus rescinds "$cycles" releases "$cycles"; }
	rig_check "${what}_relids_released" releases_seen
	# The heartbeat device added last answered heartbeats.
	beats_after_last_add() {
		local b
		# The last: relids grow, and the report lists them in order.
		grep '^channel .* name=heartbeat ' /tmp/hvhost.report | tail -1 >/tmp/last_heartbeat
		b=$(kv /tmp/last_heartbeat - beats)
		echo "# the last heartbeat device: ${b:-no} heartbeats answered"
		[ -n "$b" ] && [ "$b" -gt 0 ]
	}
	rig_check "${what}_heartbeats_after_last_add" beats_after_last_add
	bad='WARNING:|BUG:|Call Trace|Oops|vmbus: rejected'
	grep -E "$bad" $c | sed 's/^/# bad: /'
	no_errors() { ! grep -qE "$bad" $c && hvhost_vmbus_clean; }
	rig_check "${what}_no_errors" no_errors
}

# The perf sink removed while hv_guest streams to it (sender waiting for
# ring space): the guest's checks, hvhost's answer and release, its count
# of what arrived, and no error.
rescind_perf_run() {
	rescind_boot perf /boot/bzImage _vmbus_rescind_perf_guest --vmbus-perf
	perf_removed_and_released() {
		grep -q ': hvctl remove perf -> ok relid [0-9]* rescinded' /tmp/hvhost.ctl &&
			report_is vmbus rescinds 1 releases 1 && ! grep -q ' name=perf ' /tmp/hvhost.report
	}
	rig_check perf_removed_and_released perf_removed_and_released
	bad='WARNING:|BUG:|Call Trace|Oops'
	no_errors() { ! grep -qE "$bad" $c && hvhost_vmbus_clean; }
	rig_check perf_no_errors no_errors
}

rig_vmbus_rescind() {
	rescind_run hv_guest /boot/bzImage _vmbus_rescind_guest 5
	rescind_run linux /boot/ref-bzImage _vmbus_rescind_stock_guest 2
	rescind_perf_run
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test vmbus_rescind rig_vmbus_rescind
}
