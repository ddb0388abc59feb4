# SPDX-License-Identifier: GPL-2.0
#
# Shell helpers for scenarios, sourced by the rig's init in the guest.

# Module and test locations inside the initramfs.
KO_DIR=/lib/modules/hv_guest
TESTS=/tests
export HV_GUEST_KO=$KO_DIR/hv_guest.ko
export HV_GUEST_KUNIT_KO=$KO_DIR/hv_guest_kunit.ko

RIG_TEST_NR=0

# rig_scenario: runs guest() and prints the scenario's KTAP document, its
# plan counted from the tests that ran. In L2, whose console is a file, a
# copy goes to the console too (the log).
rig_scenario() {
	RIG_TEST_NR=0
	guest >/tmp/scenario.ktap
	{
		echo "KTAP version 1"
		echo "1..$RIG_TEST_NR"
		cat /tmp/scenario.ktap
	} >/tmp/scenario.doc
	[ "$LAYER" = 2 ] && cat /tmp/scenario.doc >/dev/console
	cat /tmp/scenario.doc
}

# run_test NAME CMD...: one test program as a KTAP subtest.
run_test() {
	local name=$1 out rc
	shift
	RIG_TEST_NR=$((RIG_TEST_NR + 1))
	out=/tmp/test.$RIG_TEST_NR.out
	"$@" >"$out" 2>/dev/console
	rc=$?
	sed 's/^/    /' "$out"
	case $rc in
	0) echo "ok $RIG_TEST_NR $name" ;;
	4) echo "ok $RIG_TEST_NR $name # SKIP" ;;
	*) echo "not ok $RIG_TEST_NR $name # exit status $rc" ;;
	esac
}

# wait_for SECONDS CMD...: retries CMD once a second until it succeeds;
# its status after SECONDS tries.
wait_for() {
	local n=$1
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 1
		n=$((n - 1))
	done
	"$@"
}

# rig_mark TEXT: the line "# rig: TEXT" on the debug console, outside the
# KTAP document (which leaves only when guest() ends): what L1 waits for
# (hvhost_term_when, hvhost_serve_guest).
rig_mark() {
	echo "# rig: $*" | rig-debugcon $KTAP_PORT
}

# rig_poweroff_hook: a guest's answer to the host's shutdown request is
# orderly_poweroff(), which runs /proc/sys/kernel/poweroff_cmd; the rig's
# init is a shell that ignores busybox poweroff's signal, so the command
# becomes a script that notes the request (/tmp/host-shutdown) and the
# scenario ends as usual (init powers off).
rig_poweroff_hook() {
	cat >/tmp/host-poweroff <<'SCRIPT'
#!/bin/sh
echo "rig: the host asked for a power-off" >/dev/console
: >/tmp/host-shutdown
SCRIPT
	chmod +x /tmp/host-poweroff
	echo /tmp/host-poweroff >/proc/sys/kernel/poweroff_cmd
}

# rig_wait_host_shutdown: announces "vmbus ready" (hvhost's SIGTERM cue)
# and waits up to 150 s for the host's shutdown request.
rig_wait_host_shutdown() {
	rig_mark "vmbus ready, waiting for the host's shutdown request"
	wait_for 150 [ -e /tmp/host-shutdown ]
}

# hvhost_run GUEST_SCENARIO [HVHOST_ARGS...]: boots L2 under hvhost (in L1)
# with the rig kernel and the L2 initramfs; L2 runs GUEST_SCENARIO and
# writes its KTAP to hvhost's debug console. Sets HVHOST_STATUS; leaves the
# KTAP in /tmp/hvhost.ktap and sends L2's console and hvhost's own log up
# to the scenario log (debugcon port 0xeb). --no-xsave: the rig's outer
# hypervisor (QEMU TCG) does not intercept XSETBV for nested guests, so L1's
# KVM would report a stale XSAVE size and the guest would oops.
# HVHOST_KERNEL=/boot/ref-bzImage boots the reference guest (Linux's own
# Hyper-V support) instead of the rig kernel.
hvhost_run() {
	hvhost_start 200 "$@"
	hvhost_wait
}

