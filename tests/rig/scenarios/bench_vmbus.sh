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
# close both check it), and a run that lost one says so and fails. run.py
# gives the medians of the runs' samples. Packets
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
		--serial file:/tmp/bv.$r.console --debug-console file:/tmp/bv.$r.ktap \
		--report /tmp/bv.$r.report 2>/tmp/bv.$r.err &
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

# bench_vmbus_collect N: checks run N and prints a sample record per phase
# (run.py takes the medians): packets, ratio (the median of the guest's 64
# timed slices of the loop, per packet, over the raw exit), ratio_whole (the
# whole loop's), signals, host and guest interrupts, KVM exits and waits
# for ring space per packet; packets/s as a secondary sample. Status 1 (and
# says so) if the guest did not complete the run, 2 if it lost a packet.
bench_vmbus_collect() {
	local r=$1 raw p count sent=0 phases=0 host_pk ok=1
	raw=$(kv /tmp/bv.$r.ktap phase=raw_exit median_cycles)
	if [ -z "$raw" ] || ! grep -q '^ *ok 1 phases' /tmp/bv.$r.ktap; then
		grep -a '# \|not ok' /tmp/bv.$r.ktap | grep -v '# phase ' | sed "s/^ */# run $r guest: /"
		echo "# run $r: the guest did not complete its phases"
		return 1
	fi
	for p in $(grep -o '# [a-z]*_[0-9]*: mode=[a-z]* packets=' /tmp/bv.$r.ktap | awk '{ print $2 }' | tr -d ':'); do
		count=$(bv_field $r $p packets)
		phases=$((phases + 1))
		sent=$((sent + count))
		awk -v p="$p" -v n="$count" -v raw="$raw" \
			-v cyc="$(bv_field $r $p median_cycles_per_packet)" -v whole="$(bv_field $r $p cycles_per_packet)" \
			-v sig="$(bv_field $r $p signals)" \
			-v hirq="$(bv_field $r $p host_interrupts)" -v girq="$(bv_field $r $p interrupts)" \
			-v waits="$(bv_field $r $p space_waits)" '
			$1 == p && $2 == "begin" { b = $3; tb = $4 } $1 == p && $2 == "end" { e = $3; te = $4 }
			END {
				printf "# sample stream phase=%s packets=%d ratio=%.3f ratio_whole=%.3f signals_per_pkt=%.4f host_irqs_per_pkt=%.4f guest_irqs_per_pkt=%.4f exits_per_pkt=%.3f waits_per_pkt=%.4f\n",
					p, n, cyc / raw, whole / raw, sig / n, hirq / n, girq / n, (e - b) / n, waits / n
				printf "# sample wall_clock_secondary phase=%s packets_per_s=%d\n", p, (te > tb) ? n / (te - tb) : 0
			}' /tmp/bv.$r.marks
		if [ "$(bv_field $r $p lost)" != 0 ] || [ "$(bv_field $r $p bytes_lost)" != 0 ]; then
			echo "# LOST: run $r $p: $(bv_field $r $p lost) packets and $(bv_field $r $p bytes_lost) bytes did not arrive at the host"
			ok=
		fi
	done
	# What hvhost itself counted over the channel's life (its exit
	# report): every streamed and round-trip packet plus the two counter
	# requests around each phase.
	grep ' name=perf ' /tmp/bv.$r.report | sed "s/^/# run $r hvhost: /"
	host_pk=$(kv /tmp/bv.$r.report name=perf packets)
	if [ "$host_pk" != $((sent + 2 * phases)) ]; then
		echo "# LOST: run $r: hvhost counted ${host_pk:-no} packets at close, the guest sent $((sent + 2 * phases))"
		ok=
	fi
	[ -n "$ok" ] || return 2
}

# RIG_L1_APPEND=rig.runs=N for another number of runs.
BENCH_VMBUS_RUNS=$(rig_param runs 3)

rig_bench_vmbus() {
	local r failed= rc
	r=1
	while [ $r -le $BENCH_VMBUS_RUNS ]; do
		bench_vmbus_run $r || echo "# run $r: hvhost exit status $?"
		bench_vmbus_collect $r
		rc=$?
		[ $rc = 0 ] || failed=1
		r=$((r + 1))
	done
	echo "# ratio = guest TSC cycles per packet (median of 64 timed slices of the loop) / raw exit (median of 3000 OUTs to port 0xe0) of the same run; ratio_whole = the same for the whole loop; packets/s (rig wall clock) is secondary, meaningless on its own"
	if [ -n "$failed" ]; then
		rig_not_ok "vmbus_stream # a run did not complete or LOST PACKETS (see above)"
		return 1
	fi
	rig_ok "vmbus_stream"
}
