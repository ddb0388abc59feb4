# vsock_stock_guest_hvhost: Linux's own hv_sock (the reference kernel)
# under hvhost --vsock, with Debian's socat at both ends (_vsock_lib).
# The guest (_vsock_stock_guest) connects to L1's Unix listener
# ($VS/v.sock_1234): 32 connections at once with 1 MiB each way, then one
# with 64 MiB; L1's host programs connect to the guest's listener through
# $VS/v.sock with CONNECT 5000: 8 at once with 1 MiB each way, each
# getting "OK <port>" with its own port from 2^30. Every transfer is a
# round trip through a half-close, checked whole at the client, and the
# sha256 each server recorded is the one its client sent. A guest connect
# to a port with no listener fails (refused by hvhost, counted), a host
# CONNECT to a guest port with no listener closes without an OK (the
# offer withdrawn, counted). `hvctl remove hvsock` in the middle of a
# 64 MiB transfer ends the guest's program with an error, not a hang.
# Afterwards hvhost has the descriptors, channels and GPADLs it had
# before (hvctl stats, process open_fds), no error and no warning in the
# guest.
# timeout: 900
. /rig/scenarios/_vsock_lib.sh

vsock_run() {
	vsock_host_listen
	rm -f $HVHOST_API
	HVHOST_KERNEL=/boot/ref-bzImage hvhost_start 800 _vsock_stock_guest --cpus 2 --memory 768 \
		--api-socket $HVHOST_API --vsock $VS/v.sock
	if hvhost_wait_mark "# rig: vsock listening" 600; then
		rig_check host_programs_connect vsock_host_connects 8 1024
		rig_check host_connect_without_listener_gets_no_ok vsock_host_no_listener
	else
		rig_not_ok "the guest never listened"
	fi
	hvhost_wait
	kill $VSOCK_LISTENER 2>/dev/null
	hvhost_verdict_or_bail "the reference guest"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	rig_check host_got_what_the_guest_sent vsock_sums_arrived sent $VS/h.sums
	for f in $VS/h.in.*; do vsock_sha $f; done >$VS/h.in.sums
	rig_check guest_got_what_the_host_sent vsock_sums_arrived got $VS/h.in.sums
	rig_check nothing_left_behind vsock_nothing_left
	grep '^vmbus ' /tmp/hvctl.stats.after | tr ' ' '\n' | grep socket | sed 's/^/# /'
	rig_check refusals_counted report_is vmbus socket_refusals 1 socket_offers_expired 1
	rig_check no_guest_warnings hvhost_guest_clean
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test vsock_stock_guest_hvhost vsock_run
}
