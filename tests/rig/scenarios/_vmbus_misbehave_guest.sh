# _vmbus_misbehave_guest: not a scenario of its own; the L2 side of
# vmbus_hostile's reverse direction: a guest that breaks the VMBus protocol
# on purpose (hv_guest's debugfs vmbus/misbehave) against hvhost. Every
# command must get the refusal the protocol prescribes (the write fails
# otherwise); afterwards the heartbeat channel still works, the module
# unloads cleanly and loads again with all three channels open (the
# channel hvhost closed for its corrupt ring opens again), and the guest
# waits for hvhost's shutdown request.
# helper

D=/sys/kernel/debug/hv_guest/vmbus

beats() {
	kv $D/ic service=heartbeat beats
}

beats_past() {
	[ "$(beats)" -gt "$1" ]
}

all_open() {
	[ "$(grep -c ' state=Open ' $D/channels)" = 3 ]
}

misbehave() {
	echo "$1" >$D/misbehave || { echo "# '$1' failed (EPROTO: the host accepted it)"; return 1; }
	sed 's/^/# /' $D/misbehave
}

load() {
	insmod $HV_GUEST_SELFTEST_KO || return 1
	wait_for 60 all_open || { sed 's/^/# /' $D/channels; return 1; }
}

heartbeat_survives() {
	local b
	b=$(beats)
	sleep 1
	wait_for 30 beats_past "$b" || { echo "# no heartbeat after the misbehaviour"; return 1; }
	echo "# heartbeats $b -> $(beats)"
}

reload_clean() {
	rmmod_clean || return 1
	load
}

host_shutdown_request() {
	rig_wait_host_shutdown
}

guest() {
	rig_poweroff_hook
	echo "# rig: nproc=$(nproc)"
	run_test load load
	run_test garbage_messages misbehave garbage
	run_test gpadl_outside_ram misbehave bad-gpadl
	run_test open_unoffered_relid misbehave open-unknown
	run_test corrupt_send_ring misbehave "corrupt-ring timesync"
	run_test heartbeat_survives heartbeat_survives
	run_test reload_clean reload_clean
	run_test host_shutdown_request host_shutdown_request
}
