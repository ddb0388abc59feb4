# SPDX-License-Identifier: GPL-2.0
#
# Shell helpers for scenarios, sourced by the rig's init in the guest.

# Module and test locations inside the initramfs.
KO_DIR=/lib/modules/hv_guest
TESTS=/tests
# The production module, and its selftest build (contract tests, test
# device, misbehaviour, benchmark driver) for the scenarios that need those.
export HV_GUEST_KO=$KO_DIR/hv_guest.ko
export HV_GUEST_SELFTEST_KO=$KO_DIR/selftest/hv_guest.ko
export HV_GUEST_KUNIT_KO=$KO_DIR/hv_guest_kunit.ko

# KTAP comes from the kernel's own shell library (tools/testing/selftests/
# kselftest/ktap_helpers.sh): the results of a test and of the scenario are
# its ktap_test_pass/fail/skip, numbered by it; rig_scenario and run_test
# write the plans from its counts.
. /kselftest/ktap_helpers.sh

# rig_ktap_reset: the library's counters back to the first test.
rig_ktap_reset() {
	KTAP_TESTNO=1 KTAP_CNT_PASS=0 KTAP_CNT_FAIL=0 KTAP_CNT_XFAIL=0 KTAP_CNT_SKIP=0
}

# rig_scenario: runs guest() and prints the scenario's KTAP document, its
# plan counted from the tests that ran. In L2, whose console is a file, a
# copy goes to the console too (the log).
rig_scenario() {
	rig_ktap_reset
	guest >/tmp/scenario.ktap
	# On the debug kernel (tests/debug.config), every layer ends with what
	# its checkers found.
	[ -e /sys/kernel/debug/kmemleak ] && run_test kernel_checkers_clean rig_debug_reports >>/tmp/scenario.ktap
	{
		ktap_print_header
		ktap_set_plan $((KTAP_TESTNO - 1))
		cat /tmp/scenario.ktap
	} >/tmp/scenario.doc
	[ "$LAYER" = 2 ] && cat /tmp/scenario.doc >/dev/console
	cat /tmp/scenario.doc
}

# Taint bits a checker's report sets (Documentation/admin-guide/tainted-kernels.rst):
# B bad page (KASAN, KFENCE), D died (an oops), W a warning (WARN, lockdep's
# sleeping-in-atomic, debug objects, list corruption), L soft lockup.
RIG_BAD_TAINT=$(((1 << 5) | (1 << 7) | (1 << 9) | (1 << 14)))

# rig_debug_reports: the debug kernel's checkers on this layer, as results:
# no report that taints, lockdep still on (it turns itself off at its first
# report), no UBSAN report, and nothing in kmemleak after two scans (an
# object must stay unreferenced for 5 s to count). A failure prints the
# kernel's reports.
rig_debug_reports() {
	local taint
	echo scan >/sys/kernel/debug/kmemleak
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	taint=$(cat /proc/sys/kernel/tainted)
	reports() {
		dmesg | grep -E -A40 'BUG: KASAN|BUG: KFENCE|WARNING:|UBSAN:|BUG:|Oops|possible recursive|circular locking|ODEBUG:|list_(add|del) corruption' |
			head -200 | sed 's/^/# /'
	}
	if [ $((taint & RIG_BAD_TAINT)) != 0 ]; then
		rig_not_ok "no_tainting_report # tainted=$taint"
		reports
	else
		rig_ok no_tainting_report
	fi
	if grep -q 'debug_locks: *0' /proc/lockdep_stats 2>/dev/null; then
		rig_not_ok "lockdep_still_on # lockdep turned itself off: it reported"
		reports
	else
		rig_ok lockdep_still_on
	fi
	if dmesg | grep -q 'UBSAN:'; then
		rig_not_ok no_ubsan_report
		reports
	else
		rig_ok no_ubsan_report
	fi
	if [ -s /sys/kernel/debug/kmemleak ]; then
		rig_not_ok "no_kmemleak_report # $(grep -c 'unreferenced object' /sys/kernel/debug/kmemleak) objects"
		head -100 /sys/kernel/debug/kmemleak | sed 's/^/# /'
	else
		rig_ok no_kmemleak_report
	fi
	[ "$KTAP_CNT_FAIL" = 0 ]
}

