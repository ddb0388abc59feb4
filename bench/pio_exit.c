// SPDX-License-Identifier: GPL-2.0
/*
 * pio_exit [N [PORT]]: the floor every later hypercall and notification is
 * measured against: the guest's cost of one port-I/O write that exits to
 * the VMM, in TSC cycles, against a system call that does not exit.
 *
 * The OUT goes through /dev/port (an OUT from user space took #GP in the
 * nested rig), so each sample is one pwrite() plus one exit; the same
 * number of pwrite()s to /dev/null, measured in the same run, is the
 * syscall-only baseline. Prints KTAP with the numbers as diagnostics.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <x86intrin.h>

static unsigned long long per_call(int fd, off_t off, long n)
{
	unsigned char b = 0;
	unsigned long long t0, t1;

	for (long i = 0; i < n / 10; i++) /* warm up */
		if (pwrite(fd, &b, 1, off) != 1)
			return 0;
	t0 = __rdtsc();
	for (long i = 0; i < n; i++)
		if (pwrite(fd, &b, 1, off) != 1)
			return 0;
	t1 = __rdtsc();
	return (t1 - t0) / n;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000;
	off_t port = argc > 2 ? strtol(argv[2], NULL, 0) : 0xe0;
	int portfd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	int nullfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	unsigned long long out, sys;

	printf("TAP version 13\n1..1\n");
	if (portfd < 0 || nullfd < 0 || n <= 0) {
		printf("not ok 1 pio_exit # cannot open /dev/port or /dev/null\n");
		return 1;
	}
	out = per_call(portfd, port, n);
	sys = per_call(nullfd, 0, n);
	if (!out || !sys) {
		printf("not ok 1 pio_exit # a write failed\n");
		return 1;
	}
	printf("# pio_exit: port %#lx, %ld writes: %llu cycles per exiting OUT, %llu per plain syscall, %llu for the exit itself\n",
	       (long)port, n, out, sys, out > sys ? out - sys : 0);
	printf("ok 1 pio_exit\n");
	return 0;
}
