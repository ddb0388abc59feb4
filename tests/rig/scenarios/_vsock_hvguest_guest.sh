# _vsock_hvguest_guest: not a scenario of its own; the L2 side of
# vsock_hvguest_hvhost: the rig kernel with the production hv_guest.ko as
# its AF_VSOCK transport, Debian's socat as the programs. The transfers
# of _vsock_stock_guest (its rings checked, 32 x 1 MiB, 64 MiB, 8 host
# programs in, a rescind mid-transfer), then what is hv_guest's own: a refused connect
# fails at once, the connection limit, 20 reloads with a connection
# open, the transport's counters; at the end every socket channel is
# released, and no kernel warning.
# helper

. /rig/scenarios/_vsock_lib.sh

HVSOCK=/sys/kernel/debug/hv_guest/vmbus/hvsock
# hvhost's --vsock-max-conns in vsock_hvguest_hvhost.
VSOCK_LIMIT=40

# hvsock KEY: the transport's counter KEY.
hvsock() {
	kv $HVSOCK hvsock "$1"
}

hvsock_registered() {
	[ -e $HVSOCK ]
}

# vsock_hvguest_load: the production module, registered as the
# transport within 60 s.
vsock_hvguest_load() {
	insmod $HV_GUEST_KO || return 1
	wait_for 60 hvsock_registered || { dmesg | grep hvsock | sed 's/^/# /'; return 1; }
	echo "# $(cat $HVSOCK)"
}

# vsock_hvguest_refused: a connect to a host port nobody listens on fails
# because the host refused it (TL_CONNECT_RESULT: the counter), not at
# the connect timeout.
vsock_hvguest_refused() {
	local r
	r=$(hvsock refused)
	vsock_guest_no_listener || return 1
	echo "# refused: $r -> $(hvsock refused)"
	[ "$(hvsock refused)" = $((r + 1)) ]
}

# vsock_hold I: a connection to the host's port that stays open, sending
# nothing, until its holder ($VS/hold.pid.I) is killed.
vsock_hold() {
	{
		sleep 300 &
		echo $! >$VS/hold.pid.$1
		wait
	} | socat -T 300 - VSOCK-CONNECT:2:$VSOCK_HOST_PORT >/dev/null 2>$VS/hold.err.$1 &
	echo $! >$VS/hold.socat.$1
}

# vsock_release_holds N: ends the N held connections and waits for their
# socat to exit.
vsock_release_holds() {
	local i
	for i in $(seq 1 "$1"); do
		kill "$(cat $VS/hold.pid.$i)" 2>/dev/null
	done
	for i in $(seq 1 "$1"); do
		wait "$(cat $VS/hold.socat.$i)" 2>/dev/null
	done
}

connected_past() {
	[ "$(hvsock connected)" -ge "$1" ]
}

no_sockets() {
	[ "$(hvsock sockets)" = 0 ]
}

# vsock_hvguest_limit: hvhost allows VSOCK_LIMIT connections: that many
# held open all connect; one more is refused by the host; once they
# close (every socket gone), a new connection carries data again.
vsock_hvguest_limit() {
	local c0 r0 i rc=0
	c0=$(hvsock connected) r0=$(hvsock refused)
	for i in $(seq 1 $VSOCK_LIMIT); do
		vsock_hold $i
	done
	if wait_for 120 connected_past $((c0 + VSOCK_LIMIT)); then
		echo "# $VSOCK_LIMIT connections held"
		if socat -T 30 - VSOCK-CONNECT:2:$VSOCK_HOST_PORT </dev/null >/dev/null 2>$VS/g.err.limit; then
			echo "# connection $((VSOCK_LIMIT + 1)) was let through"
			rc=1
		fi
		echo "# refused: $r0 -> $(hvsock refused): $(tail -1 $VS/g.err.limit)"
		[ "$(hvsock refused)" = $((r0 + 1)) ] || rc=1
	else
		echo "# only $(($(hvsock connected) - c0)) of $VSOCK_LIMIT connected"
		rc=1
	fi
	vsock_release_holds $VSOCK_LIMIT
	wait_for 60 no_sockets || { echo "# sockets left: $(cat $HVSOCK)"; rc=1; }
	vsock_guest_client limit 64 $VSOCK_HOST_PORT
	vsock_round_trips_ok $VS/g limit || rc=1
	rm -f $VS/hold.* $VS/g.*
	return $rc
}

offers_refused_past() {
	[ "$(hvsock offers_refused)" -gt "$1" ]
}

