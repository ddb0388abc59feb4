// SPDX-License-Identifier: GPL-2.0
/*
 * hv_shim_vsock.c: the socket half of the shim, for hv_guest's AF_VSOCK
 * transport (rust/drivers/vsock.rs, wrapped in rust/vsock.rs). The kernel
 * crate binds nothing of af_vsock, so what must touch a struct sock or a
 * struct vsock_sock is here, and nothing else:
 *
 *   hvg_transport          the callback table: each callback is a
 *                          trampoline into Rust (hvg_vsock_rs_*) or a
 *                          constant answer (no datagrams, no seqpacket,
 *                          nothing to do in the notify hooks)
 *   hvg_vsock_register     vsock_core_register as the guest-to-host
 *                          transport, and its undoing
 *   hvg_vsock_claim*       the socket an offer is for: a listener's new
 *                          child (host connects) or the socket that asked
 *                          (guest connects), moved to ESTABLISHED once
 *                          the channel is open
 *   hvg_vsock_peer_gone    the host rescinded the channel
 *   hvg_vsock_refused      the host refused a connect (TL_CONNECT_RESULT)
 *   release and its timer  close waits up to HVG_CLOSE_TIMEOUT for the
 *                          host to rescind, as Linux's hv_sock does
 *
 * The socket state machine follows hyperv_transport.c's, since programs
 * see it (what connect, recv, send and poll return when). The wire
 * protocol, the packets and the ring are all on the Rust side.
 *
 * Every function that takes a struct sock runs with the socket locked
 * (lock_sock) by its caller or takes the lock itself, as said at each.
 */
#include <linux/module.h>
#include <linux/workqueue.h>
#include <net/af_vsock.h>
#include <net/sock.h>

#include "hv_shim.h"

/* How long release waits for the host to rescind (hv_sock's, 8 s). */
#define HVG_CLOSE_TIMEOUT (8 * HZ)

/* The transport's context (an Arc<Transport>), while registered. */
static void *hvg_vsock_ctx;

/* The Rust half (rust/vsock.rs). @t is vsk->trans: a socket's Rust state. */
void *hvg_vsock_rs_sock_new(void *ctx);
void hvg_vsock_rs_sock_free(void *t);
int hvg_vsock_rs_connect(void *t, u32 local_port, u32 remote_port);
void hvg_vsock_rs_fin(void *t);
void hvg_vsock_rs_abandon(void *t);
bool hvg_vsock_rs_peer_gone(void *t, struct vsock_sock *vsk);
ssize_t hvg_vsock_rs_dequeue(void *t, struct vsock_sock *vsk,
			     struct msghdr *msg, size_t len);
ssize_t hvg_vsock_rs_enqueue(void *t, struct msghdr *msg, size_t len);
s64 hvg_vsock_rs_has_data(void *t, struct vsock_sock *vsk);
s64 hvg_vsock_rs_has_space(void *t);
bool hvg_vsock_rs_is_active(void *t);
bool hvg_vsock_rs_readable(void *t);

static struct vsock_transport hvg_transport;

/* ---- called from Rust, socket locked ---- */

/* @n is at most a packet's data (16 KiB): memcpy_to_msg takes an int. */
int hvg_msg_copy_to(struct msghdr *msg, const void *buf, size_t n)
{
	/* memcpy_to_msg only reads @data; its prototype lacks the const. */
	return memcpy_to_msg(msg, (void *)buf, n);
}

int hvg_msg_copy_from(void *buf, struct msghdr *msg, size_t n)
{
	return memcpy_from_msg(buf, msg, n);
}

/* The host sends no more: reads end at what was sent. */
void hvg_vsock_peer_fin(struct vsock_sock *vsk)
{
	WRITE_ONCE(vsk->peer_shutdown,
		   READ_ONCE(vsk->peer_shutdown) | SEND_SHUTDOWN);
}

