# hostile_guest_fuzz: a guest that fuzzes its host. hv_guest's selftest
# build (contract command `fuzz SEED OPS`, rust/selftest/hostfuzz.rs)
# sends hvhost random hypercalls (control words, rep fields, reserved
# bits, input GPAs in and outside RAM, misaligned, crossing a page,
# overlapping the output), synthetic MSR writes (SINT vectors below 16,
# reserved bits, SIMP/SIEFP/hypercall/assist pages outside RAM, direct
# timers below vector 16, read-only MSRs) and VMBus messages of every
# type with random bodies, for 20 s on 2 vCPUs. The seed is printed; an
# equal run is RIG_L1_APPEND=rig.seed=N. The guest checks every answer
# (a status the TLFS defines; a #GP for every write that must be
# refused). Then hv_guest unloads (bounded) and the production module
# loads and binds its three ICs. hvhost must survive it all and exit 0,
# count what it refused (its exit report: hypercalls refused, MSR #GPs,
# messages dropped), and end with the descriptors, channels and GPADLs it
# had before the fuzzing (hvctl stats before and after).
# timeout: 600
fuzz_run() {
	local seed
	seed=$(rig_param seed "$(date +%s)")
	HVHOST_EXTRA_CMDLINE="rig.seed=$seed" \
		hvhost_start 400 _hostile_guest_fuzz_guest --cpus 2 --api-socket $HVHOST_API
	hvhost_wait
	hvhost_verdict_or_bail "the fuzzing guest"
	hvhost_guest_ktap guest_fuzzed_and_reloaded
	grep -E '^(hyperv|vmbus|exit) ' /tmp/hvhost.report | sed 's/^/# /'
	rig_check "hvhost_survived_exit_status_0 # seed $seed" [ "$HVHOST_STATUS" = 0 ]
	refusals() {
		local r=/tmp/hvhost.report
		[ "$(kv $r hyperv hypercalls_refused)" -gt 0 ] && [ "$(kv $r hyperv msr_gp)" -gt 0 ] &&
			[ "$(kv $r vmbus dropped)" -gt 0 ]
	}
	rig_check refusals_counted refusals
	# The production module's bus after the fuzzing is the selftest
	# module's before it: same channels, GPADLs and descriptors.
	same() {
		local b=/tmp/hvctl.stats.before a=/tmp/hvctl.stats.after k
		[ -s $b ] && [ -s $a ] || { echo "# no stats saved"; return 1; }
		for k in channels gpadls_live; do
			[ "$(kv $b vmbus $k)" = "$(kv $a vmbus $k)" ] ||
				{ echo "# vmbus $k: $(kv $b vmbus $k) before, $(kv $a vmbus $k) after"; return 1; }
		done
		[ "$(kv $b process open_fds)" = "$(kv $a process open_fds)" ] ||
			{ echo "# open_fds: $(kv $b process open_fds) before, $(kv $a process open_fds) after"; return 1; }
	}
	rig_check nothing_leaked same
}

guest() {
	run_test hostile_guest_fuzz fuzz_run
}