# run_test NAME CMD...: one test program as a KTAP subtest. A program
# that writes its own KTAP document (the kselftests) is passed on as it is;
# shell tests report with rig_check, rig_ok and rig_not_ok, numbered from 1
# within the test, and get their header and plan here from the count. The
# scenario's own counts wait meanwhile.
run_test() {
	local name=$1 out rc results saved
	shift
	saved="$KTAP_TESTNO $KTAP_CNT_PASS $KTAP_CNT_FAIL $KTAP_CNT_XFAIL $KTAP_CNT_SKIP"
	out=/tmp/test.$KTAP_TESTNO.out
	rig_ktap_reset
	"$@" >"$out" 2>/dev/console
	rc=$?
	results=$((KTAP_TESTNO - 1))
	set -- $saved
	KTAP_TESTNO=$1 KTAP_CNT_PASS=$2 KTAP_CNT_FAIL=$3 KTAP_CNT_XFAIL=$4 KTAP_CNT_SKIP=$5
	if ! grep -q '^1\.\.[0-9]' "$out"; then
		{ ktap_print_header; ktap_set_plan $results; } | sed 's/^/    /'
	fi
	sed 's/^/    /' "$out"
	case $rc in
	0) rig_ok "$name" ;;
	"$KSFT_SKIP") set -f; ktap_test_skip "$name"; set +f ;;
	*) rig_not_ok "$name # exit status $rc" ;;
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

# kv FILE SELECTOR KEY: the value of KEY in the first record of FILE (one
# record per line, fields key=value) that has every field of SELECTOR
# (space-separated key=value fields, or "-" for the first record); empty if
# there is none.
kv() {
	awk -v sel="$2" -v k="$3" '
		BEGIN { n = sel == "-" ? 0 : split(sel, want, " ") }
		{
			have = 0
			for (i = 1; i <= NF; i++) for (j = 1; j <= n; j++) if ($i == want[j]) have++
		}
		have == n { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit } }' "$1"
}

# rig_param NAME DEFAULT: the value of rig.NAME= on this kernel's command
# line (for L1: RIG_L1_APPEND="rig.NAME=VALUE" to run.py), or DEFAULT.
# Values are words of letters, digits, `_` and `,`.
rig_param() {
	local v
	v=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^rig\.$1=\([A-Za-z0-9_,]*\)\$/\1/p" | tail -1)
	echo "${v:-$2}"
}

# hv_state KEY: KEY of hv_guest's VMBus client state (debugfs
# hv_guest/vmbus/state: ring_pages_live, ring_pages_leaked, releases, ...).
hv_state() {
	kv /sys/kernel/debug/hv_guest/vmbus/state - "$1"
}

# hv_beats: heartbeats hv_guest's heartbeat driver answered (debugfs
# hv_guest/vmbus/ic); hv_beats_past N: more than N.
hv_beats() {
	kv /sys/kernel/debug/hv_guest/vmbus/ic service=heartbeat beats
}
hv_beats_past() {
	[ "$(hv_beats)" -gt "$1" ]
}

# hv_heartbeat_survives: hv_guest answers another heartbeat within 30 s
# (after whatever a test did to the bus).
hv_heartbeat_survives() {
	local b
	b=$(hv_beats)
	sleep 1
	wait_for 30 hv_beats_past "$b" || { echo "# no heartbeat answered since $b"; return 1; }
	echo "# heartbeats $b -> $(hv_beats)"
}

# hv_load_selftest: the selftest build of hv_guest loaded, with its three
# IC channels open within 60 s.
hv_load_selftest() {
	local c=/sys/kernel/debug/hv_guest/vmbus/channels
	ics_open() { [ "$(grep -c ' state=Open ' $c)" = 3 ]; }
	insmod $HV_GUEST_SELFTEST_KO || return 1
	wait_for 60 ics_open || { sed 's/^/# /' $c; return 1; }
}