/* The host broke the stream: the program's next call fails. */
void hvg_vsock_reset(struct vsock_sock *vsk)
{
	struct sock *sk = sk_vsock(vsk);

	WRITE_ONCE(vsk->peer_shutdown, SHUTDOWN_MASK);
	sk->sk_err = ECONNRESET;
	sk_error_report(sk);
}

/* ---- the callback table ---- */

static u32 hvg_get_local_cid(void)
{
	return VMADDR_CID_ANY;
}

static int hvg_sock_init(struct vsock_sock *vsk, struct vsock_sock *psk)
{
	void *ctx = READ_ONCE(hvg_vsock_ctx);

	if (!ctx)
		return -ENODEV;
	vsk->trans = hvg_vsock_rs_sock_new(ctx);
	if (!vsk->trans)
		return -ENOMEM;
	return 0;
}

static void hvg_destruct(struct vsock_sock *vsk)
{
	if (vsk->trans)
		hvg_vsock_rs_sock_free(vsk->trans);
	vsk->trans = NULL;
}

static int hvg_connect(struct vsock_sock *vsk)
{
	return hvg_vsock_rs_connect(vsk->trans, vsk->local_addr.svm_port,
				    vsk->remote_addr.svm_port);
}

static int hvg_shutdown(struct vsock_sock *vsk, int mode)
{
	if (mode & SEND_SHUTDOWN)
		hvg_vsock_rs_fin(vsk->trans);
	return 0;
}

/* The connection is over: no more data either way, wakes everyone. */
static void hvg_do_close(struct vsock_sock *vsk, bool cancel_timeout)
{
	struct sock *sk = sk_vsock(vsk);

	sock_set_flag(sk, SOCK_DONE);
	WRITE_ONCE(vsk->peer_shutdown, SHUTDOWN_MASK);
	if (vsock_stream_has_data(vsk) <= 0 && !sk->sk_err)
		sk->sk_state = TCP_CLOSING;
	sk->sk_state_change(sk);
	if (vsk->close_work_scheduled &&
	    (!cancel_timeout || cancel_delayed_work(&vsk->close_work))) {
		vsk->close_work_scheduled = false;
		vsock_remove_sock(vsk);
		/* The reference release took for the timer. */
		sock_put(sk);
	}
}

static void hvg_close_timeout(struct work_struct *work)
{
	struct vsock_sock *vsk =
		container_of(work, struct vsock_sock, close_work.work);
	struct sock *sk = sk_vsock(vsk);

	sock_hold(sk);
	lock_sock(sk);
	if (!sock_flag(sk, SOCK_DONE)) {
		/* The host never rescinded: close the channel ourselves. */
		hvg_vsock_rs_abandon(vsk->trans);
		hvg_do_close(vsk, false);
	}
	vsk->close_work_scheduled = false;
	release_sock(sk);
	sock_put(sk);
}

/* Socket locked. Whether the socket may go at once. */
static bool hvg_close_locked(struct vsock_sock *vsk)
{
	struct sock *sk = sk_vsock(vsk);

	if (!(sk->sk_state == TCP_ESTABLISHED || sk->sk_state == TCP_CLOSING))
		return true;
	hvg_vsock_rs_fin(vsk->trans);
	if (sock_flag(sk, SOCK_DONE))
		return true;
	/* Dropped by the timer or by the rescind, whichever comes first. */
	sock_hold(sk);
	INIT_DELAYED_WORK(&vsk->close_work, hvg_close_timeout);
	vsk->close_work_scheduled = true;
	schedule_delayed_work(&vsk->close_work, HVG_CLOSE_TIMEOUT);
	return false;
}

static void hvg_release(struct vsock_sock *vsk)
{
	if (hvg_close_locked(vsk))
		vsock_remove_sock(vsk);
}

static int hvg_dgram_bind(struct vsock_sock *vsk, struct sockaddr_vm *addr)
{
	return -EOPNOTSUPP;
}

static int hvg_dgram_dequeue(struct vsock_sock *vsk, struct msghdr *msg,
			     size_t len, int flags)
{
	return -EOPNOTSUPP;
}

