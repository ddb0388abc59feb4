# bench_stream: byte streams between a guest program and a host program,
# paravirtual against emulated, all in one L1 on KVM, each guest with 2
# vCPUs and 512 MiB. Configurations, interleaved, 3 rounds:
#   uart_hvhost   hvhost's second 16550 (--serial2, a Unix socket in L1),
#                 the rig kernel's ttyS1: the emulated stream hvhost has
#   hvsock        hvhost --vsock, Linux's own hv_sock (the reference
#                 kernel), the host end on the relay's Unix socket
#   hvsock_accept the same, the other way round: the guest listens and
#                 L1 connects in (hvhost's CONNECT), so Linux sizes the
#                 rings from the listener's buffers, 204 KiB, not 24 KiB
#   hvguest       hvhost --vsock, hv_guest's own transport (the rig
#                 kernel with the production hv_guest.ko), same host end
#   virtio_vsock  QEMU's vhost-vsock, the rig kernel's virtio-vsock, the
#                 host end on L1's AF_VSOCK
#   uart_qemu     QEMU's second 16550 (a Unix socket chardev)
# Phases (bench/hvstream.c at both ends; _bench_stream_guest): guest to
# host and host to guest, 64 MiB on a socket, 256 KiB on a serial line
# (one exit per byte: the bench compares rates, bytes per L1 second), then
# one-byte round trips. Per configuration and phase: the rate measured by
# L1's server on L1's clock, KVM exits and the stream's interrupts per
# MiB; for the round trip its cost in the guest's TSC cycles, as a ratio
# to the raw port-I/O exit measured in the same guest. Per round, the
# rates as ratios to hvhost's 16550 and to virtio-vsock of the same round.
# run.py gives the medians. A benchmark (make bench), not a test: it fails
# only when a run does not complete.
# bench
# timeout: 5400
. /rig/scenarios/_bench_lib.sh
. /rig/scenarios/_bench_stream_lib.sh
QEMU_GUEST=_bench_stream_guest
# RIG_L1_APPEND="rig.rounds=N rig.configs=A,B" for other rounds or a
# subset of the configurations (ratios need uart_hvhost and virtio_vsock).
BENCH_STREAM_CONFIGS=$(rig_param configs uart_hvhost,hvsock,hvsock_accept,hvguest,virtio_vsock,uart_qemu | tr , ' ')
BENCH_STREAM_ROUNDS=$(rig_param rounds 3)
BENCH_STREAM_PHASES="guest_to_host host_to_guest round_trip"
BS=/tmp/bs

guest() {
	run_test bench_stream bench_stream_rounds
}

# server_start ENDPOINT: L1's hvstream server (SERVER_PID), its phase
# lines in $BS/server.out.
server_start() {
	: >$BS/server.out
	hvstream server "$1" >$BS/server.out 2>$BS/server.err &
	SERVER_PID=$!
	case $1 in
	unix-listen:*) wait_for 10 [ -S "${1#unix-listen:}" ] ;;
	*) sleep 1 ;;
	esac
}

# vmbus_counts CONFIG: for a configuration on hvhost's VMBus, hvhost's
# totals now (hvctl stats, the vmbus record): signals from the guest,
# packets read from its rings and written to them, looks for the next
# packet and those that found it, event flags to the guest, looks for room
# in the guest's ring and those that found it. Nothing for the others.
vmbus_counts() {
	case $1 in
	hvsock | hvsock_accept | hvguest) ;;
	*) return 0 ;;
	esac
	hvctl $HVHOST_API stats >$BS/stats 2>&1 || return 0
	local k v out=
	for k in signals packets_in packets_out looks looks_found notifications room_looks room_looks_found; do
		v=$(kv $BS/stats vmbus $k)
		[ -n "$v" ] || return 0
		out="$out $v"
	done
	echo $out
}

