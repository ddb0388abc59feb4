# bench_hypercalls: the Hyper-V contract's costs as the guest sees them,
# under hvhost (its user-space contract, --test-device) and under QEMU with
# KVM's in-kernel Hyper-V (and QEMU's hyperv-testdev), both in the same L1:
# guest cycles (median of 3000) for a null fast hypercall, a fast
# HvSignalEvent, and a HvPostMessage echo round trip, each as a ratio to the
# raw port-I/O exit measured in the same guest run; VM exits per operation
# (KVM's exit counter in L1 sampled at the guest's phase marks); SynIC
# interrupts per echoed message. 2 interleaved runs per VMM; run.py gives
# the medians. A
# benchmark (make bench), not a test: it fails only when a run does not
# complete.
# bench
# timeout: 900
guest() {
	run_test hypercalls rig_bench_hypercalls
}

# bench_hc_one VMM: one guest run; a sample record per operation (guest
# TSC cycles, their ratio to this run's raw exit, KVM exits and SINT
# interrupts per operation), which run.py turns into the table of medians.
bench_hc_one() {
	local vmm=$1 pid exits=0 v seen=0 line n p raw cyc
	local cmdline="console=ttyS0 panic=-1 no_timer_check rig.scenario=_bench_hc_guest rig.layer=2"
	: >/tmp/bh.ktap
	: >/tmp/bh.marks
	if [ "$vmm" = hvhost ]; then
		hvhost --kernel /boot/bzImage --initrd /boot/l2.cpio --no-xsave --test-device --cpus 1 \
			--cmdline "$cmdline pci=off" \
			--serial file:/tmp/bh.console --debug-console file:/tmp/bh.ktap 2>/tmp/bh.err &
	else
		qemu-system-x86_64 -enable-kvm -M pc -cpu qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time,-svm \
			-smp 1 -m 256 -nodefaults -no-user-config -display none -no-reboot -monitor none \
			-L /usr/share/qemu -kernel /boot/bzImage -initrd /boot/l2.cpio -append "$cmdline" \
			-serial file:/tmp/bh.console -device hyperv-testdev \
			-chardev file,id=k,path=/tmp/bh.ktap -device isa-debugcon,iobase=0xe9,chardev=k 2>/tmp/bh.err &
	fi
	pid=$!
	while kill -0 $pid 2>/dev/null; do
		v=$(cat /sys/kernel/debug/kvm/$pid-*/exits 2>/dev/null | head -n 1)
		[ -n "$v" ] && exits=$v
		n=$(grep -c '^# phase ' /tmp/bh.ktap)
		while [ "$seen" -lt "$n" ]; do
			seen=$((seen + 1))
			line=$(grep '^# phase ' /tmp/bh.ktap | sed -n "${seen}p")
			echo "${line#\# phase } $exits" >>/tmp/bh.marks
		done
		sleep 0.05
	done
	wait $pid
	raw=$(kv /tmp/bh.ktap phase=raw_exit median_cycles)
	for p in raw_exit null_hypercall signal_event message_round_trip; do
		cyc=$(kv /tmp/bh.ktap phase=$p median_cycles)
		[ -n "$cyc" ] && [ -n "$raw" ] || { echo "# $vmm: no result for $p"; return 1; }
		awk -v vmm="$vmm" -v p="$p" -v cyc="$cyc" -v raw="$raw" \
			-v ops="$(kv /tmp/bh.ktap phase=$p ops)" -v irq="$(kv /tmp/bh.ktap phase=$p interrupts)" '
			$1 == p && $2 == "begin" { b = $3 } $1 == p && $2 == "end" { e = $3 }
			END {
				printf "# sample hypercalls vmm=%s op=%s cycles=%d ratio_to_raw_exit=%.3f exits_per_op=%.3f sint_irqs_per_op=%.3f\n",
					vmm, p, cyc, cyc / raw, (e - b) / ops, irq / ops
			}' /tmp/bh.marks
	done
	grep '# hypercalls: ' /tmp/bh.ktap | sed "s/^ *# /# $vmm /"
}

rig_bench_hypercalls() {
	local i failed= vmm p raw c
	for i in 1 2; do
		bench_hc_one hvhost || failed=1
		bench_hc_one qemu || failed=1
	done
	if [ -n "$failed" ]; then rig_not_ok "hypercalls # a run did not complete"; return 1; fi
	rig_ok "hypercalls"
}