static int hvg_dgram_enqueue(struct vsock_sock *vsk,
			     struct sockaddr_vm *remote, struct msghdr *msg,
			     size_t len)
{
	return -EOPNOTSUPP;
}

static bool hvg_dgram_allow(struct vsock_sock *vsk, u32 cid, u32 port)
{
	return false;
}

static ssize_t hvg_stream_dequeue(struct vsock_sock *vsk, struct msghdr *msg,
				  size_t len, int flags)
{
	if (flags & MSG_PEEK)
		return -EOPNOTSUPP;
	return hvg_vsock_rs_dequeue(vsk->trans, vsk, msg, len);
}

static ssize_t hvg_stream_enqueue(struct vsock_sock *vsk, struct msghdr *msg,
				  size_t len)
{
	return hvg_vsock_rs_enqueue(vsk->trans, msg, len);
}

static s64 hvg_stream_has_data(struct vsock_sock *vsk)
{
	return hvg_vsock_rs_has_data(vsk->trans, vsk);
}

static s64 hvg_stream_has_space(struct vsock_sock *vsk)
{
	return hvg_vsock_rs_has_space(vsk->trans);
}

/* One packet from the host is at most 16 KiB: a read must not wait for more. */
static u64 hvg_stream_rcvhiwat(struct vsock_sock *vsk)
{
	return 16 * 1024 + 1;
}

static bool hvg_stream_is_active(struct vsock_sock *vsk)
{
	return hvg_vsock_rs_is_active(vsk->trans);
}

static bool hvg_stream_allow(struct vsock_sock *vsk, u32 cid, u32 port)
{
	return vsock_net_mode_global(vsk) && cid == VMADDR_CID_HOST;
}

static int hvg_notify_poll_in(struct vsock_sock *vsk, size_t target,
			      bool *readable)
{
	*readable = hvg_vsock_rs_readable(vsk->trans);
	return 0;
}

static int hvg_notify_poll_out(struct vsock_sock *vsk, size_t target,
			       bool *writable)
{
	*writable = hvg_vsock_rs_has_space(vsk->trans) > 0;
	return 0;
}

static int hvg_notify_recv(struct vsock_sock *vsk, size_t target,
			   struct vsock_transport_recv_notify_data *d)
{
	return 0;
}

static int hvg_notify_recv_post_dequeue(struct vsock_sock *vsk, size_t target,
					ssize_t copied, bool data_read,
					struct vsock_transport_recv_notify_data *d)
{
	return 0;
}

static int hvg_notify_send(struct vsock_sock *vsk,
			   struct vsock_transport_send_notify_data *d)
{
	return 0;
}

static int hvg_notify_send_post_enqueue(struct vsock_sock *vsk,
					ssize_t written,
					struct vsock_transport_send_notify_data *d)
{
	return 0;
}

static int hvg_notify_set_rcvlowat(struct vsock_sock *vsk, int val)
{
	return -EOPNOTSUPP;
}

static struct vsock_transport hvg_transport = {
	.module = THIS_MODULE,
	.get_local_cid = hvg_get_local_cid,
	.init = hvg_sock_init,
	.destruct = hvg_destruct,
	.release = hvg_release,
	.connect = hvg_connect,
	.shutdown = hvg_shutdown,
	.dgram_bind = hvg_dgram_bind,
	.dgram_dequeue = hvg_dgram_dequeue,
	.dgram_enqueue = hvg_dgram_enqueue,
	.dgram_allow = hvg_dgram_allow,
	.stream_dequeue = hvg_stream_dequeue,
	.stream_enqueue = hvg_stream_enqueue,
	.stream_has_data = hvg_stream_has_data,
	.stream_has_space = hvg_stream_has_space,
	.stream_rcvhiwat = hvg_stream_rcvhiwat,
	.stream_is_active = hvg_stream_is_active,
	.stream_allow = hvg_stream_allow,
	.notify_poll_in = hvg_notify_poll_in,
	.notify_poll_out = hvg_notify_poll_out,
	.notify_recv_init = hvg_notify_recv,
	.notify_recv_pre_block = hvg_notify_recv,
	.notify_recv_pre_dequeue = hvg_notify_recv,
	.notify_recv_post_dequeue = hvg_notify_recv_post_dequeue,
	.notify_send_init = hvg_notify_send,
	.notify_send_pre_block = hvg_notify_send,
	.notify_send_pre_enqueue = hvg_notify_send,
	.notify_send_post_enqueue = hvg_notify_send_post_enqueue,
	.notify_set_rcvlowat = hvg_notify_set_rcvlowat,
};

