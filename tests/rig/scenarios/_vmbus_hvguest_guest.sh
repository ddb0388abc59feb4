# _vmbus_hvguest_guest: not a scenario of its own; the L2 side of
# vmbus_hvguest_hvhost. hv_guest's VMBus client under hvhost: connected at
# 6.0, heartbeat/shutdown/timesync bound and open, IC traffic (heartbeats
# answered, the host's SYNC time sample applied), 20 load/unload cycles
# with the channels open (each closes them and completes UNLOAD); then the
# module stays loaded and the guest waits for hvhost's shutdown request,
# which hv_guest's shutdown driver turns into orderly_poweroff().
#
# orderly_poweroff() runs /proc/sys/kernel/poweroff_cmd; the rig's init is
# a shell that ignores busybox poweroff's signal, so the command is pointed
# at a script that notes the request (as in _vmbus_stock_guest).
# helper

wait_for() {
	local n=$1
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 1
		n=$((n - 1))
	done
	"$@"
}

shutdown_requested() {
	[ -e /tmp/host-shutdown ]
}

host_shutdown_request() {
	echo "TAP version 13"
	echo "1..1"
	insmod $HV_GUEST_KO || { echo "not ok 1 host_shutdown_request # insmod failed"; return 1; }
	cat /sys/kernel/debug/hv_guest/vmbus/channels | sed 's/^/# /'
	echo "# rig: vmbus ready, waiting for the host's shutdown request" | rig-debugcon $KTAP_PORT
	if wait_for 150 shutdown_requested; then
		dmesg | grep 'shutdown:' | sed 's/^/# /'
		echo "ok 1 host_shutdown_request"
	else
		echo "not ok 1 host_shutdown_request # no request in 150 s"
		return 1
	fi
}

guest() {
	cat >/tmp/host-poweroff <<'SCRIPT'
#!/bin/sh
echo "rig: the host asked for a power-off" >/dev/console
: >/tmp/host-shutdown
SCRIPT
	chmod +x /tmp/host-poweroff
	echo /tmp/host-poweroff >/proc/sys/kernel/poweroff_cmd
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_vmbus env HV_GUEST_VMBUS_VERSION=6.0 \
		HV_GUEST_VMBUS_DEVICES="heartbeat shutdown timesync" HV_GUEST_VMBUS_WAIT_IC=1 \
		HV_GUEST_VMBUS_CYCLES=20 $TESTS/hv_guest_vmbus
	run_test host_shutdown_request host_shutdown_request
}