# dmesg_clean [ERE]: the guest's kernel log has no warning, BUG, oops or
# call trace (nor anything ERE matches); the offending lines are shown.
dmesg_clean() {
	local bad="WARNING:|BUG:|Oops|Call Trace${1:+|$1}"
	dmesg | grep -E "$bad" | sed 's/^/# bad: /'
	! dmesg | grep -qE "$bad"
}

# kmsg_record KIND KEY: KEY's value in hv_guest's last kernel log record
# of KIND ("hv_guest: KIND key=value ..."; the module writes them for what
# tests need after it is gone: vmbus_unload, module_unload); empty if none.
kmsg_record() {
	dmesg | sed -n "s/.*hv_guest: $1 / $1 /p" | tail -1 >/tmp/kmsg.record
	kv /tmp/kmsg.record - "$2"
}

# rmmod_clean: unloads hv_guest, whose VMBus unload must have been
# answered: exactly one new vmbus_unload record, with unload_response=1
# (shown as a comment).
rmmod_clean() {
	local before
	before=$(dmesg | grep -c 'hv_guest: vmbus_unload ')
	rmmod hv_guest || return 1
	echo "# $(dmesg | grep 'hv_guest: vmbus_unload ' | tail -1 | sed 's/.*hv_guest: //')"
	[ "$(dmesg | grep -c 'hv_guest: vmbus_unload ')" = $((before + 1)) ] &&
		[ "$(kmsg_record vmbus_unload unload_response)" = 1 ]
}

# rig_mark TEXT: the line "# rig: TEXT" on the debug console, outside the
# KTAP document (which leaves only when guest() ends): what L1 waits for
# (hvhost_term_when, hvhost_wait_mark).
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

# vm_console_start: fresh result files for the next L2 (whichever VMM runs
# it: hvhost, or QEMU in a benchmark) and the reader of its debug console,
# /tmp/hvhost.dc, which that VMM is to write (rig_console_reader).
vm_console_start() {
	: >/tmp/hvhost.ktap
	: >/tmp/hvhost.marks
	: >/tmp/hvhost.ctl
	: >/tmp/hvhost.console
	rm -f /tmp/hvhost.report /tmp/hvhost.dc /tmp/hvhost.events
	mkfifo /tmp/hvhost.dc /tmp/hvhost.events
	# A fresh events FIFO per VM: nothing of an earlier VM's is left in it.
	# Opened read-write, its open never waits and it never reads as ended.
	exec 8<>/tmp/hvhost.events
	rig_console_reader </tmp/hvhost.dc &
	RIG_READER_PID=$!
}

# hvhost_start LIMIT GUEST_SCENARIO [HVHOST_ARGS...]: hvhost_run's VM in the
# background (HVHOST_PID), killed after LIMIT seconds. hvhost's exit report
# (key=value records: vcpu, vmbus, channel, hyperv, exit) goes to
# /tmp/hvhost.report; checks read it with kv. L2's debug console goes
# through rig_console_reader (below) to /tmp/hvhost.ktap.
hvhost_start() {
	limit=$1 scen=$2
	shift 2
	HVHOST_ARGS="$*"
	vm_console_start
	# The rig kernel under hvhost has nothing to calibrate its TSC against
	# (no PIT, HPET or ACPI PM timer) and no Hyper-V clock (no
	# CONFIG_HYPERV; hv_guest provides none): without its rate it falls
	# back to a jiffies clock with the APIC timer disabled. It gets L1's
	# rate (KVM passes the TSC through; run.py gives L1 its own). The
	# reference kernel has Hyper-V's clock and is left alone.
	# The rig kernel is the default and may be named (vmbus_rescind does).
	local clock=
	if [ "${HVHOST_KERNEL:-/boot/bzImage}" = /boot/bzImage ]; then
		clock=$(sed -n 's/.*\(tsc_early_khz=[0-9]*\).*/ \1/p' /proc/cmdline)
		# The debug kernel (L1 and L2 alike) runs with 4-level paging:
		# tests/debug.config says why.
		[ -e /sys/kernel/debug/kmemleak ] && clock="$clock no5lvl"
	fi
	# RIG_L1_APPEND=rig.strace=1: hvhost under strace, whose record of every
	# system call by thread hvhost_wait sums up.
	local strace=
	[ "$(rig_param strace 0)" = 1 ] && strace="strace -f -Y -qq -o /tmp/hvhost.strace"
	# RIG_L1_APPEND=rig.seccomp=off: hvhost without its seccomp filters.
	local seccomp=
	[ "$(rig_param seccomp on)" = off ] && seccomp="--seccomp off"
	timeout -s KILL "$limit" $strace hvhost $seccomp --kernel "${HVHOST_KERNEL:-/boot/bzImage}" --initrd /boot/l2.cpio --no-xsave \
		--cmdline "console=ttyS0 panic=-1 pci=off no_timer_check rig.scenario=$scen rig.layer=2$clock${HVHOST_EXTRA_CMDLINE:+ $HVHOST_EXTRA_CMDLINE}" \
		--serial file:/tmp/hvhost.console --debug-console file:/tmp/hvhost.dc \
		--report /tmp/hvhost.report "$@" 2>/tmp/hvhost.err &
	HVHOST_PID=$!
}