# hvhost_start LIMIT GUEST_SCENARIO [HVHOST_ARGS...]: hvhost_run's VM in the
# background (HVHOST_PID), killed after LIMIT seconds.
hvhost_start() {
	limit=$1 scen=$2
	shift 2
	HVHOST_ARGS="$*"
	: >/tmp/hvhost.ktap
	: >/tmp/hvhost.console
	timeout -s KILL "$limit" hvhost --kernel "${HVHOST_KERNEL:-/boot/bzImage}" --initrd /boot/l2.cpio --no-xsave \
		--cmdline "console=ttyS0 panic=-1 pci=off no_timer_check rig.scenario=$scen rig.layer=2${HVHOST_EXTRA_CMDLINE:+ $HVHOST_EXTRA_CMDLINE}" \
		--serial file:/tmp/hvhost.console --debug-console file:/tmp/hvhost.ktap \
		"$@" 2>/tmp/hvhost.err &
	HVHOST_PID=$!
}

# hvhost_term_when MARK SECONDS: once the guest's debug console shows the
# line MARK (or after SECONDS, or when hvhost ended), asks hvhost to stop
# with SIGTERM, which it passes on to the guest as a shutdown request.
hvhost_term_when() {
	hvhost_wait_mark "$1" "$2"
	echo "# guest ready after ${HVHOST_WAITED} s; sending SIGTERM to hvhost"
	kill -TERM $HVHOST_PID 2>/dev/null
}

# hvhost_wait_mark MARK SECONDS: waits until the guest's debug console shows
# the line MARK, hvhost ended, or SECONDS passed (HVHOST_WAITED: how long);
# true if the mark came.
hvhost_wait_mark() {
	local mark=$1 max=$2
	HVHOST_WAITED=0
	while [ $HVHOST_WAITED -lt "$max" ] && kill -0 $HVHOST_PID 2>/dev/null &&
		! grep -q "^$mark" /tmp/hvhost.ktap; do
		sleep 1
		HVHOST_WAITED=$((HVHOST_WAITED + 1))
	done
	grep -q "^$mark" /tmp/hvhost.ktap
}

# hvhost_serve_guest MARK SECONDS: hvhost_term_when for a guest that also
# drives hvhost's control socket (hvhost_start ... --api-socket $HVHOST_API):
# every line "# rig: hvctl REQUEST" the guest writes to its debug console
# runs "hvctl $HVHOST_API REQUEST" once, in order; answers go to
# /tmp/hvhost.ctl ("REQUEST -> ANSWER" per line).
HVHOST_API=/tmp/hvhost.api
hvhost_serve_guest() {
	local mark=$1 max=$2 i=0 seen=0 n req
	: >/tmp/hvhost.ctl
	while [ $i -lt "$max" ] && kill -0 $HVHOST_PID 2>/dev/null && ! grep -q "^$mark" /tmp/hvhost.ktap; do
		n=$(grep -c '^# rig: hvctl ' /tmp/hvhost.ktap)
		while [ "$seen" -lt "$n" ]; do
			seen=$((seen + 1))
			req=$(grep '^# rig: hvctl ' /tmp/hvhost.ktap | sed -n "${seen}s/^# rig: hvctl //p")
			echo "$req -> $(hvctl $HVHOST_API $req 2>&1 | tr '\n' ' ')" >>/tmp/hvhost.ctl
		done
		sleep 1
		i=$((i + 1))
	done
	if grep -q "^$mark" /tmp/hvhost.ktap; then
		echo "# guest ready after $i s; sending SIGTERM to hvhost"
	elif ! kill -0 $HVHOST_PID 2>/dev/null; then
		echo "# hvhost ended after $i s before the guest was ready"
	else
		echo "# guest not ready after $i s; sending SIGTERM to hvhost"
	fi
	kill -TERM $HVHOST_PID 2>/dev/null
}

