# _vmbus_rescind_guest: not a scenario of its own; the L2 side of
# vmbus_rescind with hv_guest. It asks hvhost (rig_request "hvctl ...",
# which L1 runs on hvhost's control socket and answers) to remove
# the heartbeat device while hv_guest's heartbeat driver has its channel
# open and answers heartbeats, and checks each time that the driver
# unbinds and its auxiliary device goes, the channel and its ring pages go and nothing is leaked; then
# to add it back, and that a new channel is offered, bound, opened and
# answers heartbeats. Five cycles; then the bus still works: the module
# unloads (UNLOAD handshake) and loads again with all three channels
# open, and the guest waits for hvhost's shutdown request.
# helper

CYCLES=5
D=/sys/kernel/debug/hv_guest/vmbus

# The channel record bound to driver $1 (empty if none).
block() {
	grep " driver=$1 " $D/channels
}

bound_open() {
	[ "$(kv $D/channels driver=$1 state)" = Open ]
}

gone() {
	[ -z "$(block "$1")" ]
}

# released N: the bus has sent N RELID_RELEASED.
released() {
	[ "$(hv_state releases)" = "$1" ]
}

live_pages() {
	hv_state ring_pages_live
}

leaked_pages() {
	hv_state ring_pages_leaked
}

all_open() {
	bound_open heartbeat && bound_open shutdown && bound_open timesync
}

rescind_cycles() {
	local i b relid new pages hb_pages before_rescinds before_releases
	insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 all_open || { cat $D/channels | sed 's/^/# /'; return 1; }
	b=$(hv_beats)
	wait_for 30 hv_beats_past "$b" || { echo "# no heartbeat answered"; return 1; }
	pages=$(live_pages)
	hb_pages="$(kv $D/channels driver=heartbeat ring_send) $(kv $D/channels driver=heartbeat ring_recv)"
	echo "# ring pages live $pages; heartbeat rings (bytes) $hb_pages"
	before_rescinds=$(hv_state rescinds)
	before_releases=$(hv_state releases)
	for i in $(seq 1 $CYCLES); do
		relid=$(kv $D/channels driver=heartbeat relid)
		rig_request hvctl remove heartbeat ||
			{ echo "# cycle $i: remove heartbeat: $RIG_ANSWER"; return 1; }
		if ! wait_for 60 gone heartbeat; then
			echo "# cycle $i: relid $relid still listed after the rescind"
			block heartbeat | sed 's/^/# /'
			return 1
		fi
		# The channel leaves the table just before RELID_RELEASED is sent.
		wait_for 10 released "$((before_releases + i))" ||
			{ echo "# cycle $i: relid $relid not released (releases=$(hv_state releases))"; return 1; }
		[ ! -e /sys/bus/auxiliary/devices/hv_guest.heartbeat.$relid ] ||
			{ echo "# cycle $i: auxiliary device hv_guest.heartbeat.$relid left behind"; return 1; }
		if [ "$(live_pages)" -ge "$pages" ]; then
			echo "# cycle $i: ring pages live $(live_pages), not below $pages"
			return 1
		fi
		# The other channels are untouched.
		bound_open shutdown && bound_open timesync ||
			{ echo "# cycle $i: another channel suffered"; return 1; }
		b=$(hv_beats)
		rig_request hvctl add heartbeat ||
			{ echo "# cycle $i: add heartbeat: $RIG_ANSWER"; return 1; }
		if ! wait_for 60 bound_open heartbeat; then
			echo "# cycle $i: no new heartbeat channel bound and open"
			cat $D/channels | sed 's/^/# /'
			return 1
		fi
		wait_for 30 hv_beats_past "$b" || { echo "# cycle $i: no heartbeat after re-adding"; return 1; }
		new=$(kv $D/channels driver=heartbeat relid)
		[ "$(basename "$(readlink /sys/bus/auxiliary/devices/hv_guest.heartbeat.$new/driver)")" = hv_guest_heartbeat.hv_guest_heartbeat ] ||
			{ echo "# cycle $i: hv_guest.heartbeat.$new not bound on the auxiliary bus"; return 1; }
		echo "# cycle $i: relid $relid rescinded and released; new relid $(kv $D/channels driver=heartbeat relid) beats $(hv_beats)"
		[ "$(live_pages)" = "$pages" ] ||
			{ echo "# cycle $i: ring pages live $(live_pages), was $pages"; return 1; }
	done
	sed 's/^/# /' $D/state
	[ "$(($(hv_state rescinds) - before_rescinds))" = $CYCLES ] ||
		{ echo "# expected $CYCLES rescinds"; return 1; }
	[ "$(hv_state rejected)" = 0 ] || { echo "# messages rejected"; return 1; }
	[ "$(leaked_pages)" = 0 ] || { echo "# ring pages leaked"; return 1; }
	if dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace'; then
		return 1
	fi
}

bus_still_works() {
	rmmod_clean || { echo "# no clean unload"; return 1; }
	insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 all_open || { cat $D/channels | sed 's/^/# /'; return 1; }
	sed 's/^/# /' $D/state
}

host_shutdown_request() {
	rig_wait_host_shutdown
}

guest() {
	rig_poweroff_hook
	run_test rescind_cycles rescind_cycles
	run_test bus_still_works bus_still_works
	run_test host_shutdown_request host_shutdown_request
}
