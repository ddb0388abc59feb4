# _vmbus_stock_guest: not a scenario of its own; the L2 side of
# vmbus_stock_guest_hvhost, run by the reference kernel (Linux's own
# hv_vmbus and hv_utils) under hvhost. Checks what Linux says about the
# VMBus connection and the integration services, the devices on the bus,
# then announces it is ready and waits for hvhost's shutdown request.
#
# Linux answers a shutdown request with orderly_poweroff(), which runs
# /proc/sys/kernel/poweroff_cmd. The rig's init is a shell that ignores
# busybox poweroff's signal, so the command is pointed at a script that
# notes the request; the scenario then ends and init powers off as always.
# helper

vmbus_version_6_0() {
	dmesg | grep -E 'hv_vmbus: (Vmbus version|Hyper-V Host)' | sed 's/^/# /'
	dmesg | grep -q 'hv_vmbus: Vmbus version:6\.0'
}

ic_lines() {
	dmesg | grep -q "hv_utils: Heartbeat IC version" &&
		dmesg | grep -q "hv_utils: Shutdown IC version" &&
		dmesg | grep -q "hv_utils: TimeSync IC version"
}

ic_versions() {
	wait_for 60 ic_lines
	dmesg | grep 'hv_utils:' | sed 's/^/# /'
	dmesg | grep -q "hv_utils: Heartbeat IC version 3\.0" &&
		dmesg | grep -q "hv_utils: Shutdown IC version 3\.2" &&
		dmesg | grep -q "hv_utils: TimeSync IC version 4\.0"
}

# The three utility devices, each bound to hv_utils.
devices_bound() {
	local d class n=0 bound=0
	for d in /sys/bus/vmbus/devices/*; do
		[ -e "$d/class_id" ] || continue
		class=$(cat "$d/class_id")
		echo "# $(basename "$d") class $class driver $(basename "$(readlink "$d/driver")")"
		case $class in
		"{57164f39-9115-4e78-ab55-382f3bd5422d}" | "{0e0b6031-5213-4934-818b-38d90ced39db}" | \
			"{9527e630-d0ae-497b-adce-e80ab0175caf}") n=$((n + 1)) ;;
		esac
		[ "$(basename "$(readlink "$d/driver")")" = hv_utils ] && bound=$((bound + 1))
	done
	echo "# $n utility devices, $bound bound to hv_utils"
	[ "$n" = 3 ] && [ "$bound" = 3 ]
}

# HYP (Hyper-V callback) interrupts taken by CPU 1.
hyp_cpu1() {
	awk '$1 == "HYP:" { print $3 }' /proc/interrupts
}

# MODIFYCHANNEL as Linux sends it: writing a channel's sysfs cpu moves its
# interrupts (Linux waits for hvhost's MODIFYCHANNEL_RESPONSE at 5.3 and
# later); the heartbeat's events then arrive on CPU 1.
modify_channel() {
	local d ch before after
	for d in /sys/bus/vmbus/devices/*; do
		[ "$(cat "$d/class_id")" = "{57164f39-9115-4e78-ab55-382f3bd5422d}" ] && break
	done
	ch=$d/channels/$(cat "$d/id")
	echo "# heartbeat channel $(cat "$d/id") interrupts CPU $(cat "$ch/cpu")"
	echo 1 >"$ch/cpu" || { echo "# writing 1 to $ch/cpu failed"; return 1; }
	[ "$(cat "$ch/cpu")" = 1 ] || return 1
	before=$(hyp_cpu1)
	sleep 4
	after=$(hyp_cpu1)
	echo "# HYP interrupts on CPU 1: $before -> $after"
	[ "$after" -ge $((before + 2)) ]
}

# Announces readiness on the KTAP port (outside the document, which only
# leaves when guest() ends) and waits for hvhost's request.
host_shutdown_request() {
	rig_wait_host_shutdown
}

guest() {
	rig_poweroff_hook
	echo "# rig: nproc=$(nproc)"
	run_test vmbus_version_6_0 vmbus_version_6_0
	run_test ic_versions ic_versions
	run_test devices_bound devices_bound
	run_test modify_channel modify_channel
	run_test host_shutdown_request host_shutdown_request
}