/*
 * Registers the transport with @ctx (an Arc<Transport> the caller keeps
 * until after hvg_vsock_unregister). -EBUSY if another guest-to-host
 * transport (hv_sock, virtio-vsock, vmci) has the place.
 */
int hvg_vsock_register(void *ctx)
{
	int err;

	WRITE_ONCE(hvg_vsock_ctx, ctx);
	err = vsock_core_register(&hvg_transport, VSOCK_TRANSPORT_F_G2H);
	if (err)
		WRITE_ONCE(hvg_vsock_ctx, NULL);
	return err;
}

/*
 * No new socket takes the transport afterwards. The sockets that have it
 * hold a reference to this module, so none is left when the module can
 * be unloaded.
 */
void hvg_vsock_unregister(void)
{
	vsock_core_unregister(&hvg_transport);
	WRITE_ONCE(hvg_vsock_ctx, NULL);
}

/* ---- offers ---- */

static bool hvg_is_ours(struct vsock_sock *vsk)
{
	return vsk->transport == &hvg_transport && vsk->trans;
}

/*
 * An offer for a connection: finds the socket it is for and locks it.
 * @accept: a host program connects to the guest's listener on
 * @local_port, from the host's @remote_port: a new child of the listener
 * is made (SYN_SENT until hvg_vsock_claim_done). Else the guest connects:
 * the socket bound to @local_port, in SYN_SENT, of this transport and
 * connecting to @remote_port. -ENOENT if there is none (nobody asked, or
 * no listener), -ECONNREFUSED if the listener's backlog is full, -ENOMEM.
 * On success c->conn is the connection's socket (a caller that keeps it
 * takes its own reference, hvg_sock_hold) and c->trans its Rust state;
 * c->parent stays locked, and referenced, until claim_done or claim_fail.
 */
int hvg_vsock_claim(bool accept, u32 local_port, u32 remote_port,
		    struct hvg_vsock_claim *c)
{
	struct sockaddr_vm addr;
	struct sock *sk, *child;
	struct vsock_sock *vchild;

	vsock_addr_init(&addr, VMADDR_CID_ANY, local_port);
	sk = vsock_find_bound_socket(&addr);
	if (!sk)
		return -ENOENT;
	lock_sock(sk);
	/*
	 * The rings are sized from @sk's buffers: the connecting socket's, or
	 * for a host's connection the listener's, as hv_sock's.
	 */
	c->sndbuf = READ_ONCE(sk->sk_sndbuf);
	c->rcvbuf = READ_ONCE(sk->sk_rcvbuf);
	if (!accept) {
		struct vsock_sock *vsk = vsock_sk(sk);

		if (sk->sk_state != TCP_SYN_SENT || !hvg_is_ours(vsk) ||
		    vsk->remote_addr.svm_port != remote_port)
			goto refuse;
		c->parent = sk;
		c->conn = sk;
		c->trans = vsk->trans;
		return 0;
	}
	if (sk->sk_state != TCP_LISTEN)
		goto refuse;
	if (sk_acceptq_is_full(sk)) {
		release_sock(sk);
		sock_put(sk);
		return -ECONNREFUSED;
	}
	child = vsock_create_connected(sk);
	if (!child) {
		release_sock(sk);
		sock_put(sk);
		return -ENOMEM;
	}
	child->sk_state = TCP_SYN_SENT;
	vchild = vsock_sk(child);
	vsock_addr_init(&vchild->local_addr, VMADDR_CID_ANY, local_port);
	vsock_addr_init(&vchild->remote_addr, VMADDR_CID_HOST, remote_port);
	if (vsock_assign_transport(vchild, vsock_sk(sk)) || !hvg_is_ours(vchild)) {
		sock_put(child);
		goto refuse;
	}
	c->parent = sk;
	c->conn = child;
	c->trans = vchild->trans;
	return 0;
refuse:
	release_sock(sk);
	sock_put(sk);
	return -ENOENT;
}

