# vmbus_hvguest_hvhost: hv_guest's VMBus client under hvhost's VMBus server
# (2 vCPUs): connected at 6.0, the heartbeat, shutdown and timesync devices
# listed with hv_guest's drivers bound and their channels open, heartbeats
# answered (hvhost logs the sequence advancing), the host's time sample
# applied; 20 unload/reload cycles with the channels open, and hvhost sees
# every one closed and VMBus unloaded each time; finally SIGTERM to hvhost
# asks the guest to shut down, hv_guest's shutdown driver accepts and the
# guest powers off; hvhost exits 0 with no VMBus message dropped.
# timeout: 600
rig_vmbus_hvguest() {
	echo "TAP version 13"
	echo "1..7"
	: >/tmp/hvhost.ktap
	: >/tmp/hvhost.console
	timeout -s KILL 500 hvhost --kernel /boot/bzImage --initrd /boot/l2.cpio --no-xsave --cpus 2 \
		--cmdline "console=ttyS0 panic=-1 pci=off no_timer_check rig.scenario=_vmbus_hvguest_guest rig.layer=2" \
		--serial file:/tmp/hvhost.console --debug-console file:/tmp/hvhost.ktap 2>/tmp/hvhost.err &
	pid=$!
	i=0
	while [ $i -lt 450 ] && kill -0 $pid 2>/dev/null &&
		! grep -q '^# rig: vmbus ready' /tmp/hvhost.ktap; do
		sleep 1
		i=$((i + 1))
	done
	echo "# guest ready after ${i} s; sending SIGTERM to hvhost"
	kill -TERM $pid 2>/dev/null
	wait $pid
	status=$?
	{
		echo "==== hvhost (status $status): guest console ===="
		cat /tmp/hvhost.console
		echo "==== hvhost: hvhost log ===="
		cat /tmp/hvhost.err
	} | rig-debugcon 0xeb
	c=/tmp/hvhost.console e=/tmp/hvhost.err
	if [ "$status" = 137 ] || ! grep -q '^1\.\.[0-9]' /tmp/hvhost.ktap; then
		echo "Bail out! no verdict from hv_guest under hvhost (status $status)"
	fi
	failed=
	check() { # N NAME CONDITION-COMMAND... (not $name: run_test's)
		cn=$1 cname=$2
		shift 2
		if "$@"; then echo "ok $cn $cname"; else echo "not ok $cn $cname"; failed=1; fi
	}
	check 1 hvhost_exit_status_0 [ "$status" = 0 ]
	echo "    # Subtest: guest"
	sed -n '/^KTAP version/,$p' /tmp/hvhost.ktap | sed 's/^/    /'
	check 2 guest_tests sh -c "grep -q '^1\.\.[1-9]' /tmp/hvhost.ktap && ! grep -q '^not ok' /tmp/hvhost.ktap"
	heartbeats_advance() {
		local first last
		first=$(sed -n 's/.*heartbeat: guest sequence \([0-9]*\).*/\1/p' $e | head -1)
		last=$(sed -n 's/.*heartbeat: guest sequence \([0-9]*\).*/\1/p' $e | tail -1)
		echo "# heartbeat sequence $first .. $last"
		[ -n "$first" ] && [ "$last" -gt "$first" ]
	}
	check 3 heartbeats_advance heartbeats_advance
	# 21 loads (20 cycles and the last one) close 3 channels each on unload,
	# except the last, which powers off with them open: 60 closes and 20
	# UNLOADs at least.
	closes=$(grep -c 'vmbus: channel [0-9]* (.*) closed' $e)
	unloads=$(grep -c 'vmbus: the guest unloads VMBus' $e)
	echo "# hvhost saw $closes channel closes and $unloads unloads"
	check 4 host_sees_channels_closed_each_cycle sh -c "[ $closes -ge 60 ] && [ $unloads -ge 20 ]"
	grep -hE 'shutdown: (asking|the guest accepted|request received)' $e $c | sed 's/^/# /'
	check 5 shutdown_accepted sh -c "grep -q 'shutdown: the guest accepted' $e &&
		grep -q 'shutdown: request received - graceful shutdown initiated' $c"
	bad='WARNING:|BUG:|Call Trace|Oops|unchecked MSR access|vmbus: rejected'
	grep -E "$bad" $c | sed 's/^/# bad: /'
	check 6 no_warnings sh -c "! grep -qE '$bad' $c"
	grep -E 'vmbus: [0-9]+ messages' $e | sed 's/^/# /'
	check 7 no_vmbus_errors sh -c "grep -qE 'vmbus: [0-9]+ messages \(0 dropped\).* 0 channel faults' $e &&
		! grep -q 'hvhost: error:' $e"
	[ -z "$failed" ]
}

guest() {
	run_test vmbus_hvguest_hvhost rig_vmbus_hvguest
}