# rig_console_reader: the L1 side of L2's debug console, which hvhost
# writes to a FIFO; it takes each line as it arrives, until hvhost closes
# the console:
#  - every line goes to /tmp/hvhost.ktap, which checks read afterwards;
#  - a mark, "# rig: TEXT" (rig_mark), goes to /tmp/hvhost.marks stamped
#    with L1's uptime and wall clock on arrival ("UPTIME EPOCH TEXT"), and
#    to the events FIFO
#    (fd 8) that hvhost_wait_mark reads;
#  - a request, "# rig: request SEQ hvctl ARGS" (rig_request), is run as
#    "hvctl $HVHOST_API ARGS" and answered on the console's input with
#    "ack SEQ ANSWER" (hvctl's answer on one line); "# rig: request SEQ
#    stats" saves hvhost's `stats` records to /tmp/hvctl.stats (for checks
#    of what the exit report no longer has, such as a rescinded device's
#    counters: stats_is), "# rig: request SEQ stats NAME" to
#    /tmp/hvctl.stats.NAME (both end with hvhost's "process open_fds=N"
#    record); a request of
#    another kind is answered "ack SEQ error: unknown request".
# The end of the console is the event "eof".
rig_console_reader() {
	local line seq what answer
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%s\n' "$line" >>/tmp/hvhost.ktap
		case $line in
		"# rig: "*) ;;
		*) continue ;;
		esac
		echo "$(cut -d' ' -f1 /proc/uptime) $(date +%s) ${line#\# rig: }" >>/tmp/hvhost.marks
		case $line in
		"# rig: request "*)
			seq=${line#\# rig: request }
			what=${seq#* }
			seq=${seq%% *}
			case $what in
			"hvctl "*) answer=$(hvctl $HVHOST_API ${what#hvctl } 2>&1 | tr -s '\n' ' ' | tr -cd ' -~') ;;
			stats | "stats "*)
				local saved=/tmp/hvctl.stats
				[ "$what" = stats ] || saved=/tmp/hvctl.stats.${what#stats }
				if hvctl $HVHOST_API stats >"$saved" 2>&1; then
					answer="ok $(wc -l <"$saved") records saved"
				else
					answer="error: $(head -1 "$saved")"
				fi
				;;
			*) answer="error: unknown request" ;;
			esac
			answer=${answer% }
			echo "request $seq: $what -> $answer" >>/tmp/hvhost.ctl
			# The control socket takes at most 256 bytes a line.
			hvctl $HVHOST_API debugcon "ack $seq $(echo "$answer" | cut -c1-200)" >/dev/null 2>&1 ||
				echo "request $seq: the answer could not be sent" >>/tmp/hvhost.ctl
			;;
		esac
		printf '%s\n' "$line" >&8
	done
	echo eof >&8
}

# rig_request WHAT...: L2 asks L1 for WHAT (today "hvctl ARGS": a request
# on hvhost's control socket, for a VM started with --api-socket
# $HVHOST_API) and waits up to 60 s for the answer, which comes back on the
# debug console's input (rig_console_reader). RIG_ANSWER is the answer
# (hvctl's: "ok ..." or "error: ..."); true if it is "ok".
RIG_REQUEST_NR=0
rig_request() {
	local line
	RIG_REQUEST_NR=$((RIG_REQUEST_NR + 1))
	RIG_ANSWER=
	rig_mark "request $RIG_REQUEST_NR $*"
	while line=$(rig-debugcon -r $KTAP_PORT 60); do
		case $line in
		"ack $RIG_REQUEST_NR "*)
			RIG_ANSWER=${line#ack $RIG_REQUEST_NR }
			echo "# request $RIG_REQUEST_NR ($*): $RIG_ANSWER" >/dev/console
			[ "${RIG_ANSWER%% *}" = ok ]
			return
			;;
		# The answer to an earlier request that was given up on.
		*) echo "# request $RIG_REQUEST_NR ($*): stale answer '$line'" >/dev/console ;;
		esac
	done
	RIG_ANSWER="error: no answer within 60 s"
	echo "# request $RIG_REQUEST_NR ($*): $RIG_ANSWER" >/dev/console
	return 1
}

