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
#   refuses each (the guest checks the answers), logs it, closes only the
#   corrupt channel, keeps the heartbeat going, serves the reload, and
#   shuts the guest down on SIGTERM, exiting 0.
# timeout: 800
rig_misbehaving_guest() {
	echo "TAP version 13"
	echo "1..6"
	hvhost_start 400 _vmbus_misbehave_guest --cpus 2
	hvhost_term_when '# rig: vmbus ready' 360
	hvhost_wait
	c=/tmp/hvhost.console e=/tmp/hvhost.err
	hvhost_verdict_or_bail "the misbehaving guest"
	RIG_CHECK_FAILED=
	rig_check 1 hvhost_kept_running_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap 2 guest_saw_every_refusal
	grep -E 'vmbus: .*(dropped|refused|closing it)' $e | sed 's/^/# /'
	logged() {
		grep -q 'message dropped: .*unknown message type\|message dropped: .*0x7f' $e &&
			grep -q 'message dropped: .*OPENCHANNEL' $e &&
			grep -q 'message dropped: .*GPADL' $e &&
			grep -q 'GPADL refused for relid' $e &&
			grep -q 'OPENCHANNEL of relid 2000 refused' $e
	}
	rig_check 3 each_violation_logged logged
	rig_check 4 only_the_corrupt_channel_closed sh -c \
		"[ \$(grep -c 'closing it' $e) = 1 ] && grep -q 'channel [0-9]* (timesync): .*closing it' $e"
	rig_check 5 heartbeat_after_the_fault hvhost_heartbeat_after 'closing it'
	grep -E 'vmbus: [0-9]+ messages' $e | sed 's/^/# /'
	rig_check 6 counters_one_error_no_guest_warnings sh -c \
		"grep -qE 'vmbus: [0-9]+ messages \([1-9][0-9]* dropped\).* 1 channel faults' $e &&
		! grep -qE 'WARNING:|BUG:|Call Trace|Oops' $c &&
		[ \$(grep -c 'hvhost: error:' $e) = 1 ] && grep -q 'hvhost: error: .*closing it' $e"
	[ -z "$RIG_CHECK_FAILED" ]
}

guest() {
	run_test hostile_host_faults rig_hvhost_guest _vmbus_hostile_guest 2 \
		--vmbus-fault malformed-offer --vmbus-fault bogus-gpadl-reply --vmbus-fault corrupt-ring
	run_test misbehaving_guest rig_misbehaving_guest
}
