# vmbus_hostile: both directions, 2 vCPUs each.
# - hvhost's VMBus fault injection against hv_guest's client: a malformed
#   OFFERCHANNEL, a GPADL_CREATED for a GPADL the guest never sent, a
#   corrupt write index in a channel's host-to-guest ring. The guest
#   rejects each with a logged error and stays usable (real offers bound,
#   clean unload, a normal reload); hvhost keeps running and exits 0.
# - A misbehaving guest against hvhost (hv_guest's vmbus/misbehave):
#   messages of unknown type, cut short, or continuing a GPADL never
#   started; a GPADL of pages outside RAM; OPENCHANNEL of a relid never
#   offered; a guest-to-host ring whose write index is past its end. hvhost
#   refuses each (the guest checks the answers), logs and counts it by
#   kind (its exit report), closes only the
#   corrupt channel, keeps the heartbeat going, serves the reload, and
#   shuts the guest down on SIGTERM, exiting 0.
# timeout: 800
# debug-by-name: 1800
rig_misbehaving_guest() {
	hvhost_start 400 _vmbus_misbehave_guest --cpus 2
	hvhost_term_when '# rig: vmbus ready' 360
	hvhost_wait
	c=/tmp/hvhost.console e=/tmp/hvhost.err
	hvhost_verdict_or_bail "the misbehaving guest"
	rig_check hvhost_kept_running_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_saw_every_refusal
	grep -E 'vmbus: .*(dropped|refused|closing it)' $e | sed 's/^/# /'
	grep -E '^(vmbus|channel|exit) ' /tmp/hvhost.report | sed 's/^/# /'
	# Counted by kind: the three garbage messages dropped, the GPADL of
	# foreign pages and the OPENCHANNEL of relid 2000 refused.
	rig_check each_violation_counted report_is vmbus dropped 3 gpadls_refused 1 opens_refused 1
	only_timesync_closed() {
		report_is vmbus faults 1 && report_is name=timesync faults 1 &&
			report_is name=heartbeat faults 0 && report_is name=shutdown faults 0
	}
	rig_check only_the_corrupt_channel_closed only_timesync_closed
	# The order (a heartbeat answered after the fault) is the guest's own
	# test, heartbeat_survives; here hvhost's count of the answers.
	beats_kept() {
		[ "$(kv /tmp/hvhost.report name=heartbeat beats)" -ge 2 ] && report_is name=heartbeat faults 0
	}
	rig_check heartbeat_after_the_fault beats_kept
	one_error() {
		! grep -qE 'WARNING:|BUG:|Call Trace|Oops' $c && report_is vmbus faults 1 && report_is exit errors 1
	}
	rig_check counters_one_error_no_guest_warnings one_error
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test hostile_host_faults rig_hvhost_guest _vmbus_hostile_guest 2 \
		--vmbus-fault malformed-offer --vmbus-fault bogus-gpadl-reply --vmbus-fault corrupt-ring
	run_test misbehaving_guest rig_misbehaving_guest
}
