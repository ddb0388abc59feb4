# _vmbus_hostile_guest: not a scenario of its own; the L2 side of
# vmbus_hostile: hv_guest's VMBus client under hvhost with every VMBus fault
# injected once (a short OFFERCHANNEL, a GPADL_CREATED for a GPADL never
# sent, a corrupt write index in the first opened channel's host-to-guest
# ring). Each must be rejected, logged and counted by why (debugfs
# vmbus/state), and the bus must stay
# usable: connected, the real offers bound, a clean unload, and a reload
# (no faults left) with all three channels open.
# helper

vmbus_log() {
	dmesg | grep 'hv_guest: vmbus:\|hv_guest: .*: IC version' | sed 's/^/# /'
}

hostile_first_load() {
	local D=/sys/kernel/debug/hv_guest/vmbus S=/sys/kernel/debug/hv_guest/vmbus/state
	insmod $HV_GUEST_KO || { echo "Bail out! insmod failed"; return 1; }
	sleep 3
	vmbus_log
	sed 's/^/# /' $S
	cp $D/channels /tmp/channels
	sed 's/^/# /' /tmp/channels
	# Each fault is counted once, by why it was rejected.
	rig_check malformed_offer_rejected [ "$(kv $S - rejected_malformed)" = 1 ]
	rig_check bogus_gpadl_reply_rejected [ "$(kv $S - rejected_unexpected)" = 1 ]
	# The corrupt index is seen only if the guest reads the ring before the
	# host's next packet overwrites it; then that channel counts an error
	# and stops, and no other channel does.
	if grep -qv ' errors=0 ' /tmp/channels; then
		rig_check corrupt_ring_handled sh -c \
			"[ \$(grep -cv ' errors=0 ' /tmp/channels) = 1 ] && grep -v ' errors=0 ' /tmp/channels | grep -q ' state=Broken '"
	else
		rig_ok "corrupt_ring_handled # SKIP the host's next packet repaired the index before the guest read it"
	fi
	connected() {
		[ "$(kv $S - phase)" = Connected ] && [ "$(kv $S - channels)" = 3 ] &&
			[ "$(grep -c ' driver=\(heartbeat\|shutdown\|timesync\) ' /tmp/channels)" = 3 ]
	}
	rig_check still_connected_with_the_real_offers connected
	unload_clean() { rmmod_clean && [ ! -e /sys/kernel/debug/hv_guest ]; }
	rig_check unload_clean unload_clean
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hostile_first_load hostile_first_load
	# The faults are spent: a reload must see a normal bus.
	run_test reload_after_faults env HV_GUEST_VMBUS_VERSION=6.0 \
		HV_GUEST_VMBUS_DEVICES="heartbeat shutdown timesync" HV_GUEST_VMBUS_CYCLES=2 \
		$TESTS/hv_guest_vmbus
}
