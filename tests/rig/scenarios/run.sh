# run: what `make run` shows: a Hyper-V guest (L2 under QEMU+KVM with
# enlightenments) loads hv_guest.ko, and what the module found (its log
# and debugfs) is printed as KTAP diagnostics; then it unloads.
# timeout: 300
L2_CPU=qemu64,hv-vpindex,hv-synic,hv-runtime,hv-time
L2_SMP=1
guest() {
	run_test show_hv_guest rig_show
}

rig_show() {
	echo "TAP version 13"
	echo "1..2"
	if ! insmod $HV_GUEST_KO; then
		echo "not ok 1 load"
		return 1
	fi
	echo "ok 1 load"
	echo "# hv_guest kernel log:"
	dmesg | grep 'hv_guest:' | sed 's/^\[[ 0-9.]*\] /#   /'
	echo "# /sys/kernel/debug/hv_guest:"
	for f in /sys/kernel/debug/hv_guest/*; do
		printf '#   %-16s %s\n' "${f##*/}" "$(tr '\n' ' ' <$f)"
	done
	if rmmod hv_guest; then
		echo "ok 2 unload"
	else
		echo "not ok 2 unload"
		return 1
	fi
}