# bench_one CONFIG: one guest's run; a sample per phase, whose rate also
# goes to $BS/rate.CONFIG.PHASE for the round's ratios.
bench_one() {
	local cfg=$1 p e0 e1 line bytes irqs ns exits rest pio
	bench_stream_config "$cfg"
	case $cfg in
	uart_hvhost)
		server_start unix-listen:$BS/com2 || return 1
		HVHOST_EXTRA_CMDLINE=rig.bench=$cfg \
			hvhost_start 900 _bench_stream_guest --cpus 2 --memory 512 --serial2 unix:$BS/com2
		;;
	hvsock)
		server_start unix-listen:$BS/v.sock_$BENCH_STREAM_PORT || return 1
		HVHOST_KERNEL=/boot/ref-bzImage HVHOST_EXTRA_CMDLINE=rig.bench=$cfg \
			hvhost_start 900 _bench_stream_guest --cpus 2 --memory 512 --vsock $BS/v.sock \
			--api-socket $HVHOST_API
		;;
	hvsock_accept)
		# L1 connects in per phase (below), once the guest listens.
		: >$BS/server.out
		: >$BS/server.err
		HVHOST_KERNEL=/boot/ref-bzImage HVHOST_EXTRA_CMDLINE=rig.bench=$cfg \
			hvhost_start 900 _bench_stream_guest --cpus 2 --memory 512 --vsock $BS/v.sock \
			--api-socket $HVHOST_API
		;;
	hvguest)
		server_start unix-listen:$BS/v.sock_$BENCH_STREAM_PORT || return 1
		HVHOST_EXTRA_CMDLINE=rig.bench=$cfg \
			hvhost_start 900 _bench_stream_guest --cpus 2 --memory 512 --vsock $BS/v.sock \
			--api-socket $HVHOST_API
		;;
	virtio_vsock)
		server_start vsock-listen:$BENCH_STREAM_PORT
		qemu_start 900 $cfg -device vhost-vsock-pci,guest-cid=3
		;;
	uart_qemu)
		server_start unix-listen:$BS/com2 || return 1
		qemu_start 900 $cfg -chardev socket,id=com2,path=$BS/com2 -serial chardev:com2
		;;
	esac
	: >$BS/exits.$cfg
	: >$BS/vmbus.$cfg
	for p in $BENCH_STREAM_PHASES; do
		hvhost_wait_mark "# rig: phase $p start" 600 || break
		e0=$(vm_exits)
		v0=$(vmbus_counts $cfg)
		if [ "$cfg" = hvsock_accept ]; then
			: >$BS/server.out.$p
			hvstream server hybrid:$BS/v.sock:$BENCH_STREAM_PORT >$BS/server.out.$p 2>>$BS/server.err &
			SERVER_PID=$!
		fi
		hvhost_wait_mark "# rig: phase $p end" 600 || break
		if [ "$cfg" = hvsock_accept ]; then
			wait $SERVER_PID || sed 's/^/# server: /' $BS/server.err
			cat $BS/server.out.$p >>$BS/server.out
		fi
		e1=$(vm_exits)
		v1=$(vmbus_counts $cfg)
		echo "$p $((e1 - e0))" >>$BS/exits.$cfg
		[ -n "$v0" ] && [ -n "$v1" ] && echo "$p $v0 $v1" >>$BS/vmbus.$cfg
	done
	hvhost_wait
	kill $SERVER_PID 2>/dev/null
	wait $SERVER_PID 2>/dev/null
	grep '# bench stream config=.* pio_exit\|# irq lines' /tmp/hvhost.ktap | sed 's/^ *//'
	sed 's/^/# server: /' $BS/server.out
	pio=$(sed -n "s/.*# bench stream config=$cfg pio_exit_cycles=\([0-9]*\).*/\1/p" /tmp/hvhost.ktap)
	for p in $BENCH_STREAM_PHASES; do
		line=$(grep "# bench stream config=$cfg phase=$p " /tmp/hvhost.ktap) ||
			{ echo "# $cfg: no result for $p (run incomplete)"; tail -5 /tmp/hvhost.console | sed 's/^/# console: /'; return 1; }
		bytes=$(echo "$line" | sed 's/.* bytes=\([0-9]*\).*/\1/')
		irqs=$(echo "$line" | sed 's/.* irqs=\([0-9]*\).*/\1/')
		exits=$(awk -v p="$p" '$1 == p { print $2 }' $BS/exits.$cfg)
		[ -n "$exits" ] || { echo "# $cfg: no exit count for $p"; return 1; }
		case $p in
		round_trip)
			rest=$(echo "$line" | sed -n 's/.* cycles_per_rtt=\([0-9]*\).*/\1/p')
			[ -n "$rest" ] && [ -n "$pio" ] || { echo "# $cfg: no round-trip cost"; return 1; }
			echo "$rest" >$BS/rtt.$cfg
			awk -v c="$cfg" -v r="$rest" -v pio="$pio" -v e="$exits" -v q="$irqs" -v n="$bytes" 'BEGIN {
				printf "# sample stream_rtt config=%s cycles_per_rtt=%d vs_pio_exit=%.2f exits_per_rtt=%.2f irqs_per_rtt=%.2f\n",
					c, r, r / pio, e / n, q / n }'
			;;
		*)
			case $p in
			guest_to_host) ns=$(sed -n "s/^op=sink bytes=$bytes ns=\([0-9]*\)/\1/p" $BS/server.out) ;;
			host_to_guest) ns=$(sed -n "s/^op=source bytes=$bytes ns=\([0-9]*\)/\1/p" $BS/server.out) ;;
			esac
			[ -n "$ns" ] || { echo "# $cfg: the server timed no $p"; return 1; }
			awk -v b="$bytes" -v ns="$ns" 'BEGIN { printf "%.6f\n", b / 1048576 / (ns / 1e9) }' >$BS/rate.$cfg.$p
			awk -v c="$cfg" -v p="$p" -v r="$(cat $BS/rate.$cfg.$p)" -v e="$exits" -v q="$irqs" -v b="$bytes" 'BEGIN {
				mib = b / 1048576
				printf "# sample stream config=%s phase=%s mib_per_s=%.4f exits_per_mib=%.1f irqs_per_mib=%.1f\n",
					c, p, r, e / mib, q / mib }'
			# hvhost's VMBus counts over the phase, per packet moved
			# either way (the data's and the few the other way): the
			# guest's signals (notifications to the host) and hvhost's
			# event flags (to the guest); and the share of looks for the
			# guest's next packet that found it.
			awk -v c="$cfg" -v p="$p" '$1 == p {
				sig = $10 - $2; pin = $11 - $3; pout = $12 - $4; looks = $13 - $5; found = $14 - $6
				irq = $15 - $7; rlooks = $16 - $8; rfound = $17 - $9
				n = pin + pout
				printf "# sample stream_vmbus config=%s phase=%s packets_in=%d packets_out=%d signals_per_packet=%.4f interrupts_per_packet=%.4f looks=%d looks_found=%.3f room_looks=%d room_looks_found=%.3f\n",
					c, p, pin, pout, n ? sig / n : 0, n ? irq / n : 0, looks, looks ? found / looks : 0,
					rlooks, rlooks ? rfound / rlooks : 0 }' $BS/vmbus.$cfg
			;;
		esac
	done
}

