# _vsock_lib: not a scenario of its own; the socket scenarios' shared
# steps, for both sides (sourced after lib.sh).
#
# Programs are Debian's socat on both ends, as users run it: AF_VSOCK in
# the guest, Unix sockets in L1 (hvhost's --vsock $VS/v.sock). Every
# transfer is a round trip: the client sends random bytes and shuts its
# write half; the server reads to the end (the half-close), records the
# sha256 of what it got, and sends it all back; the client compares what
# came back with what it sent. The sums the servers recorded are compared
# with the clients' across the layers, as marks ("vsock sent SHA" from the
# guest's clients, "vsock got SHA" from the guest's server).
# helper

VS=/tmp/vs
# The guest's port L1's clients connect to, and one nobody listens on.
VSOCK_GUEST_PORT=5000
VSOCK_GUEST_NO_LISTENER=5001
# The host's port the guest's clients connect to, and one with no listener.
VSOCK_HOST_PORT=1234
VSOCK_HOST_NO_LISTENER=4444

# vsock_handler FILE SUMS: writes the server's per-connection program:
# reads the stream to its end, appends its sha256 to SUMS, sends it back.
vsock_handler() {
	mkdir -p $VS
	cat >"$1" <<EOF
#!/bin/sh
f=\$(mktemp $VS/rx.XXXXXX)
cat >"\$f"
sha256sum <"\$f" | cut -d' ' -f1 >>$2
cat "\$f"
rm -f "\$f"
EOF
	chmod +x "$1"
}

# vsock_sha FILE: its sha256.
vsock_sha() {
	sha256sum <"$1" | cut -d' ' -f1
}

# vsock_round_trips_ok PREFIX N: each of the N transfers PREFIX.in.I /
# PREFIX.out.I (rc in PREFIX.rc.I) came back whole; says which did not.
vsock_round_trips_ok() {
	local i bad=0
	for i in $(seq 1 "$2"); do
		if [ "$(cat "$1.rc.$i")" != 0 ]; then
			echo "# transfer $i: socat exited $(cat "$1.rc.$i"): $(tail -2 "$1.err.$i" | tr '\n' ' ')"
			bad=$((bad + 1))
		elif [ "$(vsock_sha "$1.in.$i")" != "$(vsock_sha "$1.out.$i")" ]; then
			echo "# transfer $i: $(wc -c <"$1.in.$i") bytes sent, $(wc -c <"$1.out.$i") came back, not the same"
			bad=$((bad + 1))
		fi
	done
	[ $bad = 0 ]
}

# --- the guest's side ---

# vsock_guest_client I KIB PORT: sends KIB KiB to the host's PORT and
# keeps what comes back ($VS/g.out.I).
vsock_guest_client() {
	head -c $(($2 * 1024)) /dev/urandom >$VS/g.in.$1
	socat -t 120 -T 300 - VSOCK-CONNECT:2:$3 <$VS/g.in.$1 >$VS/g.out.$1 2>$VS/g.err.$1
	echo $? >$VS/g.rc.$1
}

# vsock_guest_connects N KIB: N clients at once to the host's port, KIB
# KiB each way each; every one comes back whole, and L1 gets the sums.
vsock_guest_connects() {
	local i t0
	mkdir -p $VS
	rm -f $VS/g.*
	t0=$(date +%s)
	local pids=
	for i in $(seq 1 "$1"); do
		vsock_guest_client $i "$2" $VSOCK_HOST_PORT &
		pids="$pids $!"
	done
	# Only these: a listener may run in the background too.
	wait $pids
	echo "# $1 x $2 KiB each way: $(($(date +%s) - t0)) s"
	for i in $(seq 1 "$1"); do
		rig_mark "vsock sent $(vsock_sha $VS/g.in.$i)"
	done
	vsock_round_trips_ok $VS/g "$1"
}

# vsock_guest_no_listener: a connect to a host port nobody listens on
# fails (Linux's hv_sock gets no offer and times out).
vsock_guest_no_listener() {
	! socat -T 30 - VSOCK-CONNECT:2:$VSOCK_HOST_NO_LISTENER </dev/null >/dev/null 2>$VS/g.err.refused &&
		echo "# $(tail -1 $VS/g.err.refused)"
}

