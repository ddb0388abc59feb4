// SPDX-License-Identifier: GPL-2.0
/*
 * hvstream: the two ends of bench_stream, the same program in the guest
 * (client) and in L1 (server), over every transport the bench compares:
 * AF_VSOCK (Hyper-V sockets, virtio-vsock), Unix sockets (hvhost's
 * --vsock relay) and serial ports (the emulated 16550s).
 *
 *   hvstream server ENDPOINT
 *       Serves phases until killed: on a socket, one phase per
 *       connection; on a serial line, one after the other on the line.
 *       Each phase starts with a header line from the client:
 *         "sink N"    read N bytes, then send one byte back
 *         "source N"  send N bytes, then wait for one byte back
 *         "echo N"    send back each of N bytes as it comes
 *       and prints one line per phase: op= bytes= ns= (L1's clock, from
 *       the header to the last byte or the byte back).
 *       On hybrid:PATH:PORT it connects instead, through hvhost's
 *       hybrid vsock socket PATH to the guest's port PORT ("CONNECT
 *       PORT", answered "OK HOSTPORT"), and serves that one phase.
 *   hvstream client OP N ENDPOINT
 *       The guest's side of one phase (OP as above, seen from the
 *       server). For echo it prints rtts= cycles_per_rtt= (TSC).
 *       On vsock-accept:PORT it listens on PORT and takes one connection
 *       from the host instead of connecting; with HVSTREAM_READY=FILE in
 *       the environment it creates FILE once it listens.
 *
 * ENDPOINT: vsock:CID:PORT, unix:PATH, tty:DEVICE, vsock-accept:PORT
 * (the client's); vsock-listen:PORT, unix-listen:PATH, tty:DEVICE,
 * hybrid:PATH:PORT (the server's).
 *
 * Why a guest would listen: Linux's hv_sock sizes a connection's rings
 * from the socket buffers of the socket it is made for, at least 24 KiB
 * and at most 256 KiB each way (less the header page). A connecting
 * socket's buffers are set to 24 KiB when connect() gives it the
 * transport, so the guest's connects always get 24 KiB rings; a
 * connection from the host gets the listening socket's buffers
 * (wmem_default and rmem_default, 208 KiB, unless the program set
 * others).
 *
 * With HVSTREAM_CHECK=1 in the environment, the end that reads a sink's or
 * a source's bytes compares each with the one the other end sent (a
 * pattern of the byte's offset): the server adds bad=N (bytes that
 * differ) to its line, the client fails. Off by default: the benchmark
 * measures the stream, not the comparison.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define BUF (64 * 1024)

static char buf[BUF];
/* HVSTREAM_CHECK=1: what read_n takes is compared with what write_n sends. */
static int check;
/* Bytes that differed since the last phase began. */
static long long bad;

/* The byte write_n sends at offset off of a phase. */
static char pattern(long long off)
{
	return (char)((off % BUF) * 131 + 7);
}

static void die(const char *what)
{
	fprintf(stderr, "hvstream: %s: %s\n", what, strerror(errno));
	exit(1);
}

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int open_tty(const char *dev)
{
	struct termios t;
	int fd = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		die(dev);
	if (tcgetattr(fd, &t))
		die("tcgetattr");
	cfmakeraw(&t);
	cfsetspeed(&t, B115200);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &t))
		die("tcsetattr");
	tcflush(fd, TCIOFLUSH);
	return fd;
}

static socklen_t unix_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path)) {
		errno = ENAMETOOLONG;
		die(path);
	}
	strcpy(a->sun_path, path);
	return sizeof(*a);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		p += w;
		n -= w;
	}
}

/*
 * Reads exactly n bytes (into buf, over and over); false at end of file.
 * A failed read ends the program with a key=value record of what it got
 * (tests read errno= and bytes=: a transport that resets a connection
 * must say so and hand over nothing it did not get).
 */
static int read_n(int fd, long long n)
{
	long long got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf, n - got < BUF ? n - got : BUF);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "hvstream: read failed errno=%d bytes=%lld (%s)\n",
				errno, got, strerror(errno));
			exit(1);
		}
		if (r == 0)
			return 0;
		if (check && n > 1)
			for (ssize_t i = 0; i < r; i++)
				bad += buf[i] != pattern(got + i);
		got += r;
	}
	return 1;
}

static void write_n(int fd, long long n)
{
	for (size_t i = 0; i < BUF; i++)
		buf[i] = pattern(i);
	while (n > 0) {
		size_t k = n < BUF ? n : BUF;

		write_all(fd, buf, k);
		n -= k;
	}
}

static int read_line(int fd, char *line, size_t max)
{
	size_t n = 0;

	while (n + 1 < max) {
		ssize_t r = read(fd, line + n, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	return 0;
}

static int connect_to(const char *ep)
{
	unsigned int cid, port;
	int fd;

	if (sscanf(ep, "vsock:%u:%u", &cid, &port) == 2) {
		struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };

		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
			die(ep);
		return fd;
	}
	if (!strncmp(ep, "unix:", 5)) {
		struct sockaddr_un a;

		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, unix_addr(&a, ep + 5)))
			die(ep);
		return fd;
	}
	if (sscanf(ep, "vsock-accept:%u", &port) == 1) {
		struct sockaddr_vm a = {
			.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port
		};
		const char *ready = getenv("HVSTREAM_READY");
		int l = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1))
			die(ep);
		if (ready) {
			int r = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

			if (r < 0)
				die(ready);
			close(r);
		}
		do
			fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		while (fd < 0 && errno == EINTR);
		if (fd < 0)
			die("accept");
		close(l);
		return fd;
	}
	if (!strncmp(ep, "tty:", 4))
		return open_tty(ep + 4);
	fprintf(stderr, "hvstream: unknown endpoint %s\n", ep);
	exit(2);
}

