# _stock_guest: not a scenario of its own; the L2 side of
# stock_guest_detects_hvhost, run by the reference kernel (Linux's own
# Hyper-V support) under hvhost. Reports what the kernel chose (clock
# source, clock event devices), lets the clock run through a few timer
# sleeps, and ends with its wall clock for the host to compare.
# helper
guest_clock_sleep() {
	t0=$(date +%s)
	sleep 3
	t1=$(date +%s)
	echo "# slept 3 s by the guest clock: date advanced $((t1 - t0)) s"
	[ $((t1 - t0)) -ge 3 ] && [ $((t1 - t0)) -le 4 ]
}

guest() {
	echo "# rig: nproc=$(nproc)"
	echo "# rig: clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	for d in /sys/devices/system/clockevents/clockevent*; do
		echo "# rig: $(basename "$d")=$(cat "$d/current_device")"
	done
	run_test guest_clock_sleep guest_clock_sleep
	echo "# rig: epoch=$(date +%s)"
}