# hvhost_stats_then_shutdown MARK SECONDS: for a guest started with
# --api-socket $HVHOST_API: once it shows MARK, asks hvhost for its `stats`
# (HVCTL_STATS) and to shut the guest down (HVCTL_SHUTDOWN, hvctl's answer);
# a guest that never shows it gets SIGTERM.
hvhost_stats_then_shutdown() {
	HVCTL_STATS=none HVCTL_SHUTDOWN=none
	if hvhost_wait_mark "$1" "$2"; then
		HVCTL_STATS=$(hvctl $HVHOST_API stats 2>&1)
		HVCTL_SHUTDOWN=$(hvctl $HVHOST_API shutdown 2>&1)
	else
		echo "# the guest was not ready after $HVHOST_WAITED s"
		kill -TERM $HVHOST_PID 2>/dev/null
	fi
}

# hvctl_field NAME ANSWER: the value after NAME in an hvctl key-value answer
# ("ok version 6.0 interrupt_page none ...").
hvctl_field() {
	echo "$2" | tr ' ' '\n' | sed -n "/^$1\$/{n;p;q}"
}

# hvhost_guest_clean [EXTRA_PATTERN]: no WARNING, BUG or Oops in the guest's
# console (nor EXTRA_PATTERN), and hvhost_vmbus_clean.
hvhost_guest_clean() {
	local bad="WARNING:|BUG:|Call Trace|Oops|unchecked MSR access${1:+|$1}"
	grep -E "$bad" /tmp/hvhost.console | sed 's/^/# bad: /'
	! grep -qE "$bad" /tmp/hvhost.console && hvhost_vmbus_clean
}

# hvhost_status_text STATUS: what hvhost's exit status says about the
# guest's end (vmm/src/control.rs, VmExitReason::exit_code).
hvhost_status_text() {
	case $1 in
	0) echo "guest powered off" ;;
	1) echo "VM failed: triple fault, KVM or host error" ;;
	2) echo "guest reset or rebooted (a panic with panic=-1)" ;;
	101) echo "hvhost panicked" ;;
	137) echo "killed: the guest did not end in time" ;;
	129|13[0-9]|1[4-9][0-9]) echo "hvhost ended by signal $(($1 - 128))" ;;
	*) echo "unknown status" ;;
	esac
}

# hvhost_wait: waits for hvhost_start's VM (HVHOST_STATUS) and sends the
# guest console and hvhost's log up to the scenario log.
hvhost_wait() {
	wait $HVHOST_PID
	HVHOST_STATUS=$?
	{
		echo "==== hvhost $HVHOST_ARGS (status $HVHOST_STATUS: $(hvhost_status_text $HVHOST_STATUS)): guest console ===="
		cat /tmp/hvhost.console
		echo "==== hvhost $HVHOST_ARGS: hvhost log ===="
		cat /tmp/hvhost.err
	} | rig-debugcon 0xeb
}

# hvhost_verdict_or_bail WHAT: a guest that hung (killed) or vanished
# before its KTAP plan (a triple fault, say) gave no verdict: "Bail out!",
# and the runner boots the scenario once more (tests/run.py).
hvhost_verdict_or_bail() {
	if [ "$HVHOST_STATUS" = 137 ] || ! grep -q '^1\.\.[0-9]' /tmp/hvhost.ktap; then
		echo "Bail out! no verdict from $1 under hvhost (status $HVHOST_STATUS)"
	fi
}

# hvhost_guest_ktap N NAME [SUBTEST]: the guest's KTAP document (in
# /tmp/hvhost.ktap) as a subtest named SUBTEST ("guest"), and check N NAME:
# it has a plan and no "not ok".
hvhost_guest_ktap() {
	echo "    # Subtest: ${3:-guest}"
	sed -n '/^KTAP version/,$p' /tmp/hvhost.ktap | sed 's/^/    /'
	rig_check "$1" "$2" sh -c "grep -q '^1\.\.[1-9]' /tmp/hvhost.ktap && ! grep -q '^not ok' /tmp/hvhost.ktap"
}