/*
 * hybrid:PATH:PORT: a connection to the guest's port PORT through hvhost's
 * hybrid vsock socket PATH (the Firecracker convention: "CONNECT PORT\n",
 * answered "OK HOSTPORT\n" once the guest accepted).
 */
static int connect_hybrid(const char *ep)
{
	char path[108], cmd[32], line[64];
	const char *colon = strrchr(ep, ':');
	struct sockaddr_un a;
	unsigned int port;
	size_t len;
	int fd;

	if (!colon || colon < ep + 7 || sscanf(colon + 1, "%u", &port) != 1) {
		fprintf(stderr, "hvstream: bad endpoint %s\n", ep);
		exit(2);
	}
	len = colon - (ep + 7);
	if (len >= sizeof(path)) {
		errno = ENAMETOOLONG;
		die(ep);
	}
	memcpy(path, ep + 7, len);
	path[len] = 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, unix_addr(&a, path)))
		die(path);
	snprintf(cmd, sizeof(cmd), "CONNECT %u\n", port);
	write_all(fd, cmd, strlen(cmd));
	if (read_line(fd, line, sizeof(line)) || strncmp(line, "OK ", 3)) {
		fprintf(stderr, "hvstream: %s: the guest's port %u refused the connection\n", path, port);
		exit(1);
	}
	return fd;
}

static int listen_on(const char *ep)
{
	unsigned int port;
	int l;

	if (sscanf(ep, "vsock-listen:%u", &port) == 1) {
		struct sockaddr_vm a = {
			.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port
		};

		l = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4))
			die(ep);
		return l;
	}
	if (!strncmp(ep, "unix-listen:", 12)) {
		struct sockaddr_un a;

		unlink(ep + 12);
		l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (l < 0 || bind(l, (struct sockaddr *)&a, unix_addr(&a, ep + 12)) || listen(l, 4))
			die(ep);
		return l;
	}
	fprintf(stderr, "hvstream: unknown endpoint %s\n", ep);
	exit(2);
}

/* One phase on fd; false when the client has gone (end of file). */
static int serve_phase(int fd)
{
	char line[64], op[16];
	long long n, t0;
	char ack = 'k';

	if (read_line(fd, line, sizeof(line)))
		return 0;
	if (sscanf(line, "%15s %lld", op, &n) != 2 || n < 0) {
		fprintf(stderr, "hvstream: bad header '%s'\n", line);
		return 0;
	}
	t0 = now_ns();
	bad = 0;
	if (!strcmp(op, "sink")) {
		if (!read_n(fd, n))
			return 0;
		write_all(fd, &ack, 1);
	} else if (!strcmp(op, "source")) {
		write_n(fd, n);
		if (!read_n(fd, 1))
			return 0;
	} else if (!strcmp(op, "echo")) {
		for (long long i = 0; i < n; i++) {
			if (!read_n(fd, 1))
				return 0;
			write_all(fd, buf, 1);
		}
	} else {
		fprintf(stderr, "hvstream: bad header '%s'\n", line);
		return 0;
	}
	printf("op=%s bytes=%lld ns=%lld", op, n, now_ns() - t0);
	if (check)
		printf(" bad=%lld", bad);
	printf("\n");
	fflush(stdout);
	return 1;
}

static int server(const char *ep)
{
	int l, fd;

	if (!strncmp(ep, "tty:", 4)) {
		fd = open_tty(ep + 4);
		while (serve_phase(fd))
			;
		return 0;
	}
	if (!strncmp(ep, "hybrid:", 7)) {
		fd = connect_hybrid(ep);
		if (!serve_phase(fd)) {
			fprintf(stderr, "hvstream: %s: the phase did not complete\n", ep);
			return 1;
		}
		close(fd);
		return 0;
	}
	l = listen_on(ep);
	for (;;) {
		fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0)
			die("accept");
		/* A serial line's socket (hvhost's COM2) carries every phase. */
		while (serve_phase(fd))
			;
		close(fd);
	}
}

static int client(const char *op, long long n, const char *ep)
{
	unsigned long long t0, t1;
	int fd = connect_to(ep);
	char header[64], ack = 'k';

	snprintf(header, sizeof(header), "%s %lld\n", op, n);
	write_all(fd, header, strlen(header));
	if (!strcmp(op, "sink")) {
		write_n(fd, n);
		if (!read_n(fd, 1))
			die("no byte back");
	} else if (!strcmp(op, "source")) {
		if (!read_n(fd, n))
			die("short stream");
		if (bad) {
			fprintf(stderr, "hvstream: %lld of %lld bytes differ from what was sent\n", bad, n);
			exit(1);
		}
		write_all(fd, &ack, 1);
	} else if (!strcmp(op, "echo")) {
		t0 = __rdtsc();
		for (long long i = 0; i < n; i++) {
			write_all(fd, &ack, 1);
			if (!read_n(fd, 1))
				die("no echo");
		}
		t1 = __rdtsc();
		printf("rtts=%lld cycles_per_rtt=%llu\n", n, n ? (t1 - t0) / n : 0);
	} else {
		fprintf(stderr, "hvstream: unknown op %s\n", op);
		return 2;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *c = getenv("HVSTREAM_CHECK");

	check = c && !strcmp(c, "1");
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(argv[2], atoll(argv[3]), argv[4]);
	fprintf(stderr, "usage: hvstream server ENDPOINT | client sink|source|echo N ENDPOINT\n");
	return 2;
}
