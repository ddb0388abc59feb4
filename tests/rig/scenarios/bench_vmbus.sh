# bench_vmbus: VMBus streaming, guest to host, hv_guest under hvhost with
# its benchmark sink (--vmbus-perf, 1 vCPU), 3 runs, medians. The guest
# streams in-band
# packets of 64 B, 1 KiB and 4 KiB through the perf file of the sink's
# device (/sys/kernel/debug/hv_guest/vmbus/devices/hvhost_perf.N/perf, the
# selftest build of hv_guest)
# (waiting for ring space with pending_send_sz when the ring is full), then
# a few round trips; before that it measures the raw port-I/O exit as
# bench_hypercalls does. Per packet size: guest TSC cycles per packet as a
# ratio to the raw exit of the same run (median of 64 timed slices of the
# loop, and the whole loop), HvSignalEvent calls per packet,
# interrupts from the host per packet, KVM exits per packet (L1's exit
# counter sampled at the guest's phase marks every 50 ms), sleeps for ring
# space per packet, and the host's own packet counts: every packet must
# arrive (the guest's bracketing requests and hvhost's own count at channel
# close both check it), and a run that lost one says so and fails. Packets
# per second (rig wall clock) only as a secondary line. A benchmark (make
# bench), not a test.
# bench
# timeout: 600
guest() {
	run_test vmbus_stream rig_bench_vmbus
}

bv_uptime() { cut -d' ' -f1 /proc/uptime; }

# bench_vmbus_run N: one VM; leaves the guest's KTAP in /tmp/bv.N.ktap, the
# phase marks as "PHASE begin|end EXITS UPTIME" in /tmp/bv.N.marks and
# hvhost's log in /tmp/bv.N.err. Status: hvhost's.
bench_vmbus_run() {
	local r=$1 pid exits=0 v seen=0 line n start
	: >/tmp/bv.$r.ktap
	: >/tmp/bv.$r.marks
	hvhost --kernel /boot/bzImage --initrd /boot/l2.cpio --no-xsave --vmbus-perf --cpus 1 \
		--cmdline "console=ttyS0 panic=-1 pci=off no_timer_check rig.scenario=_bench_vmbus_guest rig.layer=2" \
		--serial file:/tmp/bv.$r.console --debug-console file:/tmp/bv.$r.ktap 2>/tmp/bv.$r.err &
	pid=$!
	start=$(bv_uptime)
	while kill -0 $pid 2>/dev/null; do
		v=$(cat /sys/kernel/debug/kvm/$pid-*/exits 2>/dev/null | head -n 1)
		[ -n "$v" ] && exits=$v
		n=$(grep -c '^# phase ' /tmp/bv.$r.ktap)
		while [ "$seen" -lt "$n" ]; do
			seen=$((seen + 1))
			line=$(grep '^# phase ' /tmp/bv.$r.ktap | sed -n "${seen}p")
			echo "${line#\# phase } $exits $(bv_uptime)" >>/tmp/bv.$r.marks
		done
		if awk -v s="$start" -v n="$(bv_uptime)" 'BEGIN { exit !(n - s > 150) }'; then
			echo "# run $r: hvhost still running after 150 s: killed"
			kill -KILL $pid
		fi
		sleep 0.05
	done
	wait $pid
	v=$?
	{
		echo "==== bench_vmbus run $r: guest console ===="
		cat /tmp/bv.$r.console
		echo "==== bench_vmbus run $r: hvhost log ===="
		cat /tmp/bv.$r.err
	} | rig-debugcon 0xeb
	return $v
}

# bv_field RUN PHASE KEY: KEY's value in the guest's report of PHASE.
bv_field() {
	kv /tmp/bv.$1.ktap "$2:" "$3"
}

