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

misbehave() {
	echo "$1" >$D/misbehave || { echo "# '$1' failed (EPROTO: the host accepted it)"; return 1; }
	sed 's/^/# /' $D/misbehave
}

reload_clean() {
	rmmod_clean || return 1
	hv_load_selftest
}

host_shutdown_request() {
	rig_wait_host_shutdown
}

guest() {
	rig_poweroff_hook
	echo "# rig: nproc=$(nproc)"
	run_test load hv_load_selftest
	run_test garbage_messages misbehave garbage
	run_test gpadl_outside_ram misbehave bad-gpadl
	run_test open_unoffered_relid misbehave open-unknown
	run_test corrupt_send_ring misbehave "corrupt-ring timesync"
	run_test heartbeat_survives hv_heartbeat_survives
	run_test reload_clean reload_clean
	run_test host_shutdown_request host_shutdown_request
}
