# _vmbus_rescind_stock_guest: not a scenario of its own; the L2 side of
# vmbus_rescind with the reference kernel (Linux's own hv_vmbus and
# hv_utils): hvhost removes the heartbeat device (the guest asks with
# rig_request "hvctl ...") and Linux unbinds hv_utils and drops
# the device from /sys/bus/vmbus; hvhost adds it back and Linux binds it
# again. Two cycles, then the guest waits for hvhost's shutdown request.
# helper

HEARTBEAT='{57164f39-9115-4e78-ab55-382f3bd5422d}'

# The heartbeat device's sysfs directory (empty if none).
heartbeat_dev() {
	local d
	for d in /sys/bus/vmbus/devices/*; do
		[ "$(cat "$d/class_id" 2>/dev/null)" = "$HEARTBEAT" ] && echo "$d" && return
	done
}

heartbeat_bound() {
	local d
	d=$(heartbeat_dev)
	[ -n "$d" ] && [ "$(basename "$(readlink "$d/driver")")" = hv_utils ]
}

heartbeat_gone() {
	[ -z "$(heartbeat_dev)" ]
}

rescind_cycles() {
	local i relid
	wait_for 60 heartbeat_bound || { ls -l /sys/bus/vmbus/devices/ | sed 's/^/# /'; return 1; }
	for i in 1 2; do
		relid=$(cat "$(heartbeat_dev)/id")
		rig_request hvctl remove heartbeat ||
			{ echo "# cycle $i: remove heartbeat: $RIG_ANSWER"; return 1; }
		wait_for 60 heartbeat_gone || { echo "# cycle $i: relid $relid still on the bus"; return 1; }
		rig_request hvctl add heartbeat ||
			{ echo "# cycle $i: add heartbeat: $RIG_ANSWER"; return 1; }
		wait_for 60 heartbeat_bound || { echo "# cycle $i: heartbeat not back"; return 1; }
		echo "# cycle $i: relid $relid removed; back as relid $(cat "$(heartbeat_dev)/id"), bound to hv_utils"
	done
	if dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace'; then
		return 1
	fi
}

host_shutdown_request() {
	# Heartbeats on the last channel for a few seconds before the end.
	sleep 4
	rig_wait_host_shutdown
}

guest() {
	rig_poweroff_hook
	run_test rescind_cycles rescind_cycles
	run_test host_shutdown_request host_shutdown_request
}
