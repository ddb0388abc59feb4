# bench_exits: hvhost against QEMU, both on KVM in L1 with the same kernel
# and initramfs, 5 interleaved runs each of a guest that reports its uptime
# at /init, measures the raw port-I/O exit (bench/pio_exit.c) and powers
# off. Samples per run: VM lifetime in L1, the guest's uptime at /init, KVM
# exits per run (sampled from L1's KVM debugfs every 0.1 s), and cycles per
# exiting OUT, per VMM and as hvhost/QEMU ratios of each interleaved pair;
# run.py gives the medians. A benchmark (make bench), not a
# test: it fails only when a run does not complete.
# bench
# timeout: 1500
guest() {
	run_test boot_and_exits rig_bench
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# bench_one VMM: one guest run; its sample, whose values also go to
# /tmp/bench.VMM ("lifetime init_uptime exits pio") for the pair's ratios.
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
	[ -n "$init" ] && [ -n "$pio" ] || { echo "# $vmm: no uptime at /init or no exit cost (run incomplete)"; return 1; }
	echo "$(awk "BEGIN{print $end - $start}") $init $exits $pio" >/tmp/bench.$vmm
	set -- $(cat /tmp/bench.$vmm)
	echo "# sample exits vmm=$vmm lifetime_s=$1 init_uptime_s=$2 kvm_exits=$3 cycles_per_exiting_out=$4"
}

rig_bench() {
	local i failed=
	for i in 1 2 3 4 5; do
		rm -f /tmp/bench.hvhost /tmp/bench.qemu
		bench_one hvhost || failed=1
		bench_one qemu || failed=1
		[ -s /tmp/bench.hvhost ] && [ -s /tmp/bench.qemu ] || continue
		paste -d' ' /tmp/bench.hvhost /tmp/bench.qemu | awk '{
			printf "# sample exits_ratio of=hvhost/qemu lifetime=%.3f init_uptime=%.3f kvm_exits=%.3f cycles_per_exiting_out=%.3f\n",
				$1 / $5, $2 / $6, $3 / $7, $4 / $8
		}'
	done
	if [ -n "$failed" ]; then rig_not_ok "boot_and_exits # a run did not complete"; return 1; fi
	rig_ok "boot_and_exits"
}