# hvhost_term_when MARK SECONDS: once the guest's debug console shows the
# line MARK (or after SECONDS, or when hvhost ended), asks hvhost to stop
# with SIGTERM, which it passes on to the guest as a shutdown request; says
# which of the three it was. The guest's requests are served meanwhile, as
# always (rig_console_reader).
hvhost_term_when() {
	if hvhost_wait_mark "$1" "$2"; then
		echo "# guest ready after $HVHOST_WAITED s; sending SIGTERM to hvhost"
	elif ! kill -0 $HVHOST_PID 2>/dev/null; then
		echo "# hvhost ended after $HVHOST_WAITED s before the guest was ready"
	else
		echo "# guest not ready after $HVHOST_WAITED s; sending SIGTERM to hvhost"
	fi
	kill -TERM $HVHOST_PID 2>/dev/null
}

# hvhost_wait_mark MARK SECONDS: waits until the guest's debug console has
# shown the line MARK, hvhost closed it, or SECONDS passed (HVHOST_WAITED:
# how long); true if the mark came. It wakes on each mark as it arrives
# (the events rig_console_reader sends).
hvhost_wait_mark() {
	local mark=$1 start now ev
	start=$(date +%s)
	now=$start
	while ! grep -q "^$mark" /tmp/hvhost.ktap && [ $((now - start)) -lt "$2" ]; do
		IFS= read -r -t $(($2 - (now - start))) ev <&8 || break
		now=$(date +%s)
		case $ev in
		"$mark"*) break ;;
		eof) break ;;
		esac
	done
	HVHOST_WAITED=$(($(date +%s) - start))
	grep -q "^$mark" /tmp/hvhost.ktap
}

# The control socket of a VM started with --api-socket $HVHOST_API, which
# a guest's requests need (rig_request); rig_console_reader serves them
# and logs each ("request SEQ: WHAT -> ANSWER") to /tmp/hvhost.ctl.
HVHOST_API=/tmp/hvhost.api

