# _vmbus_versions_guest: not a scenario of its own; the L2 side of
# vmbus_versions_stock_guest, run by the reference kernel under hvhost with
# hv_vmbus.max_version and rig.opt.vmbus_version=X.Y on its command line.
# The checks of _vmbus_stock_guest (IC versions, devices bound), at the
# version asked for; MODIFYCHANNEL only from 4.1, where Linux has it.
# helper
. /rig/scenarios/_vmbus_stock_guest.sh

vmbus_version_asked() {
	dmesg | grep -E 'hv_vmbus: (Vmbus version|Hyper-V Host)' | sed 's/^/# /'
	dmesg | grep -q "hv_vmbus: Vmbus version:$RIG_OPT_VMBUS_VERSION\$"
}

guest() {
	rig_poweroff_hook
	echo "# rig: VMBus $RIG_OPT_VMBUS_VERSION asked for"
	run_test vmbus_version vmbus_version_asked
	run_test ic_versions ic_versions
	run_test devices_bound devices_bound
	case $RIG_OPT_VMBUS_VERSION in
	4.0) ;;
	*) run_test modify_channel modify_channel ;;
	esac
	run_test host_shutdown_request host_shutdown_request
}
