# hvhost_sandbox: hvhost's sandbox in use (vmm/src/sandbox). Started as
# root with --user 65534:65534 and VMBus on 2 vCPUs, hvhost opens what it
# needs and becomes that user before the guest runs. While the guest
# boots, every one of hvhost's threads must run as that user and group
# (real, effective, saved, filesystem; no other groups) and under a
# seccomp filter (Seccomp: 2 in /proc/PID/task/*/status), with no
# capability left. The guest must still boot and power off, and the exit
# report, opened before the switch, must be written. What a filter does
# with a forbidden call is unit-tested per thread class
# (vmm/src/sandbox/seccomp/tests.rs); every other hvhost scenario runs
# with the filters on, the default. --user refusals are in
# hvhost_bad_input.
# timeout: 300

# hvhost_pid: the PID of the running hvhost (not of `timeout` around it).
hvhost_pid() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = hvhost ] && { echo "${p#/proc/}"; return 0; }
	done
	return 1
}

# sandboxed PID: every thread of PID runs as 65534:65534 under a filter,
# with no capabilities.
sandboxed() {
	local t n=0 bad=0
	for t in /proc/$1/task/*; do
		n=$((n + 1))
		awk -v t="${t##*/}" '
			/^Name:/ { name = $2 }
			/^Uid:/ { if ($2 != 65534 || $3 != 65534 || $4 != 65534 || $5 != 65534) bad = bad " uid=" $2 "," $3 "," $4 "," $5 }
			/^Gid:/ { if ($2 != 65534 || $3 != 65534 || $4 != 65534 || $5 != 65534) bad = bad " gid=" $2 "," $3 "," $4 "," $5 }
			/^Groups:/ { if (NF != 2 || $2 != 65534) bad = bad " groups=" $0 }
			/^CapEff:/ { if ($2 !~ /^0+$/) bad = bad " capeff=" $2 }
			/^CapPrm:/ { if ($2 !~ /^0+$/) bad = bad " capprm=" $2 }
			/^Seccomp:/ { if ($2 != 2) bad = bad " seccomp=" $2 }
			END { if (bad != "") { print "# thread " t " (" name "):" bad; exit 1 } }
		' "$t/status" || bad=1
	done
	echo "# $n threads"
	[ $bad = 0 ] && [ $n -ge 4 ]
}

sandbox_run() {
	local pid= i
	HVHOST_EXTRA_CMDLINE=rig.opt.end=poweroff
	hvhost_start 200 _exit_guest --cpus 2 --user 65534:65534
	HVHOST_EXTRA_CMDLINE=
	# The switch comes before the vCPUs start and the main thread enters its
	# filter right after: wait for that state (the guest is still booting).
	for i in $(seq 150); do
		pid=$(hvhost_pid) && sandboxed "$pid" >/dev/null 2>&1 && break
		sleep 0.2
	done
	rig_check every_thread_runs_as_the_user_under_a_filter sandboxed "$pid"
	hvhost_wait
	rig_check guest_powered_off_status_0 [ "$HVHOST_STATUS" = 0 ]
	rig_check guest_ran grep -q '^# rig: ending with poweroff' /tmp/hvhost.ktap
	rig_check report_written_after_the_switch grep -q '^exit status=0 clean=1' /tmp/hvhost.report
	[ "$KTAP_CNT_FAIL" = 0 ]
}

guest() {
	run_test hvhost_sandbox sandbox_run
}
