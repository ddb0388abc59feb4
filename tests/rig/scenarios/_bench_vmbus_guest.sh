# _bench_vmbus_guest: not a scenario of its own; the guest side of
# bench_vmbus. Loads hv_guest under hvhost --vmbus-perf, waits for the perf
# sink's channel to be bound and open, then runs each phase, announcing it
# on the debug console as it starts and ends (the rig in L1 samples KVM's
# exit counter at those marks), and passes the reports on: the raw exit
# through the selftest build's 'contract' file ('bench raw_exit', the same
# measurement bench_hypercalls divides by), then 'stream COUNT SIZE' for
# each packet size and a few 'rtt' round trips through the 'perf' file of
# the sink's device (vmbus/devices/hvhost_perf.N/perf).
# The phases, in order (KIND:COUNT:SIZE), are BENCH_VMBUS_PHASES below.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_vmbus_bench rig_bench_vmbus_phases
}

BENCH_VMBUS_PHASES="raw_exit stream:300000:64 stream:80000:1024 stream:20000:4096 rtt:600:64"

bench_vmbus_mark() { echo "# phase $1 $2" | rig-debugcon $KTAP_PORT; }

rig_bench_vmbus_phases() {
	local d=/sys/kernel/debug/hv_guest i p kind count size name rc perf
	insmod "$HV_GUEST_SELFTEST_KO" || { rig_not_ok "phases # insmod failed"; return 1; }
	i=0
	until [ "$(kv $d/vmbus/channels driver=hvhost_perf state 2>/dev/null)" = Open ]; do
		i=$((i + 1))
		if [ $i -gt 300 ]; then
			sed 's/^/# /' $d/vmbus/channels
			rmmod hv_guest
			rig_not_ok "phases # the perf sink's channel is not open (hvhost without --vmbus-perf?)"
			return 1
		fi
		sleep 0.1
	done
	perf=$(echo $d/vmbus/devices/hvhost_perf.*/perf)
	for p in $BENCH_VMBUS_PHASES; do
		kind=${p%%:*}
		if [ "$kind" = raw_exit ]; then
			name=raw_exit
			bench_vmbus_mark $name begin
			echo "bench raw_exit" >$d/contract
			rc=$?
			bench_vmbus_mark $name end
			sed 's/^/# /' $d/contract
		else
			count=$(echo "$p" | cut -d: -f2)
			size=$(echo "$p" | cut -d: -f3)
			name=${kind}_$size
			bench_vmbus_mark $name begin
			echo "$kind $count $size" >"$perf"
			rc=$?
			bench_vmbus_mark $name end
			sed "s/^/# $name: /" "$perf"
		fi
		if [ $rc != 0 ]; then
			rmmod hv_guest
			rig_not_ok "phases # $p failed"
			return 1
		fi
		sleep 0.3
	done
	grep ' name=hvhost_perf ' $d/vmbus/channels | sed 's/^/# channel: /'
	grep -a . $d/hypercalls | sed 's/^/# hypercalls: /'
	rmmod hv_guest
	rig_ok "phases"
}
