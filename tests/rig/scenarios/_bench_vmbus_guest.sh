# _bench_vmbus_guest: not a scenario of its own; the guest side of
# bench_vmbus. Loads hv_guest under hvhost --vmbus-perf, waits for the perf
# sink's channel to be bound and open, then runs each phase, announcing it
# on the debug console as it starts and ends (the rig in L1 samples KVM's
# exit counter at those marks), through /sys/kernel/debug/hv_guest/vmbus/perf,
# whose reports it passes on: 'raw' (the contract tests' 'bench raw_exit',
# the same measurement bench_hypercalls divides by), then 'stream COUNT
# SIZE' for each packet size and a few 'rtt' round trips.
# The phases, in order (KIND:COUNT:SIZE), are BENCH_VMBUS_PHASES below.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_vmbus_bench rig_bench_vmbus_phases
}

BENCH_VMBUS_PHASES="raw_exit stream:300000:64 stream:80000:1024 stream:20000:4096 rtt:600:64"

bench_vmbus_mark() { echo "# phase $1 $2" | rig-debugcon $KTAP_PORT; }

rig_bench_vmbus_phases() {
	local d=/sys/kernel/debug/hv_guest i p kind count size name rc
	echo "TAP version 13"
	echo "1..1"
	insmod "$HV_GUEST_KO" || { echo "not ok 1 phases # insmod failed"; return 1; }
	i=0
	until grep -q 'driver hvhost_perf' $d/vmbus/channels 2>/dev/null &&
		grep -A12 'class 8f3f6b2e' $d/vmbus/channels | grep -q 'state Open'; do
		i=$((i + 1))
		if [ $i -gt 300 ]; then
			sed 's/^/# /' $d/vmbus/channels
			rmmod hv_guest
			echo "not ok 1 phases # the perf sink's channel is not open (hvhost without --vmbus-perf?)"
			return 1
		fi
		sleep 0.1
	done
	for p in $BENCH_VMBUS_PHASES; do
		kind=${p%%:*}
		if [ "$kind" = raw_exit ]; then
			name=raw_exit
			bench_vmbus_mark $name begin
			echo raw >$d/vmbus/perf
			rc=$?
			bench_vmbus_mark $name end
			sed 's/^/# /' $d/vmbus/perf
		else
			count=$(echo "$p" | cut -d: -f2)
			size=$(echo "$p" | cut -d: -f3)
			name=${kind}_$size
			bench_vmbus_mark $name begin
			echo "$kind $count $size" >$d/vmbus/perf
			rc=$?
			bench_vmbus_mark $name end
			sed "s/^/# $name: /" $d/vmbus/perf
		fi
		if [ $rc != 0 ]; then
			rmmod hv_guest
			echo "not ok 1 phases # $p failed"
			return 1
		fi
		sleep 0.3
	done
	grep -A14 'class 8f3f6b2e' $d/vmbus/channels | sed 's/^/# channel: /'
	grep -a . $d/hypercalls | sed 's/^/# hypercalls: /'
	rmmod hv_guest
	echo "ok 1 phases"
}