/*
 * The channel is open: the connection is ESTABLISHED, in the connected
 * table and, for an accept, in the listener's queue; whoever waits in
 * connect or accept wakes. Unlocks the parent and drops its reference.
 */
void hvg_vsock_claim_done(struct hvg_vsock_claim *c)
{
	struct sock *sk = c->parent;

	c->conn->sk_state = TCP_ESTABLISHED;
	vsock_insert_connected(vsock_sk(c->conn));
	if (c->conn != sk) {
		/* The child's first reference is its own (dropped when the
		 * program closes it); the queue takes one more. */
		vsock_enqueue_accept(sk, c->conn);
		sk->sk_data_ready(sk);
	} else {
		sk->sk_socket->state = SS_CONNECTED;
		sk->sk_state_change(sk);
	}
	release_sock(sk);
	sock_put(sk);
}

/* The channel did not open: the child goes, the parent is unlocked. */
void hvg_vsock_claim_fail(struct hvg_vsock_claim *c)
{
	struct sock *sk = c->parent;

	if (c->conn != sk)
		sock_put(c->conn);
	release_sock(sk);
	sock_put(sk);
}

/*
 * The host rescinded the channel of @sk's connection (process context,
 * socket not locked). The Rust state keeps what the ring still held;
 * a rescind before the host's FIN is a reset.
 */
void hvg_vsock_peer_gone(struct sock *sk)
{
	struct vsock_sock *vsk = vsock_sk(sk);

	lock_sock(sk);
	if (vsk->trans && hvg_vsock_rs_peer_gone(vsk->trans, vsk))
		hvg_vsock_reset(vsk);
	hvg_do_close(vsk, true);
	release_sock(sk);
}

/*
 * The host refused the connection from @local_port to @remote_port
 * (TL_CONNECT_RESULT): the connect fails at once with ECONNREFUSED
 * rather than at its timeout. Nothing if no such connect is pending.
 * Returns whether one was.
 */
bool hvg_vsock_refused(u32 local_port, u32 remote_port)
{
	struct sockaddr_vm addr;
	struct sock *sk;
	struct vsock_sock *vsk;
	bool found = false;

	vsock_addr_init(&addr, VMADDR_CID_ANY, local_port);
	sk = vsock_find_bound_socket(&addr);
	if (!sk)
		return false;
	vsk = vsock_sk(sk);
	lock_sock(sk);
	if (sk->sk_state == TCP_SYN_SENT && hvg_is_ours(vsk) &&
	    vsk->remote_addr.svm_port == remote_port) {
		sk->sk_err = ECONNREFUSED;
		sk_error_report(sk);
		found = true;
	}
	release_sock(sk);
	sock_put(sk);
	return found;
}

/*
 * A socket's readers and writers look again. Called from the channel's
 * event interrupt: the default sk_data_ready and sk_write_space only wake
 * the socket's wait queue (irq-safe) and send SIGIO; hv_guest's sockets
 * have no read_skb, so sockmap cannot put its own in their place.
 */
void hvg_vsock_wake(struct sock *sk)
{
	sk->sk_data_ready(sk);
	sk->sk_write_space(sk);
}

void hvg_sock_hold(struct sock *sk)
{
	sock_hold(sk);
}

void hvg_sock_put(struct sock *sk)
{
	sock_put(sk);
}
