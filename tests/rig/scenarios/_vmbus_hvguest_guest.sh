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

# beats_above N: the heartbeat driver has answered more than N heartbeats.
beats_above() {
	[ "$(kv /sys/kernel/debug/hv_guest/vmbus/ic service=heartbeat beats)" -gt "$1" ]
}

# The channel devices on the auxiliary bus: hv_guest.<class>.<relid> under
# the faux device hv_guest_vmbus, each bound to its driver; unbinding the
# heartbeat driver in sysfs closes its channel, binding it again reopens
# it and heartbeats resume.
auxiliary_devices() {
	local A=/sys/bus/auxiliary D=/sys/kernel/debug/hv_guest/vmbus name dev relid b
	insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	sleep 2
	for name in heartbeat shutdown timesync; do
		relid=$(kv $D/channels driver=$name relid)
		dev=$A/devices/hv_guest.$name.$relid
		echo "# $(basename "$dev") -> $(basename "$(readlink "$dev/driver")") parent $(basename "$(readlink -f "$dev/..")")"
		[ "$(basename "$(readlink "$dev/driver")")" = "hv_guest_$name.hv_guest_$name" ] || return 1
		[ "$(basename "$(readlink -f "$dev/..")")" = hv_guest_vmbus ] || return 1
	done
	relid=$(kv $D/channels driver=heartbeat relid)
	echo "hv_guest.heartbeat.$relid" >$A/drivers/hv_guest_heartbeat.hv_guest_heartbeat/unbind || return 1
	echo "# unbound: state=$(kv $D/channels relid=$relid state) driver=$(kv $D/channels relid=$relid driver)"
	[ "$(kv $D/channels relid=$relid state)" = Closed ] || return 1
	echo "hv_guest.heartbeat.$relid" >$A/drivers/hv_guest_heartbeat.hv_guest_heartbeat/bind || return 1
	[ "$(kv $D/channels relid=$relid state)" = Open ] || return 1
	b=$(kv $D/ic service=heartbeat beats)
	wait_for 30 beats_above "$b" ||
		{ echo "# no heartbeat after rebinding"; return 1; }
	echo "# heartbeat unbound (channel closed), bound again (open), beating"
	rmmod hv_guest || return 1
	[ ! -e $A/devices/hv_guest.heartbeat.$relid ] && [ ! -e $A/drivers/hv_guest_heartbeat.hv_guest_heartbeat ] ||
		{ echo "# devices or drivers left on the auxiliary bus"; return 1; }
}

# Interrupts CPU 1 took on its SINT 2 vector (hv_guest's per-CPU irq).
sint2_cpu1() {
	local irq
	irq=$(kv /sys/kernel/debug/hv_guest/synic "cpu=1 sint=2" irq)
	awk -v irq="$irq:" '$1 == irq { print $3 }' /proc/interrupts
}

# MODIFYCHANNEL: the heartbeat channel's events move to CPU 1; bad
# requests are refused.
modify_channel() {
	local D=/sys/kernel/debug/hv_guest/vmbus relid before after
	insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	sleep 2
	relid=$(kv $D/channels driver=heartbeat relid)
	[ -n "$relid" ] || { echo "# no heartbeat channel"; return 1; }
	if echo "$relid 7" >$D/retarget 2>/dev/null; then echo "# CPU 7 accepted"; return 1; fi
	if echo "2047 1" >$D/retarget 2>/dev/null; then echo "# relid 2047 accepted"; return 1; fi
	before=$(sint2_cpu1)
	echo "$relid 1" >$D/retarget || { echo "# retarget failed"; return 1; }
	echo "# target_vp=$(kv $D/channels relid=$relid target_vp)"
	sleep 4
	after=$(sint2_cpu1)
	echo "# relid $relid moved to CPU 1: its SINT 2 interrupts $before -> $after"
	[ "$after" -ge $((before + 2)) ]
}

host_shutdown_request() {
	cat /sys/kernel/debug/hv_guest/vmbus/channels | sed 's/^/# /'
	if rig_wait_host_shutdown; then
		dmesg | grep 'shutdown:' | sed 's/^/# /'
		rig_ok "host_shutdown_request"
	else
		rig_not_ok "host_shutdown_request # no request in 150 s"
		return 1
	fi
}

guest() {
	rig_poweroff_hook
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_vmbus env HV_GUEST_VMBUS_VERSION=6.0 \
		HV_GUEST_VMBUS_DEVICES="heartbeat shutdown timesync" HV_GUEST_VMBUS_WAIT_IC=1 \
		HV_GUEST_VMBUS_CYCLES=20 $TESTS/hv_guest_vmbus
	run_test auxiliary_devices auxiliary_devices
	run_test modify_channel modify_channel
	run_test host_shutdown_request host_shutdown_request
}