# vsock_hvguest_counters: what the transport counted so far adds up:
# every connect asked for either connected or was refused, 9 accepted
# (L1's held connection and its 8 programs),
# one reset (the rescind mid-transfer), nothing abandoned, one offer
# refused (L1's CONNECT to the port nobody listens on, made after its 8
# connections: waited for), and no socket left.
vsock_hvguest_counters() {
	# A socket goes once its program closed it and its channel is closed.
	wait_for 30 no_sockets
	wait_for 60 offers_refused_past 0
	echo "# $(cat $HVSOCK)"
	[ "$(hvsock connects)" = $(($(hvsock connected) + $(hvsock refused))) ] &&
		[ "$(hvsock accepted)" = 9 ] && [ "$(hvsock resets)" = 1 ] &&
		[ "$(hvsock abandoned)" = 0 ] && [ "$(hvsock offers_refused)" = 1 ] &&
		[ "$(hvsock sockets)" = 0 ]
}

try_rmmod() {
	rmmod hv_guest 2>/dev/null
}

# vsock_hvguest_reloads N: N times: a connection held open; rmmod refuses
# (the socket holds the module) and the connection still works after;
# the connection closed, rmmod succeeds within 30 s, insmod registers the
# transport again.
vsock_hvguest_reloads() {
	local i c0
	for i in $(seq 1 "$1"); do
		c0=$(hvsock connected)
		vsock_hold 1
		wait_for 60 connected_past $((c0 + 1)) || { echo "# cycle $i: no connection"; return 1; }
		if rmmod hv_guest 2>$VS/rmmod.err; then
			echo "# cycle $i: unloaded with a connection open"
			vsock_release_holds 1
			return 1
		fi
		if [ "$(cat /sys/module/hv_guest/refcnt)" = 0 ] || [ "$(hvsock sockets)" != 1 ]; then
			echo "# cycle $i: refcnt $(cat /sys/module/hv_guest/refcnt), $(cat $HVSOCK)"
			vsock_release_holds 1
			return 1
		fi
		vsock_release_holds 1
		wait_for 30 try_rmmod || { echo "# cycle $i: rmmod failed after the close: $(cat $HVSOCK)"; return 1; }
		vsock_hvguest_load >/dev/null || { echo "# cycle $i: not registered again"; return 1; }
	done
	echo "# $1 cycles; rmmod while open: $(tail -1 $VS/rmmod.err)"
	vsock_guest_client reload 64 $VSOCK_HOST_PORT
	vsock_round_trips_ok $VS/g reload
}

guest() {
	echo "# rig: nproc=$(nproc)"
	mkdir -p $VS
	run_test transport_registered vsock_hvguest_load
	run_test stats_before rig_request stats before
	# hv_guest sizes a connect's rings from the socket's buffers: the
	# kernel's defaults, less (24 KiB at least), more (256 KiB at most,
	# less the header page).
	run_test rings_of_a_connect vsock_guest_rings connect \
		$(vsock_ring_bytes $(cat /proc/sys/net/core/wmem_default)) \
		$(vsock_ring_bytes $(cat /proc/sys/net/core/rmem_default))
	run_test rings_of_a_connect_asking_less vsock_guest_rings connect_less 24576 24576 \
		,sndbuf=8192,rcvbuf=8192
	run_test rings_of_a_connect_asking_more vsock_guest_rings connect_more 258048 258048 \
		,sndbuf=131072,rcvbuf=131072
	run_test guest_connects_32_x_1_mib vsock_guest_connects 32 1024
	echo "# slowest connect so far: $(hvsock connect_ms_max) ms"
	run_test guest_connects_64_mib vsock_guest_connects 1 65536
	rm -f $VS/g.*
	run_test connect_without_listener_refused vsock_hvguest_refused
	run_test connection_limit vsock_hvguest_limit
	run_test host_programs_connect vsock_guest_serves 9
	run_test rescind_mid_transfer vsock_guest_rescinded
	run_test counters_add_up vsock_hvguest_counters
	# 5 on the debug kernel (kmemleak): its checkers look at every cycle
	# alike, and 20 there cost two minutes of CI.
	local reloads=20
	[ -e /sys/kernel/debug/kmemleak ] && reloads=5
	run_test reload_with_a_connection_open vsock_hvguest_reloads $reloads
	run_test every_channel_released vsock_guest_settled
	run_test no_kernel_warnings dmesg_clean
}
