# _stock_guest: not a scenario of its own; the L2 side of
# stock_guest_detects_hvhost, run by the reference kernel (Linux's own
# Hyper-V support) under hvhost. Reports what the kernel chose (clock
# source, clock event devices), lets the clock run through a few timer
# sleeps, and marks its clock (uptime and wall clock) at the start and at
# the end, live on the debug console, for L1 to compare with its own.
# helper
# A 3 s sleep, measured on the guest's own monotonic clock (its chosen
# clock source, read without forking): at least 3 s (no early timer), and
# well under 8 s (no lost timer; the slack is for a busy rig machine).
guest_clock_sleep() {
	local u0 u1 rest
	read -r u0 rest </proc/uptime
	sleep 3
	read -r u1 rest </proc/uptime
	awk -v a="$u0" -v b="$u1" 'BEGIN {
		printf "# slept 3 s: the guest clock advanced %.2f s (allowed 3.00..8.00)\n", b - a
		exit !(b - a >= 3 && b - a < 8)
	}'
}

# clock_mark N: the guest's uptime (its clock source) and wall clock, sent
# at once on the debug console so that L1 can stamp its arrival.
clock_mark() {
	rig_mark "clock mark $1 $(cut -d' ' -f1 /proc/uptime) $(date +%s)"
}

guest() {
	clock_mark 1
	echo "# rig: nproc=$(nproc)"
	echo "# rig: clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	for d in /sys/devices/system/clockevents/clockevent*; do
		echo "# rig: $(basename "$d")=$(cat "$d/current_device")"
	done
	run_test guest_clock_sleep guest_clock_sleep
	sleep 2
	clock_mark 2
}
