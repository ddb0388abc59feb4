// SPDX-License-Identifier: GPL-2.0
/*
 * rig-debugcon PORT: copies standard input to an I/O port, one OUT per
 * byte, for QEMU's isa-debugcon and hvhost's debug console. The rig moves
 * test results and the L2 console up a layer this way instead of through a
 * serial tty: port writes need no interrupt, so nothing waits on an
 * interrupt that a nested, emulated UART may not deliver.
 *
 * rig-debugcon -r PORT SECONDS: reads one line from the port (hvhost's
 * debug console input, which the host fills with `hvctl debugcon`) and
 * prints it; a read that gives 0xe9 means no input yet, and is retried
 * every 5 ms. Exit status 1 if no whole line came within SECONDS.
 *
 * Port I/O is done by the kernel through /dev/port (one pread or pwrite per
 * byte: a longer one would walk up the port numbers). ioperm() and an OUT
 * from user space took #GP in L2 under nested SVM in TCG.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What an empty input reads as: never a byte of the (ASCII) input. */
#define READBACK 0xe9
#define MAX_LINE 4096

static int read_line(int fd, unsigned long port, long seconds)
{
	const struct timespec pause = { .tv_nsec = 5 * 1000 * 1000 };
	char line[MAX_LINE + 1];
	struct timespec start, now;
	size_t len = 0;
	unsigned char b;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (pread(fd, &b, 1, port) != 1) {
			perror("rig-debugcon: read");
			return 1;
		}
		if (b == '\n') {
			line[len] = '\0';
			puts(line);
			return 0;
		}
		if (b != READBACK) {
			if (len == MAX_LINE) {
				fprintf(stderr, "rig-debugcon: line longer than %d bytes\n", MAX_LINE);
				return 1;
			}
			line[len++] = b;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= seconds) {
			fprintf(stderr, "rig-debugcon: no line within %ld s (%zu bytes of one)\n",
				seconds, len);
			return 1;
		}
		nanosleep(&pause, NULL);
	}
}

int main(int argc, char **argv)
{
	int reading = argc == 4 && strcmp(argv[1], "-r") == 0;
	unsigned char buf[4096];
	unsigned long port;
	ssize_t n;
	int fd;

	if (argc != 2 && !reading) {
		fprintf(stderr, "usage: %s PORT < data\n       %s -r PORT SECONDS\n", argv[0], argv[0]);
		return 2;
	}
	port = strtoul(argv[reading ? 2 : 1], NULL, 0);
	fd = open("/dev/port", (reading ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
	if (port > 0xffff || fd < 0) {
		perror("rig-debugcon: /dev/port");
		return 1;
	}
	if (reading)
		return read_line(fd, port, strtol(argv[3], NULL, 0));
	while ((n = read(0, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			if (pwrite(fd, &buf[i], 1, port) != 1) {
				perror("rig-debugcon: write");
				return 1;
			}
	return n < 0;
}
