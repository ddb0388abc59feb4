# _vsock_hostile_host_guest: not a scenario of its own; the L2 side of
# vsock_hostile's hostile host: the production hv_guest.ko as the AF_VSOCK
# transport, and hvhost told to misbehave (hvctl vsock-fault). For each
# packet fault (oversize, bad-type, past-packet) the first packet of a
# stream to a guest program is spoiled: the transport drops it and resets
# the connection, so the program's read fails with ECONNRESET having been
# handed no byte, the reset is counted, and the next connection works. An offer no guest
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

# SPOIL_PORT (vsock_hostile's L1 serves it): each connection gets 64 KiB
# and the end of the stream.
SPOIL_PORT=7000

# spoiled KIND: hvhost spoils the first packet of a 64 KiB stream to the
# guest: the guest's read fails with ECONNRESET (104) having been handed
# no byte (hvstream's errno= and bytes= record), and the reset is
# counted; the next connection gets its 64 KiB.
spoiled() {
	local r0 rc
	mkdir -p $VS
	r0=$(hvsock resets)
	rig_request hvctl vsock-fault "$1" || return 1
	hvstream client source 65536 vsock:2:$SPOIL_PORT >/dev/null 2>$VS/spoiled.err
	rc=$?
	echo "# exit $rc: $(cat $VS/spoiled.err); resets $r0 -> $(hvsock resets)"
	[ $rc != 0 ] && [ "$(kv $VS/spoiled.err - errno)" = 104 ] &&
		[ "$(kv $VS/spoiled.err - bytes)" = 0 ] && [ "$(hvsock resets)" = $((r0 + 1)) ] || return 1
	hvstream client source 65536 vsock:2:$SPOIL_PORT >/dev/null ||
		{ echo "# the next connection failed"; return 1; }
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
