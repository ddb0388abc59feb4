# _exit_guest: not a scenario of its own; the guest of hvhost_exit_status.
# It ends the way rig.opt.end says: "poweroff" (the rig's usual end, init
# powers off) or "reboot" (reboot -f: the restart path a kernel panic with
# panic=-1 takes too).
# helper
guest() {
	rig_mark "ending with ${RIG_OPT_END:-poweroff}"
	if [ "$RIG_OPT_END" = reboot ]; then
		sync
		reboot -f
		sleep 30
	fi
}