bench_stream_rounds() {
	local round cfg p failed=
	rm -rf $BS
	mkdir -p $BS
	for round in $(seq 1 $BENCH_STREAM_ROUNDS); do
		rm -f $BS/rate.* $BS/rtt.*
		for cfg in $BENCH_STREAM_CONFIGS; do
			echo "# round $round: $cfg"
			bench_one "$cfg" || failed=1
		done
		for cfg in $BENCH_STREAM_CONFIGS; do
			for p in guest_to_host host_to_guest; do
				# A ratio needs both rates of this round: a run of a
				# subset (rig.configs) prints those it has.
				[ -s $BS/rate.$cfg.$p ] || continue
				awk -v c="$cfg" -v p="$p" -v x="$(cat $BS/rate.$cfg.$p)" \
					-v u="$(cat $BS/rate.uart_hvhost.$p 2>/dev/null)" \
					-v v="$(cat $BS/rate.virtio_vsock.$p 2>/dev/null)" 'BEGIN {
					if (u == "" && v == "") exit
					line = "# sample stream_ratio config=" c " phase=" p
					if (u != "") line = line sprintf(" vs_uart_hvhost=%.2f", x / u)
					if (v != "") line = line sprintf(" vs_virtio_vsock=%.3f", x / v)
					print line }'
			done
			[ -s $BS/rtt.$cfg ] && [ -s $BS/rtt.virtio_vsock ] &&
				awk -v c="$cfg" -v x="$(cat $BS/rtt.$cfg)" -v v="$(cat $BS/rtt.virtio_vsock)" 'BEGIN {
					printf "# sample stream_ratio config=%s phase=round_trip rtt_vs_virtio_vsock=%.3f\n", c, x / v }'
		done
	done
	[ -z "$failed" ]
}
