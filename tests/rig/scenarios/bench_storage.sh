# bench_storage: the paravirtual disks against emulated ones, all in one
# L1 on KVM, each guest with 2 vCPUs, 512 MiB and the same 64 MiB raw
# image on L1's tmpfs. Five configurations, interleaved, 3 rounds:
#   ide      QEMU's PIIX IDE (ata_piix), emulated
#   ahci     QEMU's AHCI, emulated
#   virtio   QEMU's virtio-blk
#   storvsc  hvhost's SCSI controller, Linux's storvsc (the reference
#            kernel: the only one here with Linux's Hyper-V drivers)
#   hvguest  hvhost's SCSI controller, hv_guest's disk driver
# The rig kernel is the guest of every configuration but storvsc.
# Workloads (fio, direct I/O, libaio; _bench_storage_guest): 4 KiB random
# read at queue depth 1 and 32, 4 KiB random write at 32, 1 MiB sequential
# read at 4. Per configuration and workload: IOPS, KVM exits per I/O
# (L1's KVM debugfs counter, sampled at the guest's phase marks), the
# disk's interrupts per I/O, the guest's CPU time per I/O (its /proc/stat),
# and how busy the VMM's threads were in L1 (vcpu_busy, the vCPUs summed;
# other_busy, the busiest other thread: hvhost's I/O thread, QEMU's main
# loop; 1.0 is one L1 CPU); per round, IOPS as ratios to IDE and to
# virtio-blk of the same round. run.py gives the medians; bench/plot.py
# draws them. A benchmark (make bench), not a test: it fails only when a
# run does not complete.
# bench
# timeout: 3000
MIB=1048576
BENCH_STORAGE_CONFIGS="ide ahci virtio storvsc hvguest"
BENCH_STORAGE_ROUNDS=3
BENCH_STORAGE_WORKLOADS="randread_4k_qd1 randread_4k_qd32 randwrite_4k_qd32 seqread_1m_qd4"

. /rig/scenarios/_bench_lib.sh
QEMU_GUEST=_bench_storage_guest

guest() {
	run_test bench_storage bench_storage_rounds
}

