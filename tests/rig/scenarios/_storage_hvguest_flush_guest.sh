# _storage_hvguest_flush_guest: not a scenario of its own; the second VM of
# storage_hvguest_hvhost. hv_guest's disk gets 4 MiB at 8 MiB written with
# a flush (conv=fsync: SYNCHRONIZE CACHE after the writes), then the mark
# "flushed SHA256"; L1 kills hvhost with SIGKILL on that mark and checks
# the image. The guest waits to be killed.
# helper

. /rig/scenarios/_storage_lib.sh

flush_then_wait() {
	local f d sum
	insmod $HV_GUEST_KO || { echo "# insmod failed"; return 1; }
	wait_for 60 hv_disk_of 0 >/dev/null || return 1
	f=$(hv_storage_file)
	d=$(hv_disk_of 0)
	dd if=/dev/urandom of=/tmp/data bs=$MIB count=4 2>/dev/null
	sum=$(sha256sum /tmp/data | cut -d' ' -f1)
	dd if=/tmp/data of=/dev/$d bs=$MIB seek=8 conv=fsync 2>/dev/null || { echo "# write failed"; return 1; }
	echo "# flushes=$(kv "$f" "lun=0" flushes)"
	rig_mark "flushed $sum"
	sleep 600
}

guest() {
	run_test flush_then_wait flush_then_wait
}
