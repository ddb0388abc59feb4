# vsock_hvguest_hvhost: hv_guest's own AF_VSOCK transport (the production
# hv_guest.ko, in the rig kernel, which has VSOCKETS and no Hyper-V
# drivers) under hvhost --vsock, with Debian's socat at both ends: the
# same transfers as vsock_stock_guest_hvhost (_vsock_lib), so the two
# guests are held to one standard, plus what only hv_guest does or is
# asked to do (_vsock_hvguest_guest): a connect nobody listens for fails
# at once with ECONNREFUSED (hvhost's TL_CONNECT_RESULT), the connection
# limit (--vsock-max-conns 40: the 41st connect is refused, and once the
# 40 close a new one works), 20 unload/reload cycles with a connection
# open (rmmod refuses while a socket lives and works once it is closed),
# and the transport's counters add up. Afterwards hvhost has the
# descriptors, channels and GPADLs it had before.
# timeout: 1200
. /rig/scenarios/_vsock_lib.sh

vsock_run() {
	vsock_host_listen
	rm -f $HVHOST_API
	hvhost_start 1100 _vsock_hvguest_guest --cpus 2 --memory 768 \
		--api-socket $HVHOST_API --vsock $VS/v.sock --vsock-max-conns 40
	if hvhost_wait_mark "# rig: vsock listening" 900; then
		rig_check host_programs_connect vsock_host_connects 8 1024
		rig_check host_connect_without_listener_gets_no_ok vsock_host_no_listener
	else
		rig_not_ok "the guest never listened"
	fi
	hvhost_wait
	kill $VSOCK_LISTENER 2>/dev/null
	hvhost_verdict_or_bail "hv_guest's guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	rig_check host_got_what_the_guest_sent vsock_sums_arrived sent $VS/h.sums
	for f in $VS/h.in.*; do vsock_sha $f; done >$VS/h.in.sums
	rig_check guest_got_what_the_host_sent vsock_sums_arrived got $VS/h.in.sums
	rig_check nothing_left_behind vsock_nothing_left
	grep '^vmbus ' /tmp/hvctl.stats.after | tr ' ' '\n' | grep socket | sed 's/^/# /'
	# The connect to no listener and the 41st of the limit; the host's
	# CONNECT to no listener.
	rig_check refusals_counted report_is vmbus socket_refusals 2 socket_offers_expired 1
	rig_check no_guest_warnings hvhost_guest_clean
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test vsock_hvguest_hvhost vsock_run
}