# hvhost_stats_then_shutdown MARK SECONDS: for a guest started with
# --api-socket $HVHOST_API: once it shows MARK, asks hvhost for its `stats`
# (HVCTL_STATS; its records also in /tmp/hvctl.stats, for kv) and to shut
# the guest down (HVCTL_SHUTDOWN, hvctl's answer); a guest that never shows
# it gets SIGTERM.
hvhost_stats_then_shutdown() {
	HVCTL_STATS=none HVCTL_SHUTDOWN=none
	: >/tmp/hvctl.stats
	if hvhost_wait_mark "$1" "$2"; then
		HVCTL_STATS=$(hvctl $HVHOST_API stats 2>&1)
		echo "$HVCTL_STATS" >/tmp/hvctl.stats
		HVCTL_SHUTDOWN=$(hvctl $HVHOST_API shutdown 2>&1)
	else
		echo "# the guest was not ready after $HVHOST_WAITED s"
		kill -TERM $HVHOST_PID 2>/dev/null
	fi
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
	# A reader still waiting for hvhost to open the console (hvhost ended
	# before it did) sees it opened and closed: it ends.
	{ :; } 9<>/tmp/hvhost.dc
	wait $RIG_READER_PID
	exec 8<&-
	{
		echo "==== hvhost $HVHOST_ARGS (status $HVHOST_STATUS: $(hvhost_status_text $HVHOST_STATUS)): guest console ===="
		cat /tmp/hvhost.console
		echo "==== hvhost $HVHOST_ARGS: hvhost log ===="
		cat /tmp/hvhost.err
		echo "==== hvhost $HVHOST_ARGS: hvhost report ===="
		cat /tmp/hvhost.report 2>/dev/null
		[ -s /tmp/hvhost.strace ] && hvhost_syscalls
	} | rig-debugcon 0xeb
}

# hvhost_syscalls: from strace's record (rig.strace=1), each hvhost
# thread kind's system calls ("syscalls thread=vcpu: ioctl write ..."), the
# vCPU threads as one.
hvhost_syscalls() {
	echo "==== hvhost $HVHOST_ARGS: system calls by thread ===="
	sed -n 's/^[0-9]*<\([^>]*\)> \([a-z0-9_]*\)(.*/\1 \2/p; s/^[0-9]*<\([^>]*\)> <\.\.\. \([a-z0-9_]*\) resumed>.*/\1 \2/p' \
		/tmp/hvhost.strace | sed 's/^vcpu[0-9]* /vcpu /' | sort -u |
		awk '{ s[$1] = s[$1] " " $2 } END { for (t in s) print "syscalls thread=" t ":" s[t] }' | sort
	# And the ioctl requests, which the filters allow by type.
	sed -n 's/^[0-9]*<\([^>]*\)> ioctl([0-9]*, \([A-Za-z0-9_]*\).*/\1 \2/p' \
		/tmp/hvhost.strace | sed 's/^vcpu[0-9]* /vcpu /' | sort -u |
		awk '{ s[$1] = s[$1] " " $2 } END { for (t in s) print "ioctls thread=" t ":" s[t] }' | sort
	# And the files each opens (a filter that forbids openat names no path).
	sed -n 's/^[0-9]*<\([^>]*\)> openat([^,]*, "\([^"]*\)".*/\1 \2/p' \
		/tmp/hvhost.strace | sed 's/^vcpu[0-9]* /vcpu /' | sort -u |
		awk '{ s[$1] = s[$1] " " $2 } END { for (t in s) print "opens thread=" t ":" s[t] }' | sort
	rm -f /tmp/hvhost.strace
}

# hvhost_verdict_or_bail WHAT: a guest that hung (killed) or vanished
# before its KTAP plan (a triple fault, say) gave no verdict: "Bail out!",
# and the runner boots the scenario once more (tests/run.py).
hvhost_verdict_or_bail() {
	if [ "$HVHOST_STATUS" = 137 ] || ! grep -q '^1\.\.[0-9]' /tmp/hvhost.ktap; then
		echo "Bail out! no verdict from $1 under hvhost (status $HVHOST_STATUS)"
	fi
}

# hvhost_guest_ktap NAME [SUBTEST]: the guest's KTAP document (in
# /tmp/hvhost.ktap) as a subtest named SUBTEST ("guest"), and check NAME:
# it has a plan and no "not ok".
hvhost_guest_ktap() {
	echo "    # Subtest: ${2:-guest}"
	sed -n '/^K*TAP version/,$p' /tmp/hvhost.ktap | sed 's/^/    /'
	rig_check "$1" sh -c "grep -q '^1\.\.[1-9]' /tmp/hvhost.ktap && ! grep -q '^not ok' /tmp/hvhost.ktap"
}

