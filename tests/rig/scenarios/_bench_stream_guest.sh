# _bench_stream_guest: not a scenario of its own; the guest side of
# bench_stream. The kernel command line names the configuration
# (rig.bench=uart_hvhost|hvsock|hvsock_accept|hvguest|virtio_vsock|uart_qemu): the guest finds
# its stream (ttyS1, or AF_VSOCK to the host's port), measures the raw
# port-I/O exit once (bench/pio_exit.c: the floor the round trip is
# compared with), and runs the three phases against L1's hvstream server
# (bench/hvstream.c): guest to host, host to guest, one-byte round trips,
# announcing each on the debug console as it starts and ends (L1 samples
# KVM's exit counter at those marks and times the phase on its clock).
# Per phase it reports "# bench stream config=C phase=P bytes=N irqs=N"
# (the stream's own interrupts meanwhile, from /proc/interrupts), and the
# round trips' cost in TSC cycles.
# helper
guest() {
	run_test bench_stream_phases bench_stream_phases
}

. /rig/scenarios/_bench_stream_lib.sh

bench_config() { sed -n 's/.*rig\.bench=\([a-z0-9_]*\).*/\1/p' /proc/cmdline; }

stream_irqs() {
	grep -E "$IRQ_PAT" /proc/interrupts |
		awk '{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }'
}

# One phase: OP (the server's side: sink, source, echo) with N bytes. On
# vsock-accept the client listens before the phase's mark, which is when
# L1 connects in.
bench_phase() {
	local name=$1 op=$2 n=$3 i0 i1 out pid
	case $EP in
	vsock-accept:*)
		rm -f /tmp/hvstream.ready
		HVSTREAM_READY=/tmp/hvstream.ready hvstream client "$op" "$n" "$EP" >/tmp/hvstream.out 2>&1 &
		pid=$!
		wait_for 30 [ -e /tmp/hvstream.ready ] || { echo "# $name: the client did not listen"; kill $pid; return 1; }
		rig_mark "phase $name start"
		i0=$(stream_irqs)
		wait $pid || { echo "# $name: $(cat /tmp/hvstream.out)"; return 1; }
		out=$(cat /tmp/hvstream.out)
		;;
	*)
		rig_mark "phase $name start"
		i0=$(stream_irqs)
		out=$(hvstream client "$op" "$n" "$EP" 2>&1) || { echo "# $name: $out"; return 1; }
		;;
	esac
	i1=$(stream_irqs)
	rig_mark "phase $name end"
	echo "# bench stream config=$CFG phase=$name bytes=$n irqs=$((i1 - i0)) $out"
}

bench_stream_phases() {
	local pio
	CFG=$(bench_config)
	bench_stream_config "$CFG" || { echo "# config $CFG: unknown"; return 1; }
	case $CFG in
	# hv_guest's transport, registered once the module is up.
	hvguest)
		insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
		registered() { [ -e /sys/kernel/debug/hv_guest/vmbus/hvsock ]; }
		wait_for 60 registered || { echo "# hv_guest registered no transport"; return 1; }
		;;
	# virtio-vsock is a module in the rig kernel (rig.config).
	virtio_vsock) insmod /lib/modules/extra/vmw_vsock_virtio_transport.ko || return 1 ;;
	esac
	case $EP in
	tty:*)
		[ -e "${EP#tty:}" ] || { echo "# no ${EP#tty:}"; return 1; }
		# Held open for the whole run: a serial port has its interrupt
		# (and its /proc/interrupts line) only while it is open.
		exec 7<>"${EP#tty:}"
		;;
	esac
	pio=$($TESTS/pio_exit 5000 0xe0 | sed -n 's/.*: \([0-9]*\) cycles per exiting OUT.*/\1/p')
	echo "# bench stream config=$CFG pio_exit_cycles=$pio endpoint=$EP $(nproc) CPUs"
	grep -E "$IRQ_PAT" /proc/interrupts | tr -s ' ' | sed 's/^/# irq lines: /'
	bench_phase guest_to_host sink "$BYTES" || return 1
	bench_phase host_to_guest source "$BYTES" || return 1
	bench_phase round_trip echo "$RTTS" || return 1
}
