# run: what `make run` shows: a Hyper-V guest (L2 under QEMU+KVM with
# enlightenments, 2 vCPUs) loads the production hv_guest.ko; what the
# module found and set up (its log, debugfs: detection, hypercall
# statistics, SynIC vectors and counters) is printed as KTAP diagnostics,
# the SynIC must have VMBus's SINT on a vector of every online CPU, then
# it unloads. (The contract tests against QEMU are guest_contract_qemu.)
# timeout: 300
L2_CPU=qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time
L2_SMP=2
guest() {
	run_test show_hv_guest rig_show
}

rig_show() {
	if ! insmod $HV_GUEST_KO; then
		rig_not_ok "load"
		return 1
	fi
	rig_ok "load"
	echo "# hv_guest kernel log:"
	dmesg | grep 'hv_guest:' | sed 's/^\[[ 0-9.]*\] /#   /'
	echo "# /sys/kernel/debug/hv_guest:"
	for f in /sys/kernel/debug/hv_guest/*; do
		[ -f "$f" ] || continue
		echo "#   ${f##*/}:"
		sed 's/^/#     /' "$f"
	done
	# One 'cpu=N sint=2 vector=V irq=I' record per online CPU.
	local cpus vectors
	cpus=$(grep -c '^processor' /proc/cpuinfo)
	vectors=$(grep -c '^cpu=[0-9]* sint=2 vector=' /sys/kernel/debug/hv_guest/synic)
	if [ "$vectors" = "$cpus" ]; then
		rig_ok "vmbus_sint_every_cpu"
	else
		rig_not_ok "vmbus_sint_every_cpu # $vectors SINT 2 vectors for $cpus CPUs"
	fi
	if rmmod hv_guest; then
		rig_ok "unload"
	else
		rig_not_ok "unload"
		return 1
	fi
}
