# hvhost_msr_contract: under hvhost with 2 vCPUs, a user-space program in
# the guest (hv_msr_contract, /dev/cpu/N/msr) checks every synthetic MSR:
# values, the #GP cases (read-only writes, unmasked SINT vector < 16,
# unadvertised MSRs), HYPERCALL enable ignored without GUEST_OS_ID and
# cleared with it, the trampoline and reference TSC page contents,
# TIME_REF_COUNT monotonic across CPUs, VP_INDEX per CPU, stimer0 CONFIG/COUNT.
# Then the hypercall error statuses from kernel mode: hv_guest.ko's
# 'statuses' suite (unknown code, reserved control bits, misaligned input,
# unknown message and event connections, oversize payload), each with the
# TLFS status and its kernel error.
# timeout: 300
rig_msr_contract() {
	hvhost_run _hvhost_msr_guest --cpus 2
	hvhost_verdict_or_bail "the guest"
	sed -n '/^K*TAP version/,$p' /tmp/hvhost.ktap
	grep -E 'unchecked MSR access|WARNING:|BUG:' /tmp/hvhost.console | sed 's/^/# bad: /'
	[ "$HVHOST_STATUS" = 0 ] && grep -q '^1\.\.[1-9]' /tmp/hvhost.ktap &&
		! grep -q 'not ok' /tmp/hvhost.ktap &&
		! grep -qE 'WARNING:|BUG:' /tmp/hvhost.console
}

guest() {
	run_test msr_contract rig_msr_contract
}