# vsock_guest_rescinded: a 64 MiB round trip to the host's port, cut by
# `hvctl remove hvsock` (a rescind of its channel) 2 s in: the guest's
# socat ends by itself within 60 s (an error, not a hang), with less than
# everything back.
vsock_guest_rescinded() {
	local pid n=0 rc all=$((64 * 1024 * 1024))
	head -c $all /dev/urandom >$VS/g.cut.in
	socat -t 120 -T 60 - VSOCK-CONNECT:2:$VSOCK_HOST_PORT <$VS/g.cut.in >$VS/g.cut.out 2>$VS/g.cut.err &
	pid=$!
	sleep 2
	rig_request hvctl remove hvsock || { kill $pid; rm -f $VS/g.cut.*; return 1; }
	while kill -0 $pid 2>/dev/null && [ $n -lt 60 ]; do
		sleep 1
		n=$((n + 1))
	done
	if kill -0 $pid 2>/dev/null; then
		echo "# socat still runs 60 s after the rescind"
		kill $pid
		rm -f $VS/g.cut.*
		return 1
	fi
	wait $pid
	rc=$?
	echo "# socat ended $n s after the rescind (status $rc), $(wc -c <$VS/g.cut.out) of $all bytes back: $(tail -1 $VS/g.cut.err)"
	n=$(wc -c <$VS/g.cut.out)
	rm -f $VS/g.cut.*
	[ "$n" -lt $all ]
}

# vsock_guest_serves N: listens on the guest's port, tells L1 (the mark
# "vsock listening", after the rings a host's connection gets), and waits
# up to 300 s for N connections from host programs to be served (L1 holds
# one open first, then makes N - 1); their sums go to L1 as marks.
vsock_guest_serves() {
	local pid s
	vsock_handler $VS/g.handler $VS/g.sums
	: >$VS/g.sums
	# The backlog takes the 8 connections L1 makes at once (socat's
	# default, 5, would have the transport refuse the rest, as Linux's
	# hv_sock does: the host withdraws an offer nobody accepts).
	socat -t 120 VSOCK-LISTEN:$VSOCK_GUEST_PORT,fork,backlog=16 EXEC:$VS/g.handler 2>$VS/g.listen.err &
	pid=$!
	sleep 1
	vsock_mark_accept_rings
	rig_mark "vsock listening"
	served() { [ "$(wc -l <$VS/g.sums)" -ge "$1" ]; }
	wait_for 300 served "$1"
	s=$?
	kill $pid
	for sum in $(cat $VS/g.sums); do
		rig_mark "vsock got $sum"
	done
	echo "# served $(wc -l <$VS/g.sums) connections"
	return $s
}

# vsock_guest_settled: waits up to 60 s until hvhost lists no socket
# channel (every connection rescinded and released), then has L1 save
# hvhost's stats as "after".
vsock_guest_settled() {
	vsock_no_channels && rig_request stats after
}

# vsock_ring_bytes BUF: the data bytes of a ring sized from a socket
# buffer of BUF bytes, by Linux's hv_sock's rule (a host's connection) and
# hv_guest's (every connection): the buffer held to 24 KiB..256 KiB, made
# whole pages with the header page, which a buffer of 32 KiB or more gives
# up (VMBUS_RING_SIZE).
vsock_ring_bytes() {
	local b=$1
	[ "$b" -lt 24576 ] && b=24576
	[ "$b" -gt 262144 ] && b=262144
	if [ "$b" -ge 32768 ]; then
		echo $(((b + 4095) / 4096 * 4096 - 4096))
	else
		echo $(((b + 4095) / 4096 * 4096))
	fi
}

# vsock_no_channels: waits up to 60 s until hvhost lists no socket
# channel (every connection rescinded and released).
vsock_no_channels() {
	local i
	for i in $(seq 1 60); do
		rig_request hvctl devices || return 1
		case $RIG_ANSWER in
		*hvsock*) sleep 1 ;;
		*) return 0 ;;
		esac
	done
	echo "# still there: $RIG_ANSWER"
	return 1
}

# vsock_guest_rings NAME TO_HOST TO_GUEST [SOCAT_OPTIONS]: the only socket
# connection (to the host's port, with socat's OPTIONS such as
# ",sndbuf=8192") held open while L1 saves hvhost's stats as rings_NAME;
# the mark "vsock rings NAME TO_HOST TO_GUEST" tells L1 the ring data
# bytes to find there (vsock_rings_as_marked). Ends with no socket channel.
vsock_guest_rings() {
	local pid rc=0
	vsock_no_channels || return 1
	rm -f $VS/rings.err
	{
		sleep 300 &
		echo $! >$VS/rings.hold
		wait
	} | socat -d -d -T 300 - "VSOCK-CONNECT:2:$VSOCK_HOST_PORT$4" >/dev/null 2>$VS/rings.err &
	pid=$!
	transferring() { grep -q 'starting data transfer loop' $VS/rings.err; }
	if wait_for 30 transferring; then
		rig_request stats rings_$1 || rc=1
		rig_mark "vsock rings $1 $2 $3"
	else
		echo "# not connected: $(tail -2 $VS/rings.err | tr '\n' ' ')"
		rc=1
	fi
	kill "$(cat $VS/rings.hold)" 2>/dev/null
	wait $pid
	vsock_no_channels && [ $rc = 0 ]
}

