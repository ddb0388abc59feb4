# _hostile_guest_fuzz_guest: not a scenario of its own; the L2 side of
# hostile_guest_fuzz: load the selftest build, have L1 save hvhost's stats,
# fuzz for FUZZ_SECONDS in batches of FUZZ_OPS (seeds SEED, SEED+1, ...),
# check the answers, unload, load the production module, have L1 save the
# stats again.
# helper

C=/sys/kernel/debug/hv_guest/contract
FUZZ_SECONDS=20
FUZZ_OPS=2000

# fuzz_for: batches until FUZZ_SECONDS have passed; every batch's record
# must have unknown_status=0 and msr_wrong=0.
fuzz_for() {
	local seed i=0 end line
	seed=$(rig_param seed 1)
	echo "# seed=$seed (RIG_L1_APPEND=rig.seed=$seed runs these batches again)"
	rig_request stats before || { echo "# L1 did not save the stats: $RIG_ANSWER"; return 1; }
	: >/tmp/fuzz.out
	end=$(($(date +%s) + FUZZ_SECONDS))
	while [ "$(date +%s)" -lt $end ]; do
		echo "fuzz $((seed + i)) $FUZZ_OPS" >$C || { echo "# batch $((seed + i)) failed"; return 1; }
		cat $C >>/tmp/fuzz.out
		i=$((i + 1))
	done
	awk '{ for (f = 4; f <= NF; f++) { split($f, kv, "="); t[kv[1]] += kv[2]; o[f] = kv[1] } }
		END { s = "# totals batches=" NR; for (f = 4; f in o; f++) s = s " " o[f] "=" t[o[f]]; print s }' /tmp/fuzz.out
	for k in unknown_status msr_wrong; do
		bad=$(awk -v k=$k '{ for (f = 1; f <= NF; f++) if (index($f, k "=") == 1 && substr($f, length(k) + 2) != "0") print }' /tmp/fuzz.out)
		[ -z "$bad" ] || { echo "# $k not 0:"; echo "$bad" | head -3 | sed 's/^/#   /'; return 1; }
	done
	[ "$i" -gt 0 ]
}

# unload: rmmod within 120 s (the fuzzing may have closed channels or
# the connection under the bus, which then waits out its bounds).
unload() {
	timeout -s KILL 120 rmmod hv_guest || return 1
	[ ! -e /sys/kernel/debug/hv_guest ]
}

reload_production() {
	local c=/sys/kernel/debug/hv_guest/vmbus/channels
	ics_open() { [ "$(grep -c ' state=Open ' $c 2>/dev/null)" = 3 ]; }
	insmod $HV_GUEST_KO || return 1
	wait_for 60 ics_open || { sed 's/^/# /' $c; return 1; }
	rig_request stats after || { echo "# L1 did not save the stats: $RIG_ANSWER"; return 1; }
	hv_heartbeat_survives
}

guest() {
	echo "# rig: nproc=$(nproc)"
	run_test load_selftest hv_load_selftest
	run_test fuzz fuzz_for
	run_test unload unload
	run_test production_reload reload_production
	run_test no_warnings dmesg_clean
}
