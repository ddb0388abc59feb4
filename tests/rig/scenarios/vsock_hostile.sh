# vsock_hostile: Hyper-V sockets against a hostile peer.
# - A guest that floods hvhost with connect requests (_vsock_hostile_guest,
#   hv_guest's selftest build, --vsock-max-conns 16, a host listener on
#   the port): twice 300 requests; each time hvhost offers exactly 16 and
#   refuses the rest, withdraws the offers nobody opens, and gets every
#   relid back, so the second flood finds the slots free. The requests,
#   refusals and withdrawn offers are counted in hvhost's report; hvhost's
#   descriptors, channels and GPADLs are what they were before; no error
#   logged, exit status 0, and the guest unloads cleanly.
# - A hostile host against hv_guest's socket transport
#   (_vsock_hostile_host_guest, the production module): hvhost spoils the
#   first packet of a stream to the guest three ways (hvctl vsock-fault
#   oversize, bad-type, past-packet): each time the guest's program's
#   read fails with ECONNRESET with no byte handed to it, and the next
#   connection works; an offer no guest program asked for is refused.
#   hvhost exits 0 with nothing left behind.
# timeout: 900
# debug: 1800
. /rig/scenarios/_vsock_lib.sh

flooding_guest() {
	vsock_host_listen
	rm -f $HVHOST_API
	hvhost_start 400 _vsock_hostile_guest --cpus 2 --api-socket $HVHOST_API \
		--vsock $VS/v.sock --vsock-max-conns 16
	hvhost_wait
	kill $VSOCK_LISTENER 2>/dev/null
	hvhost_verdict_or_bail "the flooding guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	grep '^vmbus ' /tmp/hvhost.report | tr ' ' '\n' | grep socket | sed 's/^/# /'
	rig_check requests_beyond_the_limit_refused \
		report_is vmbus socket_requests 600 socket_refusals 568 socket_offers_expired 32
	# No message lost: the offers and rescinds all arrived (the guest's
	# own checks), and every TL_CONNECT_RESULT hvhost did not skip too.
	results() {
		local got
		got=$(awk '$3 == "vsock" && $4 == "refusals" { n += $5 } END { print n + 0 }' /tmp/hvhost.marks)
		echo "# TL_CONNECT_RESULTs: the guest got $got, hvhost sent $(($(kv /tmp/hvhost.report vmbus socket_refusals) - $(kv /tmp/hvhost.report vmbus socket_results_skipped)))"
		report_is vmbus lost 0 &&
			[ "$got" = $(($(kv /tmp/hvhost.report vmbus socket_refusals) - $(kv /tmp/hvhost.report vmbus socket_results_skipped))) ]
	}
	rig_check no_message_lost results
	rig_check nothing_left_behind vsock_nothing_left
	clean() { report_is vmbus dropped 0 faults 0 opens_refused 0 && report_is exit errors 0; }
	rig_check no_errors clean
	[ "$KTAP_CNT_FAIL" = 0 ]
}

hostile_host() {
	local spoil
	vsock_host_listen
	# What _vsock_hostile_host_guest's streams come from.
	socat UNIX-LISTEN:$VS/v.sock_7000,fork,backlog=16 SYSTEM:"head -c 65536 /dev/zero" 2>/dev/null &
	spoil=$!
	rm -f $HVHOST_API
	hvhost_start 400 _vsock_hostile_host_guest --cpus 2 --api-socket $HVHOST_API --vsock $VS/v.sock
	hvhost_wait
	kill $VSOCK_LISTENER $spoil 2>/dev/null
	hvhost_verdict_or_bail "the guest of the hostile host"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	grep '^vmbus ' /tmp/hvhost.report | tr ' ' '\n' | grep socket | sed 's/^/# /'
	# The unsolicited offer is withdrawn like any offer nobody opens.
	rig_check unsolicited_offer_withdrawn report_is vmbus socket_offers_expired 1
	rig_check nothing_left_behind vsock_nothing_left
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test flooding_guest flooding_guest
	run_test hostile_host hostile_host
}
