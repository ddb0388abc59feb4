# _vsock_hostile_guest: not a scenario of its own; the L2 side of
# vsock_hostile: hv_guest's selftest build floods hvhost (--vsock,
# --vsock-max-conns 16) with Hyper-V socket connect requests to a host
# port with a listener (vmbus/misbehave "connect-flood 1234 300"), twice.
# Each time exactly 16 offers arrive and the other 284 requests are
# refused, some with TL_CONNECT_RESULT (optional: hvhost skips it while the
# guest is behind with its messages); nobody opens the offers, hvhost
# withdraws them and the bus releases every one, which frees the slots for
# the second flood. Afterwards no socket channel is left (hvctl devices),
# L1 saves hvhost's stats before and after, the heartbeat still beats, and
# the module unloads cleanly. No kernel warning.
# helper

. /rig/scenarios/_vsock_lib.sh

D=/sys/kernel/debug/hv_guest/vmbus
FLOOD=300
LIMIT=16

released_since() {
	[ "$(hv_state releases)" -ge $(($1 + LIMIT)) ]
}

# flood_round: one flood, its offers and refusals counted by the guest.
flood_round() {
	local o0 r0 u0 offers refused
	o0=$(hv_state offers) r0=$(hv_state releases) u0=$(hv_state connect_results)
	echo "connect-flood $VSOCK_HOST_PORT $FLOOD" >$D/misbehave || return 1
	# The offers are withdrawn after hvhost's 5 s open timeout.
	wait_for 60 released_since "$r0" || { echo "# releases: $r0 -> $(hv_state releases)"; return 1; }
	offers=$(($(hv_state offers) - o0)) refused=$(($(hv_state connect_results) - u0))
	echo "# $FLOOD requests: $offers offers (released $(($(hv_state releases) - r0))), $refused refusals"
	# Every offer arrives; the refusals' answers are optional, and hvhost
	# skips them while the guest is behind with its messages: L1 compares
	# this count with hvhost's.
	rig_mark "vsock refusals $refused"
	[ "$offers" = $LIMIT ] && [ "$refused" -gt 0 ] && [ "$refused" -le $((FLOOD - LIMIT)) ]
}

guest() {
	echo "# rig: nproc=$(nproc)"
	run_test load hv_load_selftest
	run_test stats_before rig_request stats before
	run_test flood_within_the_limit flood_round
	run_test slots_freed_for_a_second_flood flood_round
	run_test every_channel_released vsock_guest_settled
	run_test heartbeat_survives hv_heartbeat_survives
	run_test unload rmmod_clean
	run_test no_kernel_warnings dmesg_clean
}
