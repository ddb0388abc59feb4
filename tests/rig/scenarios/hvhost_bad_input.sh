# hvhost_bad_input: in L1, hvhost given a nonexistent kernel, a file that is
# not a kernel, --memory 0 or --cpus 0 exits non-zero with a message that
# names the problem: never a panic (status 101), never a hang (killed
# after 20 s). The same for --user root, an unknown --user and a
# --seccomp that is neither on nor off.
# timeout: 180
guest() {
	run_test bad_input rig_bad_input
}

# bad_case NAME WORD ARGS...: hvhost ARGS must fail, not panic, and say WORD.
bad_case() {
	local name=$1 word=$2 rc
	shift 2
	timeout -s KILL 20 hvhost "$@" >/tmp/bad.out 2>&1
	rc=$?
	echo "# hvhost $*: status $rc: $(head -c 300 /tmp/bad.out | tr '\n' ' ')"
	if [ $rc = 0 ] || [ $rc = 101 ] || [ $rc = 137 ]; then
		rig_not_ok "$name # status $rc"
	elif ! grep -qi -- "$word" /tmp/bad.out; then
		rig_not_ok "$name # message does not name '$word'"
	else
		rig_ok "$name"
	fi
}

rig_bad_input() {
	bad_case nonexistent_kernel /no/such/bzImage --kernel /no/such/bzImage
	bad_case kernel_not_a_kernel /init --kernel /init
	bad_case memory_zero memory --kernel /boot/bzImage --memory 0
	bad_case cpus_zero cpus --kernel /boot/bzImage --cpus 0
	bad_case initrd_missing /no/such/initrd --kernel /boot/bzImage --initrd /no/such/initrd
	# --user: root is not a user to drop to; an unknown user is named.
	bad_case user_root root --kernel /boot/bzImage --user 0
	bad_case user_unknown no-such-user --kernel /boot/bzImage --user no-such-user
	bad_case seccomp_bad_value seccomp --kernel /boot/bzImage --seccomp maybe
	[ "$KTAP_CNT_FAIL" = 0 ]
}