# bench_vmbus_collect N: checks run N and appends one line per phase to
# /tmp/bv.data: "PHASE RUN packets median_cycles/pkt ratio ratio_whole
# signals/pkt host_irqs/pkt guest_irqs/pkt exits/pkt waits/pkt packets/s"
# (ratio: the median of the guest's 64 timed slices of the loop, per
# packet, over the raw exit; ratio_whole: the whole loop's). Status 1 (and
# says so) if the guest did not complete the run, 2 if it lost a packet.
bench_vmbus_collect() {
	local r=$1 raw p count sent=0 phases=0 host_line chan_line host_pk ok=1
	raw=$(grep -m1 '# bench raw_exit median_cycles' /tmp/bv.$r.ktap | awk '{ print $5 }')
	if [ -z "$raw" ] || ! grep -q '^ *ok 1 phases' /tmp/bv.$r.ktap; then
		grep -a '# \|not ok' /tmp/bv.$r.ktap | grep -v '# phase ' | sed "s/^ */# run $r guest: /"
		echo "# run $r: the guest did not complete its phases"
		return 1
	fi
	echo "raw_exit $r 3000 $raw 1 1 0 0 0 0 0 0" >>/tmp/bv.data
	for p in $(grep -o '# [a-z]*_[0-9]*: mode=[a-z]* packets=' /tmp/bv.$r.ktap | awk '{ print $2 }' | tr -d ':'); do
		count=$(bv_field $r $p packets)
		phases=$((phases + 1))
		sent=$((sent + count))
		awk -v p="$p" -v r="$r" -v n="$count" -v raw="$raw" \
			-v cyc="$(bv_field $r $p median_cycles_per_packet)" -v whole="$(bv_field $r $p cycles_per_packet)" \
			-v sig="$(bv_field $r $p signals)" \
			-v hirq="$(bv_field $r $p host_interrupts)" -v girq="$(bv_field $r $p interrupts)" \
			-v waits="$(bv_field $r $p space_waits)" '
			$1 == p && $2 == "begin" { b = $3; tb = $4 } $1 == p && $2 == "end" { e = $3; te = $4 }
			END {
				printf "%s %s %d %d %.3f %.3f %.4f %.4f %.4f %.3f %.4f %d\n", p, r, n, cyc, cyc / raw,
					whole / raw, sig / n, hirq / n, girq / n, (e - b) / n, waits / n, (te > tb) ? n / (te - tb) : 0
			}' /tmp/bv.$r.marks >>/tmp/bv.data
		if [ "$(bv_field $r $p lost)" != 0 ] || [ "$(bv_field $r $p bytes_lost)" != 0 ]; then
			echo "# LOST: run $r $p: $(bv_field $r $p lost) packets and $(bv_field $r $p bytes_lost) bytes did not arrive at the host"
			ok=
		fi
	done
	# What hvhost itself counted over the channel's life: every streamed and
	# round-trip packet plus the two counter requests around each phase.
	host_line=$(grep -m1 'vmbus: perf: channel closed after' /tmp/bv.$r.err)
	chan_line=$(grep -m1 'vmbus: channel [0-9]* (perf) closed' /tmp/bv.$r.err)
	echo "# run $r hvhost: ${host_line#*vmbus: }"
	echo "# run $r hvhost: ${chan_line#*vmbus: }"
	host_pk=$(echo "$host_line" | sed -n 's/.*closed after \([0-9]*\) packets.*/\1/p')
	if [ "$host_pk" != $((sent + 2 * phases)) ]; then
		echo "# LOST: run $r: hvhost counted ${host_pk:-no} packets at close, the guest sent $((sent + 2 * phases))"
		ok=
	fi
	[ -n "$ok" ] || return 2
}

# bv_median PHASE COLUMN
bv_median() {
	awk -v p="$1" -v col="$2" '$1 == p { print $col }' /tmp/bv.data | sort -n |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

BENCH_VMBUS_RUNS=3

rig_bench_vmbus() {
	local r failed= p tries rc
	: >/tmp/bv.data
	r=1
	while [ $r -le $BENCH_VMBUS_RUNS ]; do
		# A nested TCG guest now and then dies on its own (a reset or hang
		# before its phases end, see README "The rig"): boot it again, up
		# to twice. A lost packet is never retried.
		tries=0
		while :; do
			bench_vmbus_run $r || echo "# run $r: hvhost exit status $?"
			bench_vmbus_collect $r
			rc=$?
			[ $rc = 1 ] && [ $tries -lt 2 ] || break
			tries=$((tries + 1))
			echo "# run $r: booting it again ($tries)"
		done
		[ $rc = 0 ] || failed=1
		r=$((r + 1))
	done
	echo "# per run: phase run packets median-cycles/pkt ratio ratio-whole signals/pkt host-irqs/pkt guest-irqs/pkt exits/pkt waits/pkt pkts/s"
	sed 's/^/# /' /tmp/bv.data
	echo "# medians of $BENCH_VMBUS_RUNS runs; ratio = guest TSC cycles per packet (median of 64 timed slices of the loop) / raw exit (median of 3000 OUTs to port 0xe0) of the same run; whole = the same for the whole loop"
	echo "# phase        packets  ratio  whole  signals/pkt  host-irqs/pkt  guest-irqs/pkt  exits/pkt  waits/pkt"
	for p in $(awk '$1 != "raw_exit" { print $1 }' /tmp/bv.data | awk '!seen[$1]++'); do
		printf "# %-12s %7d %6.2f %6.2f %12.4f %14.4f %15.4f %10.2f %10.4f\n" $p \
			$(bv_median $p 3) $(bv_median $p 5) $(bv_median $p 6) $(bv_median $p 7) $(bv_median $p 8) \
			$(bv_median $p 9) $(bv_median $p 10) $(bv_median $p 11)
	done
	echo "# secondary (rig wall clock, meaningless on its own): packets/s median:"
	for p in $(awk '$1 != "raw_exit" { print $1 }' /tmp/bv.data | awk '!seen[$1]++'); do
		echo "#   $p $(bv_median $p 12)"
	done
	if [ -n "$failed" ]; then
		rig_not_ok "vmbus_stream # a run did not complete or LOST PACKETS (see above)"
		return 1
	fi
	rig_ok "vmbus_stream"
}
