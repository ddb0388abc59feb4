# bench_hypercalls: the Hyper-V contract's costs as the guest sees them,
# under hvhost (its user-space contract, --test-device) and under QEMU with
# KVM's in-kernel Hyper-V (and QEMU's hyperv-testdev), both in the same L1:
# guest cycles (median of 3000) for a null fast hypercall, a fast
# HvSignalEvent, and a HvPostMessage echo round trip, each as a ratio to the
# raw port-I/O exit measured in the same guest run; VM exits per operation
# (KVM's exit counter in L1 sampled at the guest's phase marks); SynIC
# interrupts per echoed message. 2 interleaved runs per VMM, medians. A
# benchmark (make bench), not a test: it fails only when a run does not
# complete.
# bench
# timeout: 900
guest() {
	run_test hypercalls rig_bench_hypercalls
}

# bench_hc_one VMM: one guest run; appends "VMM PHASE cycles exits_per_op interrupts ops"
# lines to /tmp/bhc.data.
bench_hc_one() {
	local vmm=$1 pid exits=0 v seen=0 line n p
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
	for p in raw_exit null_hypercall signal_event message_round_trip; do
		line=$(grep -m1 "# bench $p median" /tmp/bh.ktap | sed 's/^ *//')
		[ -n "$line" ] || { echo "# $vmm: no result for $p"; return 1; }
		set -- $line # '#' bench P median_cycles M ops N interrupts I
		awk -v vmm="$vmm" -v p="$p" -v cyc="$5" -v ops="$7" -v irq="$9" '
			$1 == p && $2 == "begin" { b = $3 } $1 == p && $2 == "end" { e = $3 }
			END { printf "%s %s %d %.2f %.2f %d\n", vmm, p, cyc, (e - b) / ops, irq / ops, ops }' \
			/tmp/bh.marks >>/tmp/bhc.data
	done
	grep '# hypercalls: ' /tmp/bh.ktap | sed "s/^ *# /# $vmm /"
}

median_of() { # VMM PHASE COLUMN
	awk -v vmm="$1" -v p="$2" -v col="$3" '$1 == vmm && $2 == p { print $col }' /tmp/bhc.data | sort -n |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

rig_bench_hypercalls() {
	local i failed= vmm p raw c
	: >/tmp/bhc.data
	for i in 1 2; do
		bench_hc_one hvhost || failed=1
		bench_hc_one qemu || failed=1
	done
	echo "# medians of 2 runs; cycles are guest TSC cycles per operation, ratio = cycles / raw exit cycles of the same VMM"
	echo "# VMM     operation           cycles   ratio  exits/op  SINT irqs/op"
	for vmm in hvhost qemu; do
		raw=$(median_of $vmm raw_exit 3)
		for p in raw_exit null_hypercall signal_event message_round_trip; do
			c=$(median_of $vmm $p 3)
			awk -v vmm=$vmm -v p=$p -v c="$c" -v raw="$raw" -v ex="$(median_of $vmm $p 4)" -v irq="$(median_of $vmm $p 5)" \
				'BEGIN { printf "# %-7s %-19s %7d  %5.2f  %8.2f  %12.2f\n", vmm, p, c, raw ? c / raw : 0, ex, irq }'
		done
	done
	if [ -n "$failed" ]; then rig_not_ok "hypercalls # a run did not complete"; return 1; fi
	rig_ok "hypercalls"
}