# vsock_mark_accept_rings: tells L1 the rings a host's connection to the
# guest's listener gets (Linux's hv_sock and hv_guest alike: the
# listener's buffers, wmem_default and rmem_default when socat sets none).
vsock_mark_accept_rings() {
	rig_mark "vsock rings accept $(vsock_ring_bytes $(cat /proc/sys/net/core/wmem_default)) $(vsock_ring_bytes $(cat /proc/sys/net/core/rmem_default))"
}

# --- L1's side ---

# vsock_host_listen: the host program the guest connects to, on
# $VS/v.sock_$VSOCK_HOST_PORT (hvhost's --vsock $VS/v.sock).
vsock_host_listen() {
	rm -rf $VS
	mkdir -p $VS
	vsock_handler $VS/h.handler $VS/h.sums
	: >$VS/h.sums
	socat -t 120 UNIX-LISTEN:$VS/v.sock_$VSOCK_HOST_PORT,fork,backlog=64 EXEC:$VS/h.handler 2>$VS/h.listen.err &
	VSOCK_LISTENER=$!
}

# vsock_host_client I KIB: a host program connecting to the guest's port
# through $VS/v.sock: CONNECT, then KIB KiB; what comes back (the OK line,
# then the echo) in $VS/h.reply.I.
vsock_host_client() {
	head -c $(($2 * 1024)) /dev/urandom >$VS/h.in.$1
	{ printf 'CONNECT %s\n' $VSOCK_GUEST_PORT; cat $VS/h.in.$1; } |
		socat -t 120 -T 300 - UNIX-CONNECT:$VS/v.sock >$VS/h.reply.$1 2>$VS/h.err.$1
	echo $? >$VS/h.rc.$1
}

