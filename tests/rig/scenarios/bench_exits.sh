# bench_exits: hvhost against QEMU, both on KVM in L1 with the same kernel
# and initramfs, 5 interleaved runs each of a guest that reports its uptime
# at /init, measures the raw port-I/O exit (bench/pio_exit.c) and powers
# off. Reports medians: VM lifetime in L1 and the hvhost/QEMU ratio, the
# guest's uptime at /init, KVM exits per run (sampled from L1's KVM debugfs
# every 0.1 s), and cycles per exiting OUT. A benchmark (make bench), not a
# test: it fails only when a run does not complete.
# bench
# timeout: 1500
guest() {
	run_test boot_and_exits rig_bench
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# bench_one VMM: one guest run; appends "VMM lifetime init_uptime exits pio" to /tmp/bench.data.
bench_one() {
	local vmm=$1 pid start end exits=0 v
	: >/tmp/b.ktap
	start=$(uptime_s)
	if [ "$vmm" = hvhost ]; then
		hvhost --kernel /boot/bzImage --initrd /boot/l2.cpio --no-xsave \
			--cmdline "console=ttyS0 panic=-1 pci=off no_timer_check rig.scenario=_bench_guest rig.layer=2" \
			--serial file:/tmp/b.console --debug-console file:/tmp/b.ktap 2>/tmp/b.err &
	else
		qemu-system-x86_64 -enable-kvm -M pc -cpu qemu64,-svm -smp 1 -m 256 \
			-nodefaults -no-user-config -display none -no-reboot -monitor none \
			-L /usr/share/qemu -kernel /boot/bzImage -initrd /boot/l2.cpio \
			-append "console=ttyS0 panic=-1 no_timer_check rig.scenario=_bench_guest rig.layer=2" \
			-serial file:/tmp/b.console \
			-chardev file,id=k,path=/tmp/b.ktap -device isa-debugcon,iobase=0xe9,chardev=k 2>/tmp/b.err &
	fi
	pid=$!
	while kill -0 $pid 2>/dev/null; do
		v=$(cat /sys/kernel/debug/kvm/$pid-*/exits 2>/dev/null | head -n 1)
		[ -n "$v" ] && exits=$v
		sleep 0.1
	done
	wait $pid
	end=$(uptime_s)
	init=$(sed -n 's/^# rig: init_uptime=//p' /tmp/b.ktap)
	pio=$(sed -n 's/.*: \([0-9]*\) cycles per exiting OUT.*/\1/p' /tmp/b.ktap)
	echo "# $vmm: lifetime $(awk "BEGIN{print $end - $start}") s, uptime at /init ${init:-?} s, KVM exits $exits, cycles per exiting OUT ${pio:-?}"
	[ -n "$init" ] && [ -n "$pio" ] || return 1
	echo "$vmm $(awk "BEGIN{print $end - $start}") $init $exits $pio" >>/tmp/bench.data
}

median() { # VMM COLUMN
	awk -v vmm="$1" -v col="$2" '$1 == vmm { print $col }' /tmp/bench.data | sort -n |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

rig_bench() {
	local i failed=
	: >/tmp/bench.data
	for i in 1 2 3 4 5; do
		bench_one hvhost || failed=1
		bench_one qemu || failed=1
	done
	for c in 2 3 4 5; do
		eval "h$c=\$(median hvhost $c) q$c=\$(median qemu $c)"
	done
	echo "# medians of 5:   hvhost | QEMU (-M pc, SeaBIOS) | ratio hvhost/QEMU"
	echo "# VM lifetime (s): $h2 | $q2 | $(awk "BEGIN{printf \"%.2f\", $h2 / $q2}")"
	echo "# uptime at /init (guest s): $h3 | $q3 | $(awk "BEGIN{printf \"%.2f\", $h3 / $q3}")"
	echo "# KVM exits per run: $h4 | $q4 | $(awk "BEGIN{printf \"%.2f\", $h4 / $q4}")"
	echo "# cycles per exiting OUT: $h5 | $q5 | $(awk "BEGIN{printf \"%.2f\", $h5 / $q5}")"
	if [ -n "$failed" ]; then rig_not_ok "boot_and_exits # a run did not complete"; return 1; fi
	rig_ok "boot_and_exits"
}
