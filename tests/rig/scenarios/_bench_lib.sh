# _bench_lib: not a scenario of its own; what the benchmarks share in L1:
# KVM's exit count, the VMM's threads and how busy they were, and QEMU
# started like hvhost (hvhost_start) for the emulated configurations.
# helper

# The KVM exit count of the one VM running (KVM's debugfs directory of a
# VM is named PID-FD; the bench runs one VM at a time).
vm_exits() {
	local d n=0 exits=
	for d in /sys/kernel/debug/kvm/*-*; do
		[ -e "$d/exits" ] || continue
		n=$((n + 1))
		exits=$(cat "$d/exits")
	done
	[ "$n" = 1 ] && echo "$exits"
}

# vmm_pid: the VMM's process: HVHOST_PID, the `timeout` started with it,
# once it has become the VMM (L1's BusyBox timeout execs the command and
# leaves the waiting to a child of its own). Fails until then.
vmm_pid() {
	case $(cat /proc/$HVHOST_PID/comm 2>/dev/null) in
	"" | timeout) return 1 ;;
	esac
	echo "$HVHOST_PID"
}

# thread_ticks PID: "NAME TICKS" per thread of PID, TICKS its user and
# system time so far (clock ticks), NAME its comm with blanks as _; then
# "uptime TICKS", L1's clock.
thread_ticks() {
	local t
	for t in /proc/$1/task/*/stat; do
		awk '{ n = $0; sub(/^[0-9]+ \(/, "", n); sub(/\) .*/, "", n); gsub(/ /, "_", n)
			r = $0; sub(/^.*\) /, "", r); split(r, f, " "); print n, f[12] + f[13] }' "$t" 2>/dev/null
	done
	awk '{ printf "uptime %d\n", $1 * 100 }' /proc/uptime
}

# busy BEFORE AFTER: from two thread_ticks samples, how busy the VMM's
# threads were over the phase (1.0 = one L1 CPU all the time): vcpu_busy,
# the vCPU threads summed (hvhost's vcpuN, QEMU's CPU_N/KVM), and
# other_busy with other_thread, the busiest of the rest (hvhost's I/O
# thread scsi-io, QEMU's main loop).
busy() {
	awk 'FNR == NR { b[$1] += $2; next } { a[$1] += $2 }
		END {
			t = a["uptime"] - b["uptime"]; if (t <= 0) t = 1
			for (n in a) {
				if (n == "uptime") continue
				d = (a[n] - b[n]) / t
				if (n ~ /^vcpu[0-9]+$/ || n ~ /^CPU_[0-9]+\/KVM$/) v += d
				else if (d >= o) { o = d; on = n }
			}
			printf "vcpu_busy=%.2f other_busy=%.2f other_thread=%s\n", v, o, on
		}' "$1" "$2"
}

# qemu_start LIMIT CONFIG QEMU_ARGS...: QEMU with the rig kernel running
# $QEMU_GUEST (the bench's L2 side), its debug console through
# rig_console_reader as hvhost's is (hvhost_start), so marks arrive the
# same way.
qemu_start() {
	local limit=$1 cfg=$2
	shift 2
	HVHOST_ARGS="qemu $cfg"
	vm_console_start
	timeout -s KILL "$limit" qemu-system-x86_64 -enable-kvm -M pc -cpu qemu64,-svm -smp 2 -m 512 -name bench,debug-threads=on \
		-nodefaults -no-user-config -display none -no-reboot -monitor none \
		-L /usr/share/qemu -kernel /boot/bzImage -initrd /boot/l2.cpio \
		-append "console=ttyS0 panic=-1 no_timer_check rig.scenario=$QEMU_GUEST rig.layer=2 rig.bench=$cfg" \
		-serial file:/tmp/hvhost.console \
		-chardev file,id=k,path=/tmp/hvhost.dc -device isa-debugcon,iobase=0xe9,chardev=k "$@" 2>/tmp/hvhost.err &
	HVHOST_PID=$!
}

