# stock_guest_detects_hvhost: stock Linux with CONFIG_HYPERV (the reference
# kernel, /boot/ref-bzImage) boots under hvhost with 2 vCPUs and accepts its
# Hyper-V interface: detection, privilege flags, hypercall page, reference
# TSC page clock source, Hyper-V stimer as clock event device on every CPU;
# no unchecked MSR access, no stimer failure, no warning; its wall clock at
# the end agrees with L1's.
#
# Clock bound: the guest's wall clock starts from hvhost's CMOS RTC (1 s
# resolution) and then runs on the reference TSC page; its last line is
# written just before power-off. L1 reads its own clock after hvhost has
# exited (power-off and teardown take well under 3 s here), so the guest may
# be at most 1 s ahead of L1 and at most 5 s behind it. A clock source or
# timer scaled wrongly by more than a few percent over the run breaks it,
# and the guest's own `sleep 3` must advance its date by 3..4 s.
#
# hv_vmbus is built into the reference kernel but hvhost offers no VMBus
# ACPI device yet (issue 6): its initcall returns -ENODEV silently, which
# this scenario only requires not to warn.
# skip: the reference kernel cannot power off under hvhost: its ACPI table load fails ("AE_BAD_PARAMETER, During Region initialization"; tests/ref.config has no CONFIG_PCI, the rig kernel has and powers off), so hvhost is killed and the clock check measures the kill; checks 2-8 pass
# timeout: 300
rig_stock_guest() {
	echo "TAP version 13"
	echo "1..10"
	HVHOST_KERNEL=/boot/ref-bzImage hvhost_run _stock_guest --cpus 2 --log-level debug
	host_epoch=$(date +%s)
	c=/tmp/hvhost.console
	if [ "$HVHOST_STATUS" = 137 ] || ! grep -q '^1\.\.[0-9]' /tmp/hvhost.ktap; then
		echo "Bail out! no verdict from the reference guest under hvhost (status $HVHOST_STATUS)"
	fi
	failed=
	check() { # N NAME CONDITION-COMMAND...
		n=$1 name=$2
		shift 2
		if "$@"; then echo "ok $n $name"; else echo "not ok $n $name"; failed=1; fi
	}
	check 1 hvhost_exit_status_0 [ "$HVHOST_STATUS" = 0 ]
	grep -m1 'Hypervisor detected' $c | sed 's/^/# /'
	check 2 hypervisor_detected_hyper_v grep -q 'Hypervisor detected: Microsoft Hyper-V' $c
	grep -m1 'Hyper-V: privilege flags' $c | sed 's/^/# /'
	check 3 privilege_flags_logged grep -q 'Hyper-V: privilege flags' $c
	grep -m1 'hypercall page enabled' /tmp/hvhost.err | sed 's/^/# /'
	check 4 hypercall_page_enabled grep -q 'hypercall page enabled' /tmp/hvhost.err
	check 5 clocksource_tsc_page grep -q 'clocksource: Switched to clocksource hyperv_clocksource_tsc_page' $c
	grep '^# rig: clockevent' /tmp/hvhost.ktap
	ce_all() {
		local n
		n=$(grep -c '^# rig: clockevent[0-9]*=Hyper-V clockevent$' /tmp/hvhost.ktap)
		[ "$n" = 2 ]
	}
	check 6 stimer_clockevent_on_both_cpus ce_all
	bad='unchecked MSR access|stimer setup failed|WARNING:|BUG:|Call Trace|Oops'
	grep -E "$bad" $c | sed 's/^/# bad: /'
	check 7 no_warnings_or_msr_faults sh -c "! grep -qE '$bad' $c"
	echo "    # Subtest: guest"
	sed -n '/^KTAP version/,$p' /tmp/hvhost.ktap | sed 's/^/    /'
	check 8 guest_tests sh -c "grep -q '^1\.\.[1-9]' /tmp/hvhost.ktap && ! grep -q '^not ok' /tmp/hvhost.ktap"
	guest_epoch=$(sed -n 's/^# rig: epoch=//p' /tmp/hvhost.ktap)
	echo "# guest epoch ${guest_epoch:-none}, L1 epoch after exit $host_epoch"
	drift_ok() {
		local d
		[ -n "$guest_epoch" ] || return 1
		d=$((host_epoch - guest_epoch))
		echo "# L1 minus guest: $d s (allowed -1..5)"
		[ "$d" -ge -1 ] && [ "$d" -le 5 ]
	}
	check 9 guest_clock_within_bound drift_ok
	check 10 guest_powered_off grep -q 'reboot: Power down' $c
	[ -z "$failed" ]
}

guest() {
	run_test stock_guest_detects_hvhost rig_stock_guest
}