# hvhost_vmbus_clean: hvhost's VMBus summary (shown as a comment) counts no
# dropped message and no channel fault, and hvhost logged no error.
hvhost_vmbus_clean() {
	grep -E 'vmbus: [0-9]+ messages' /tmp/hvhost.err | sed 's/^/# /'
	grep -qE 'vmbus: [0-9]+ messages \(0 dropped\).* 0 channel faults' /tmp/hvhost.err &&
		! grep -q 'hvhost: error:' /tmp/hvhost.err
}

# hvhost_heartbeats_advance MIN: the guest's heartbeat sequence in hvhost's
# log advanced by MIN at least.
hvhost_heartbeats_advance() {
	local first last
	first=$(sed -n 's/.*heartbeat: guest sequence \([0-9]*\).*/\1/p' /tmp/hvhost.err | head -1)
	last=$(sed -n 's/.*heartbeat: guest sequence \([0-9]*\).*/\1/p' /tmp/hvhost.err | tail -1)
	echo "# heartbeat sequence $first .. $last"
	[ -n "$first" ] && [ "$last" -ge $((first + $1)) ]
}

# hvhost_heartbeat_after PATTERN: hvhost logged a heartbeat after the last
# line of its log matching PATTERN.
hvhost_heartbeat_after() {
	local n
	n=$(grep -n "$1" /tmp/hvhost.err | tail -1 | cut -d: -f1)
	[ -n "$n" ] && tail -n +"$n" /tmp/hvhost.err | grep -q 'heartbeat: guest sequence'
}

# rig_check N NAME CMD...: "ok N NAME" if CMD succeeds, else "not ok N NAME"
# and RIG_CHECK_FAILED=1 (callers clear it first). Its variables are local:
# run_test's own NAME must survive.
rig_check() {
	local n=$1 what=$2
	shift 2
	if "$@"; then echo "ok $n $what"; else
		echo "not ok $n $what"
		RIG_CHECK_FAILED=1
	fi
}

# rig_hvhost_boot N: boots the guest under hvhost with N vCPUs and checks
# that it came up with N CPUs, ran its tests (nested here as a subtest),
# powered off, and that hvhost exited 0 with a per-vCPU exit summary.
rig_hvhost_boot() {
	rig_hvhost_guest _hvhost_guest "$1"
}

# rig_hvhost_guest GUEST_SCENARIO N [HVHOST_ARGS...]: the same checks for
# any guest-side scenario (a '# helper' file whose guest() runs the tests).
rig_hvhost_guest() {
	gscen=$1 n=$2
	shift 2
	echo "TAP version 13"
	echo "1..5"
	hvhost_run "$gscen" --cpus "$n" "$@"
	hvhost_verdict_or_bail "the guest"
	if [ "$HVHOST_STATUS" = 0 ]; then echo "ok 1 hvhost_exit_status_0"; else
		echo "not ok 1 hvhost_exit_status_0 # status $HVHOST_STATUS: $(hvhost_status_text $HVHOST_STATUS)"; fi
	if grep -q "^# rig: nproc=$n\$" /tmp/hvhost.ktap; then echo "ok 2 guest_sees_${n}_cpus"; else
		echo "not ok 2 guest_sees_${n}_cpus # guest said: $(grep '^# rig: nproc=' /tmp/hvhost.ktap)"; fi
	hvhost_guest_ktap 3 guest_tests guest_tests
	if grep -q 'reboot: Power down' /tmp/hvhost.console; then echo "ok 4 guest_powered_off"; else
		echo "not ok 4 guest_powered_off"; fi
	missing=
	i=0
	while [ $i -lt "$n" ]; do
		grep -q "vcpu$i exits:" /tmp/hvhost.err || missing="$missing vcpu$i"
		i=$((i + 1))
	done
	if [ -z "$missing" ]; then echo "ok 5 exit_summary_per_vcpu"; else
		echo "not ok 5 exit_summary_per_vcpu # missing:$missing"; fi
	! grep -q '^not ok' /tmp/hvhost.ktap && [ "$HVHOST_STATUS" = 0 ] && [ -z "$missing" ] &&
		grep -q "^# rig: nproc=$n\$" /tmp/hvhost.ktap
}
