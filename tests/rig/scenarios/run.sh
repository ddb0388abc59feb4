# run: what `make run` shows: a Hyper-V guest (L2 under QEMU+KVM with
# enlightenments and QEMU's Hyper-V test device, 2 vCPUs) loads hv_guest.ko;
# what the module found and set up (its log, debugfs: detection, hypercall
# statistics, SynIC vectors and counters) is printed as KTAP diagnostics,
# its contract tests run against QEMU, then it unloads.
# timeout: 300
L2_CPU=qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time
L2_SMP=2
L2_DEVICES="-device hyperv-testdev"
guest() {
	run_test show_hv_guest rig_show
}

rig_show() {
	echo "TAP version 13"
	echo "1..3"
	if ! insmod $HV_GUEST_KO; then
		echo "not ok 1 load"
		return 1
	fi
	echo "ok 1 load"
	echo "# hv_guest kernel log:"
	dmesg | grep 'hv_guest:' | sed 's/^\[[ 0-9.]*\] /#   /'
	echo "# /sys/kernel/debug/hv_guest:"
	for f in /sys/kernel/debug/hv_guest/*; do
		[ "${f##*/}" = contract ] && continue
		echo "#   ${f##*/}:"
		sed 's/^/#     /' "$f"
	done
	echo "# contract tests against QEMU (/sys/kernel/debug/hv_guest/contract):"
	echo "run qemu" >/sys/kernel/debug/hv_guest/contract
	sed 's/^/#   /' /sys/kernel/debug/hv_guest/contract
	if grep -q '^not ok' /sys/kernel/debug/hv_guest/contract; then
		echo "not ok 2 contract"
	else
		echo "ok 2 contract"
	fi
	if rmmod hv_guest; then
		echo "ok 3 unload"
	else
		echo "not ok 3 unload"
		return 1
	fi
}
