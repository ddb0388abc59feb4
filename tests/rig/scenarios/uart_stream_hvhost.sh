# uart_stream_hvhost: hvhost's second 16550 (--serial2, joined to a Unix
# socket in L1) carries a byte stream both ways, intact, with no byte lost
# and no stall. The guest (_uart_stream_guest, 2 vCPUs, the rig kernel's
# 8250 ttyS1) runs ROUNDS rounds against L1's hvstream server (bench/
# hvstream.c with HVSTREAM_CHECK=1: each byte compared with the one sent):
# 16 KiB guest to host and the server's byte back, 16 KiB host to guest
# and the guest's byte back, 20 one-byte round trips. Each exchange has 60
# s (it takes a few); one that stalls is reported with the guest's view
# of the port (/proc/tty/driver/serial, /proc/interrupts) and hvhost's
# (hvctl serial: registers, FIFO, counters). L1 then checks the server's
# lines (every phase, no byte differing) and hvhost's exit report: the
# UART took exactly the bytes the guest sent, queued exactly those L1
# sent, and none is left in its FIFO. RIG_L1_APPEND=rig.rounds=N for a
# longer run.
# timeout: 600
. /rig/scenarios/_uart_stream_lib.sh

uart_stream_run() {
	local rounds dir=/tmp/us line
	rounds=$(rig_param rounds $UART_STREAM_ROUNDS)
	mkdir -p $dir
	: >$dir/server.out
	HVSTREAM_CHECK=1 hvstream server unix-listen:$dir/com2 >$dir/server.out 2>$dir/server.err &
	local server=$!
	wait_for 10 [ -S $dir/com2 ] || { echo "# the server did not listen"; return 1; }
	HVHOST_EXTRA_CMDLINE="rig.rounds=$rounds" \
		hvhost_start $((120 + rounds * 40)) _uart_stream_guest --cpus 2 --memory 512 \
		--serial2 unix:$dir/com2 --api-socket $HVHOST_API
	hvhost_wait
	kill $server 2>/dev/null
	wait $server 2>/dev/null
	hvhost_verdict_or_bail "the guest"
	hvhost_guest_ktap guest_exchanges
	sed 's/^/# server: /' $dir/server.err
	sed 's/^/# request: /' /tmp/hvhost.ctl
	grep '^serial port=com2' /tmp/hvhost.report | sed 's/^/# /'
	rig_check hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	# Every phase the guest ran, in order, whole.
	local want=$(uart_stream_phases "$rounds" | wc -l) got
	got=$(grep -c '^op=' $dir/server.out)
	rig_check "server_saw_every_phase # $got of $want" [ "$got" = "$want" ]
	uart_stream_phases "$rounds" | awk '{ print "op=" $1 " bytes=" $2 }' >$dir/want
	sed -n 's/^\(op=[a-z]* bytes=[0-9]*\) ns=[0-9]* bad=0$/\1/p' $dir/server.out >$dir/got
	if cmp -s $dir/want $dir/got; then rig_ok "server_bytes_intact"; else
		rig_not_ok "server_bytes_intact"
		diff $dir/want $dir/server.out | head -5 | sed 's/^/# /'
	fi
	# What crossed the UART: the guest's headers and bytes, and L1's.
	local tx rx
	tx=$(uart_stream_phases "$rounds" | awk '{
		h = length($1 " " $2) + 1
		if ($1 == "sink") n += h + $2; else if ($1 == "source") n += h + 1; else n += h + $2
	} END { print n + 0 }')
	rx=$(uart_stream_phases "$rounds" | awk '{
		if ($1 == "sink") n += 1; else n += $2
	} END { print n + 0 }')
	rig_check "uart_took_every_byte_once" report_is "serial port=com2" tx_bytes "$tx" rx_queued "$rx" \
		rx_fifo 0 rx_pending 0
}

guest() {
	run_test uart_stream_hvhost uart_stream_run
}