# bench_one CONFIG: one guest's run; a sample per workload, whose IOPS
# also go to /tmp/iops.CONFIG.WORKLOAD for the round's ratios.
bench_one() {
	local cfg=$1 img=/tmp/disks/bench.img w e0 e1 line iops ios irqs ticks pid threads
	case $cfg in
	ide) qemu_start 600 ide -drive file=$img,format=raw,if=ide,cache=writeback ;;
	ahci) qemu_start 600 ahci -device ahci,id=ahci -drive id=d,file=$img,format=raw,if=none,cache=writeback \
		-device ide-hd,drive=d,bus=ahci.0 ;;
	virtio) qemu_start 600 virtio -drive file=$img,format=raw,if=virtio,cache=writeback ;;
	storvsc) HVHOST_KERNEL=/boot/ref-bzImage HVHOST_EXTRA_CMDLINE=rig.bench=storvsc \
		hvhost_start 600 _bench_storage_guest --cpus 2 --memory 512 --disk $img ;;
	# (hvhost_start gives the rig kernel its TSC rate: a clock fio can use.)
	hvguest) HVHOST_EXTRA_CMDLINE=rig.bench=hvguest \
		hvhost_start 600 _bench_storage_guest --cpus 2 --memory 512 --disk $img ;;
	esac
	: >/tmp/exits.$cfg
	pid=$(wait_for 10 vmm_pid) || echo "# $cfg: the VMM's process not found (no thread samples)"
	for w in $BENCH_STORAGE_WORKLOADS; do
		hvhost_wait_mark "# rig: phase $w start" 300 || break
		e0=$(vm_exits)
		thread_ticks "$pid" >/tmp/ticks.before
		hvhost_wait_mark "# rig: phase $w end" 300 || break
		e1=$(vm_exits)
		thread_ticks "$pid" >/tmp/ticks.after
		echo "$w $((e1 - e0)) $(busy /tmp/ticks.before /tmp/ticks.after)" >>/tmp/exits.$cfg
	done
	hvhost_wait
	grep '# config \|# irq lines' /tmp/hvhost.ktap | sed 's/^ *//'

	for w in $BENCH_STORAGE_WORKLOADS; do
		line=$(grep "# bench storage config=$cfg workload=$w " /tmp/hvhost.ktap) ||
			{ echo "# $cfg: no result for $w (run incomplete)"; return 1; }
		iops=$(echo "$line" | sed 's/.* iops=\([0-9.]*\).*/\1/')
		ios=$(echo "$line" | sed 's/.* ios=\([0-9]*\).*/\1/')
		irqs=$(echo "$line" | sed 's/.* irqs=\([0-9]*\).*/\1/')
		ticks=$(echo "$line" | sed 's/.* cpu_ticks=\([0-9]*\).*/\1/')
		exits=$(awk -v w="$w" '$1 == w { print $2 }' /tmp/exits.$cfg)
		# (The thread's name is not a sample field: it would split the row.)
		threads=$(awk -v w="$w" '$1 == w { print $3, $4 }' /tmp/exits.$cfg)
		echo "# $cfg $w: the busiest thread beside the vCPUs: $(awk -v w="$w" '$1 == w { print $5 }' /tmp/exits.$cfg)"
		[ -n "$exits" ] && [ "$ios" -gt 0 ] || { echo "# $cfg: no exit count for $w"; return 1; }
		# The phase as L1's clock saw it (the marks' arrival stamps): fio
		# runs 8 s of the guest's time (_bench_storage_guest) after a 1 s
		# pause, so about 9 s here says the guest's clock is right.
		l1_s=$(awk -v a="phase $w start" -v b="phase $w end" '
			{ t = $3; for (i = 4; i <= NF; i++) t = t " " $i }
			t == a { s = $1 } t == b { e = $1 } END { printf "%.1f", e - s }' /tmp/hvhost.marks)
		echo "$iops" >/tmp/iops.$cfg.$w
		awk -v c="$cfg" -v w="$w" -v iops="$iops" -v ios="$ios" -v e="$exits" -v q="$irqs" -v k="$ticks" -v l1="$l1_s" 'BEGIN {
			printf "# sample storage config=%s workload=%s iops=%s exits_per_io=%.2f irqs_per_io=%.3f guest_cpu_us_per_io=%.1f phase_l1_s=%s",
				c, w, iops, e / ios, q / ios, k * 10000 / ios, l1 }'
		echo " $threads"
	done
}

bench_storage_rounds() {
	local round cfg w failed=
	mkdir -p /tmp/disks
	mount -t tmpfs -o size=96m tmpfs /tmp/disks || return 1
	dd if=/dev/urandom of=/tmp/disks/bench.img bs=$MIB count=64 2>/dev/null
	for round in $(seq 1 $BENCH_STORAGE_ROUNDS); do
		rm -f /tmp/iops.*
		for cfg in $BENCH_STORAGE_CONFIGS; do
			echo "# round $round: $cfg"
			bench_one "$cfg" || failed=1
		done
		for cfg in $BENCH_STORAGE_CONFIGS; do
			for w in $BENCH_STORAGE_WORKLOADS; do
				[ -s /tmp/iops.$cfg.$w ] && [ -s /tmp/iops.ide.$w ] && [ -s /tmp/iops.virtio.$w ] || continue
				awk -v c="$cfg" -v w="$w" -v x="$(cat /tmp/iops.$cfg.$w)" -v ide="$(cat /tmp/iops.ide.$w)" \
					-v vb="$(cat /tmp/iops.virtio.$w)" 'BEGIN {
					printf "# sample storage_ratio config=%s workload=%s vs_ide=%.3f vs_virtio=%.3f\n",
						c, w, x / ide, x / vb }'
			done
		done
	done
	umount /tmp/disks
	[ -z "$failed" ]
}