# vsock_host_connects N KIB: N host programs at once, KIB KiB each way;
# each got "OK <port>" with its own port from 2^30 up, then its bytes back.
vsock_host_connects() {
	local i line bad=0
	local pids=
	for i in $(seq 1 "$1"); do
		vsock_host_client $i "$2" &
		pids="$pids $!"
	done
	wait $pids
	for i in $(seq 1 "$1"); do
		line=$(head -1 $VS/h.reply.$i)
		echo "# host connection $i: $line"
		case $line in
		"OK "*[!0-9]* | "OK ") bad=1 ;;
		"OK "*) [ "${line#OK }" -ge 1073741824 ] || bad=1 ;;
		*) bad=1 ;;
		esac
		echo "${line#OK }" >>$VS/h.ports
		tail -c +$((${#line} + 2)) $VS/h.reply.$i >$VS/h.out.$i
	done
	[ "$(sort -u $VS/h.ports | wc -l)" = "$1" ] || { echo "# host ports not unique"; bad=1; }
	vsock_round_trips_ok $VS/h "$1" && [ $bad = 0 ]
}

# vsock_host_rings: a host program's connection to the guest's listener,
# held open (sending nothing) while hvhost's stats are saved as
# /tmp/hvctl.stats.rings_accept. The guest's server counts it as a
# connection served (an empty transfer, $VS/h.in.hold).
vsock_host_rings() {
	local pid rc=0
	: >$VS/h.in.hold
	{
		printf 'CONNECT %s\n' $VSOCK_GUEST_PORT
		sleep 300 &
		echo $! >$VS/h.hold
		wait
	} | socat -t 60 -T 300 - UNIX-CONNECT:$VS/v.sock >$VS/h.reply.hold 2>$VS/h.err.hold &
	pid=$!
	accepted() { grep -q '^OK ' $VS/h.reply.hold; }
	if wait_for 30 accepted; then
		hvctl $HVHOST_API stats >/tmp/hvctl.stats.rings_accept 2>&1 || rc=1
	else
		echo "# no OK: $(head -c 100 $VS/h.reply.hold)"
		rc=1
	fi
	kill "$(cat $VS/h.hold)" 2>/dev/null
	wait $pid
	return $rc
}

# vsock_rings_as_marked: each "vsock rings NAME TO_HOST TO_GUEST" mark of
# the guest: in hvhost's stats saved as rings_NAME, the open socket
# channel's rings have those data bytes.
vsock_rings_as_marked() {
	local n=0 name to_host to_guest bad=0
	awk '$3 == "vsock" && $4 == "rings" { print $5, $6, $7 }' /tmp/hvhost.marks >/tmp/vsock.rings
	while read -r name to_host to_guest; do
		n=$((n + 1))
		grep 'name=hvsock' /tmp/hvctl.stats.rings_$name | sed "s/^/# $name: /"
		RIG_REPORT=/tmp/hvctl.stats.rings_$name report_is "name=hvsock state=open" \
			ring_to_host "$to_host" ring_to_guest "$to_guest" || bad=1
	done </tmp/vsock.rings
	echo "# $n connections' rings checked"
	[ $n -gt 0 ] && [ $bad = 0 ]
}

# vsock_host_no_listener: CONNECT to a guest port nobody listens on: the
# stream closes without an OK (hvhost withdraws the offer after 5 s).
vsock_host_no_listener() {
	printf 'CONNECT %s\n' $VSOCK_GUEST_NO_LISTENER |
		socat -t 60 -T 60 - UNIX-CONNECT:$VS/v.sock >$VS/h.refused 2>&1
	[ ! -s $VS/h.refused ] || { echo "# got: $(head -c 100 $VS/h.refused)"; return 1; }
}

# vsock_l1_run WHO REFUSALS MARK_SECS START...: L1's side of the socket
# scenarios, one standard for every guest: the host listener; hvhost
# started with START (hvhost_start's timeout, guest and options; the
# control socket and --vsock added here; HVHOST_KERNEL as the caller set
# it); L1's host programs once the guest listens (within MARK_SECS); then
# exit status 0, the guest's KTAP, every sum across the layers, nothing
# left behind in hvhost, REFUSALS guest connects refused and the one host
# CONNECT to no listener withdrawn, no guest warning. WHO names the guest
# in a bail-out.
vsock_l1_run() {
	local who=$1 refusals=$2 mark_secs=$3
	shift 3
	vsock_host_listen
	rm -f $HVHOST_API
	hvhost_start "$@" --api-socket $HVHOST_API --vsock $VS/v.sock
	if hvhost_wait_mark "# rig: vsock listening" "$mark_secs"; then
		rig_check host_connection_held_for_its_rings vsock_host_rings
		rig_check host_programs_connect vsock_host_connects 8 1024
		rig_check host_connect_without_listener_gets_no_ok vsock_host_no_listener
	else
		rig_not_ok "the guest never listened"
	fi
	hvhost_wait
	kill $VSOCK_LISTENER 2>/dev/null
	hvhost_verdict_or_bail "$who"
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	hvhost_guest_ktap guest_tests
	rig_check host_got_what_the_guest_sent vsock_sums_arrived sent $VS/h.sums
	for f in $VS/h.in.*; do vsock_sha $f; done >$VS/h.in.sums
	rig_check guest_got_what_the_host_sent vsock_sums_arrived got $VS/h.in.sums
	rig_check nothing_left_behind vsock_nothing_left
	rig_check rings_sized_from_socket_buffers vsock_rings_as_marked
	grep '^vmbus ' /tmp/hvctl.stats.after | tr ' ' '\n' | grep socket | sed 's/^/# /'
	rig_check refusals_counted report_is vmbus socket_refusals "$refusals" socket_offers_expired 1
	rig_check no_guest_warnings hvhost_guest_clean
	[ "$KTAP_CNT_FAIL" = 0 ]
}

# vsock_sums_arrived WHAT SUMS: every "vsock WHAT SHA" mark's SHA is in
# the file SUMS (what the other side's server recorded), and there is one.
vsock_sums_arrived() {
	local n=0 sum
	for sum in $(awk -v w="$1" '$3 == "vsock" && $4 == w { print $5 }' /tmp/hvhost.marks); do
		n=$((n + 1))
		grep -qx "$sum" "$2" || { echo "# $sum ($1) not in $2"; return 1; }
	done
	echo "# $n sums checked"
	[ $n -gt 0 ]
}

# vsock_nothing_left: after the guest settled, hvhost has the descriptors,
# channels and GPADLs it had before the first connection.
vsock_nothing_left() {
	local b=/tmp/hvctl.stats.before a=/tmp/hvctl.stats.after k
	for k in open_fds; do
		echo "# $k: before $(kv $b process $k), after $(kv $a process $k)"
		[ "$(kv $b process $k)" = "$(kv $a process $k)" ] || return 1
	done
	for k in channels gpadls_live; do
		echo "# $k: before $(kv $b vmbus $k), after $(kv $a vmbus $k)"
		[ "$(kv $b vmbus $k)" = "$(kv $a vmbus $k)" ] || return 1
	done
	! grep -q 'name=hvsock' $a
}
