# _bench_storage_guest: not a scenario of its own; the guest side of
# bench_storage. The kernel command line names the configuration
# (rig.bench=ide|ahci|virtio|storvsc|hvguest): the guest finds that
# disk (loading hv_guest for hvguest), prints fio's version, and runs each
# workload of BENCH_STORAGE_WORKLOADS on the raw disk with fio (direct
# I/O, libaio), announcing it on the debug console as it starts and ends
# (L1 samples KVM's exit counter at those marks). Per workload it reports
# "# bench storage config=C workload=W iops=N ios=N irqs=N": IOPS, I/Os
# done, and the disk's own interrupts meanwhile (its /proc/interrupts
# lines: the controller's, or hv_guest's SINT for hvguest, the VMBus
# callback vector for storvsc).
# helper
guest() {
	run_test bench_storage_workloads bench_storage_workloads
}

# NAME:RW:BLOCK:DEPTH
BENCH_STORAGE_WORKLOADS="randread_4k_qd1:randread:4k:1 randread_4k_qd32:randread:4k:32 randwrite_4k_qd32:randwrite:4k:32 seqread_1m_qd4:read:1m:4"
BENCH_STORAGE_SECONDS=8

. /rig/scenarios/_storage_lib.sh

bench_config() { sed -n 's/.*rig\.bench=\([a-z]*\).*/\1/p' /proc/cmdline; }

first_sd() {
	local d
	for d in /sys/block/sd*; do
		[ -e "$d" ] && { basename "$d"; return 0; }
	done
	return 1
}

# bench_disk CONFIG: sets DISK, the disk of the configuration, and
# IRQ_PAT, the /proc/interrupts lines of its interrupts.
bench_disk() {
	case $1 in
	ide) IRQ_PAT='ata_piix'; DISK=$(wait_for 30 first_sd) ;;
	ahci) IRQ_PAT='ahci'; DISK=$(wait_for 30 first_sd) ;;
	virtio) IRQ_PAT='virtio'; wait_for 30 [ -e /sys/block/vda ] && DISK=vda ;;
	storvsc) IRQ_PAT='HYP:|Hypervisor callback'; DISK=$(wait_for 60 first_sd) ;;
	hvguest)
		IRQ_PAT='hv_guest-sint2'
		insmod $HV_GUEST_KO >/dev/null || return 1
		DISK=$(wait_for 60 hv_disk_of 0)
		;;
	*) return 1 ;;
	esac
	[ -n "$DISK" ]
}

disk_irqs() {
	grep -E "$IRQ_PAT" /proc/interrupts |
		awk '{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }'
}

# The guest's busy CPU time so far, all CPUs (user, nice, system, irq,
# softirq: /proc/stat's first line), in clock ticks.
cpu_busy() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

bench_storage_workloads() {
	local cfg disk w name rw bs qd i0 i1 c0 c1 terse iops kb ios
	cfg=$(bench_config)
	bench_disk "$cfg" || { echo "# config $cfg: no disk"; ls /sys/block | sed 's/^/# /'; return 1; }
	disk=$DISK
	echo "# config $cfg: /dev/$disk, $(cat /sys/block/$disk/size) sectors, $(fio --version), $(nproc) CPUs"
	grep -E "$IRQ_PAT" /proc/interrupts | tr -s ' ' | sed 's/^/# irq lines: /'
	for w in $BENCH_STORAGE_WORKLOADS; do
		# shellcheck disable=SC2046
		set -- $(echo "$w" | tr ':' ' ')
		name=$1 rw=$2 bs=$3 qd=$4
		rig_mark "phase $name start"
		sleep 1
		i0=$(disk_irqs)
		c0=$(cpu_busy)
		terse=$(fio --name="$name" --filename=/dev/$disk --direct=1 --ioengine=libaio --rw="$rw" \
			--bs="$bs" --iodepth="$qd" --runtime=$BENCH_STORAGE_SECONDS --time_based --size=48m \
			--thread --minimal 2>/tmp/fio.err) || { echo "# $name: fio failed: $(head -1 /tmp/fio.err)"; return 1; }
		i1=$(disk_irqs)
		c1=$(cpu_busy)
		rig_mark "phase $name end"
		# Terse v3: read KiB, IOPS at fields 6 and 8, write at 47 and 49.
		case $rw in
		*write) kb=$(echo "$terse" | cut -d';' -f47) iops=$(echo "$terse" | cut -d';' -f49) ;;
		*) kb=$(echo "$terse" | cut -d';' -f6) iops=$(echo "$terse" | cut -d';' -f8) ;;
		esac
		case $bs in
		4k) ios=$((kb / 4)) ;;
		1m) ios=$((kb / 1024)) ;;
		esac
		echo "# bench storage config=$cfg workload=$name iops=$iops ios=$ios irqs=$((i1 - i0)) cpu_ticks=$((c1 - c0))"
		[ "$ios" -gt 0 ] || return 1
	done
}
