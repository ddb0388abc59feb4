// SPDX-License-Identifier: GPL-2.0
/*
 * rig-debugcon PORT: copies standard input to an I/O port, one OUT per
 * byte, for QEMU's isa-debugcon. The rig moves test results and the L2
 * console up a layer this way instead of through a serial tty: port writes
 * need no interrupt, so nothing waits on an interrupt that a nested,
 * emulated UART may not deliver.
 *
 * The OUT is done by the kernel through /dev/port (one pwrite per byte: a
 * longer write would walk up the port numbers). ioperm() and an OUT from
 * user space took #GP in L2 under nested SVM in TCG.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned char buf[4096];
	unsigned long port;
	ssize_t n;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT < data\n", argv[0]);
		return 2;
	}
	port = strtoul(argv[1], NULL, 0);
	fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (port > 0xffff || fd < 0) {
		perror("rig-debugcon: /dev/port");
		return 1;
	}
	while ((n = read(0, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			if (pwrite(fd, &buf[i], 1, port) != 1) {
				perror("rig-debugcon: write");
				return 1;
			}
	return n < 0;
}
