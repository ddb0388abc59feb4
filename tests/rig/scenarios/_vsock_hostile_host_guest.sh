# _vsock_hostile_host_guest: not a scenario of its own; the L2 side of
# vsock_hostile's hostile host: the production hv_guest.ko as the AF_VSOCK
# transport, and hvhost told to misbehave (hvctl vsock-fault). For each
# packet fault (oversize, bad-type, past-packet) a guest program's round
# trip gets the spoiled packet first: the transport drops it and resets
# the connection, so socat fails (ECONNRESET) having been handed no byte,
# the reset is counted, and the next connection works. An offer no guest
# program asked for is refused (counted) and released once hvhost
# withdraws it. Afterwards no socket and no socket channel is left, the
# module unloads cleanly, and no kernel warning.
# helper

. /rig/scenarios/_vsock_lib.sh

HVSOCK=/sys/kernel/debug/hv_guest/vmbus/hvsock

hvsock() {
	kv $HVSOCK hvsock "$1"
}

hvsock_load() {
	registered() { [ -e $HVSOCK ]; }
	insmod $HV_GUEST_KO || return 1
	wait_for 60 registered
}

no_sockets() {
	[ "$(hvsock sockets)" = 0 ]
}

# spoiled KIND: one round trip whose first packet back hvhost spoils.
spoiled() {
	local r0
	mkdir -p $VS
	r0=$(hvsock resets)
	rig_request hvctl vsock-fault "$1" || return 1
	vsock_guest_client "$1" 64 $VSOCK_HOST_PORT
	echo "# socat exited $(cat $VS/g.rc.$1): $(tail -1 $VS/g.err.$1); $(wc -c <$VS/g.out.$1) bytes handed over; resets $r0 -> $(hvsock resets)"
	[ "$(cat $VS/g.rc.$1)" != 0 ] && [ ! -s $VS/g.out.$1 ] &&
		[ "$(hvsock resets)" = $((r0 + 1)) ] || return 1
	# The next connection is served as usual.
	vsock_guest_client "after.$1" 64 $VSOCK_HOST_PORT
	[ "$(cat $VS/g.rc.after.$1)" = 0 ] &&
		[ "$(vsock_sha $VS/g.in.after.$1)" = "$(vsock_sha $VS/g.out.after.$1)" ]
}

refused_past() {
	[ "$(hvsock offers_refused)" -gt "$1" ]
}

released_past() {
	[ "$(hv_state releases)" -gt "$1" ]
}

# unsolicited: an offer of a connection nobody asked for binds no socket
# (counted) and is released when hvhost withdraws it.
unsolicited() {
	local o0 r0
	o0=$(hvsock offers_refused) r0=$(hv_state releases)
	rig_request hvctl vsock-fault unsolicited-offer || return 1
	wait_for 30 refused_past "$o0" || return 1
	wait_for 30 released_past "$r0" || return 1
	echo "# offers refused $o0 -> $(hvsock offers_refused); releases $r0 -> $(hv_state releases)"
}

settled() {
	wait_for 30 no_sockets || { echo "# $(cat $HVSOCK)"; return 1; }
	echo "# $(cat $HVSOCK)"
	vsock_guest_settled
}

guest() {
	echo "# rig: nproc=$(nproc)"
	run_test load hvsock_load
	run_test stats_before rig_request stats before
	run_test oversize_packet_resets spoiled oversize
	run_test bad_type_resets spoiled bad-type
	run_test past_packet_resets spoiled past-packet
	run_test unsolicited_offer_refused unsolicited
	run_test every_channel_released settled
	run_test unload rmmod_clean
	run_test no_kernel_warnings dmesg_clean
}