# report_is RECORD_SELECTOR KEY VALUE...: in hvhost's exit report (or the
# file RIG_REPORT), each KEY of the record is VALUE (pairs after the
# selector); says which is not.
report_is() {
	local sel=$1 v
	shift
	while [ $# -ge 2 ]; do
		v=$(kv "${RIG_REPORT:-/tmp/hvhost.report}" "$sel" "$1")
		[ "$v" = "$2" ] || { echo "# report: $sel: $1=${v:-(none)}, want $2"; return 1; }
		shift 2
	done
}

# stats_is RECORD_SELECTOR KEY VALUE...: report_is on the stats a guest had
# L1 save (rig_request stats).
stats_is() {
	local RIG_REPORT=/tmp/hvctl.stats
	report_is "$@"
}

# hvhost_vmbus_clean: hvhost's exit report (its vmbus record shown as a
# comment) counts no dropped message, no refusal, no channel fault, and no
# error logged.
hvhost_vmbus_clean() {
	grep '^vmbus ' /tmp/hvhost.report | sed 's/^/# /'
	report_is vmbus dropped 0 faults 0 opens_refused 0 gpadls_refused 0 modifies_refused 0 &&
		report_is exit errors 0
}

# hvhost_shutdown_accepted: the guest accepted hvhost's one shutdown
# request (the shutdown device's counters in the exit report).
hvhost_shutdown_accepted() {
	report_is name=shutdown accepted 1 refused 0
}

# hvhost_heartbeats_advance MIN: the guest answered more than MIN of
# hvhost's heartbeats (the exit report's count).
hvhost_heartbeats_advance() {
	local n
	n=$(kv /tmp/hvhost.report vmbus heartbeats)
	echo "# heartbeats answered: ${n:-none}"
	[ -n "$n" ] && [ "$n" -gt "$1" ]
}

# rig_check NAME CMD...: the next result: passed if CMD succeeds, else
# failed. ktap_helpers.sh's ktap_test_result would split quoted arguments.
rig_check() {
	local what=$1
	shift
	if "$@"; then rig_ok "$what"; else rig_not_ok "$what"; fi
}

# rig_ok "NAME[ # DIAGNOSTIC]": the next result, passed (ktap_test_pass,
# which echoes it unquoted: no pathname expansion of a diagnostic).
rig_ok() {
	set -f
	ktap_test_pass "$1"
	set +f
}

# rig_not_ok "NAME[ # DIAGNOSTIC]": the next result, failed
# (ktap_test_fail; KTAP_CNT_FAIL counts the failures of this test).
rig_not_ok() {
	set -f
	ktap_test_fail "$1"
	set +f
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
	hvhost_run "$gscen" --cpus "$n" "$@"
	hvhost_verdict_or_bail "the guest"
	if [ "$HVHOST_STATUS" = 0 ]; then rig_ok "hvhost_exit_status_0"; else
		rig_not_ok "hvhost_exit_status_0 # status $HVHOST_STATUS: $(hvhost_status_text $HVHOST_STATUS)"; fi
	if grep -q "^# rig: nproc=$n\$" /tmp/hvhost.ktap; then rig_ok "guest_sees_${n}_cpus"; else
		rig_not_ok "guest_sees_${n}_cpus # guest said: $(grep '^# rig: nproc=' /tmp/hvhost.ktap)"; fi
	hvhost_guest_ktap guest_tests guest_tests
	if grep -q 'reboot: Power down' /tmp/hvhost.console; then rig_ok "guest_powered_off"; else
		rig_not_ok "guest_powered_off"; fi
	missing=
	i=0
	while [ $i -lt "$n" ]; do
		[ -n "$(kv /tmp/hvhost.report "vcpu index=$i" io_out)" ] || missing="$missing vcpu$i"
		i=$((i + 1))
	done
	if [ -z "$missing" ]; then rig_ok "exit_summary_per_vcpu"; else
		rig_not_ok "exit_summary_per_vcpu # missing:$missing"; fi
	! grep -q '^not ok' /tmp/hvhost.ktap && [ "$HVHOST_STATUS" = 0 ] && [ -z "$missing" ] &&
		grep -q "^# rig: nproc=$n\$" /tmp/hvhost.ktap
}
