# _uart_stream_guest: not a scenario of its own; the guest side of
# uart_stream_hvhost: the phases of _uart_stream_lib on ttyS1, each a
# result; one that fails or stalls shows the port as the guest and hvhost
# see it.
# helper
. /rig/scenarios/_uart_stream_lib.sh

UART=/dev/ttyS1
# A phase takes a few seconds; this is for a stall, not for speed.
UART_PHASE_LIMIT=60

# uart_views: the guest's count of the port's interrupts, and hvhost's
# registers and counters of the UART.
uart_views() {
	echo "# guest: $(grep '^ *3:' /proc/interrupts | tr -s ' ')"
	# The whole answer is in L1's log of requests, which L1 prints.
	rig_request hvctl serial >/dev/null
}

uart_stream_phase() {
	local name=$1 op=$2 n=$3 out
	if out=$(HVSTREAM_CHECK=1 timeout -s KILL $UART_PHASE_LIMIT hvstream client "$op" "$n" tty:$UART 2>&1); then
		rig_ok "$name"
		return 0
	fi
	rig_not_ok "$name # ${out:-no answer within $UART_PHASE_LIMIT s}"
	uart_views
	sleep 5
	echo "# 5 s later:"
	uart_views
	return 1
}

uart_stream_guest() {
	local rounds i=0 op n
	rounds=$(rig_param rounds $UART_STREAM_ROUNDS)
	[ -e $UART ] || { echo "# no $UART"; return 1; }
	# Held open for the whole run, as a terminal would be: the port keeps
	# its settings and interrupt between the phases.
	exec 7<>$UART
	# Not a pipe into the loop: the results are counted in this shell.
	uart_stream_phases "$rounds" >/tmp/phases
	while read -r op n; do
		i=$((i + 1))
		uart_stream_phase "$i.$op" "$op" "$n" || return 1
	done </tmp/phases
}

guest() {
	run_test uart_stream uart_stream_guest
}
