# _bench_hc_guest: not a scenario of its own; the guest side of
# bench_hypercalls. Loads hv_guest and runs each benchmark phase through
# its debugfs 'contract' file, announcing each phase on the debug console
# as it starts and ends (the rig in L1 samples KVM's exit counter at those
# marks), then reports the phases' results.
# helper
guest() {
	echo "# rig: nproc=$(nproc)"
	run_test hv_guest_bench rig_bench_phases
}

rig_bench_phases() {
	local p c=/sys/kernel/debug/hv_guest/contract
	insmod "$HV_GUEST_SELFTEST_KO" || { rig_not_ok "phases # insmod failed"; return 1; }
	for p in raw_exit null_hypercall signal_event message_round_trip; do
		echo "# phase $p begin" | rig-debugcon $KTAP_PORT
		if ! echo "bench $p" >$c; then
			echo "# phase $p end" | rig-debugcon $KTAP_PORT
			rmmod hv_guest
			rig_not_ok "phases # bench $p failed"
			return 1
		fi
		echo "# phase $p end" | rig-debugcon $KTAP_PORT
		sed 's/^/# /' $c
		sleep 0.3
	done
	grep -a . /sys/kernel/debug/hv_guest/hypercalls | sed 's/^/# hypercalls: /'
	rmmod hv_guest
	rig_ok "phases"
}
