# hvhost_bad_input: in L1, hvhost given a nonexistent kernel, a file that is
# not a kernel, --memory 0 or --cpus 0 exits non-zero with a message that
# names the problem: never a panic (status 101), never a hang (killed
# after 20 s).
# timeout: 180
guest() {
	run_test bad_input rig_bad_input
}

# bad_case N NAME WORD ARGS...: hvhost ARGS must fail, not panic, and say WORD.
bad_case() {
	local nr=$1 name=$2 word=$3 rc
	shift 3
	timeout -s KILL 20 hvhost "$@" >/tmp/bad.out 2>&1
	rc=$?
	echo "# hvhost $*: status $rc: $(head -c 300 /tmp/bad.out | tr '\n' ' ')"
	if [ $rc = 0 ] || [ $rc = 101 ] || [ $rc = 137 ]; then
		echo "not ok $nr $name # status $rc"
		BAD_FAILED=1
	elif ! grep -qi -- "$word" /tmp/bad.out; then
		echo "not ok $nr $name # message does not name '$word'"
		BAD_FAILED=1
	else
		echo "ok $nr $name"
	fi
}

rig_bad_input() {
	BAD_FAILED=
	echo "TAP version 13"
	echo "1..5"
	bad_case 1 nonexistent_kernel /no/such/bzImage --kernel /no/such/bzImage
	bad_case 2 kernel_not_a_kernel /init --kernel /init
	bad_case 3 memory_zero memory --kernel /boot/bzImage --memory 0
	bad_case 4 cpus_zero cpus --kernel /boot/bzImage --cpus 0
	bad_case 5 initrd_missing /no/such/initrd --kernel /boot/bzImage --initrd /no/such/initrd
	[ -z "$BAD_FAILED" ]
}
