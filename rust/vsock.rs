// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers around `hv_shim_vsock.c`, the AF_VSOCK half of the shim,
//! and the entry points it calls back: the only place that sees a
//! `struct sock`, a `struct vsock_sock` or a `struct msghdr`, each as an
//! opaque pointer.
//!
//! The C side owns the socket state machine (what `connect`, `accept`,
//! `recv`, `send` and `poll` see); [`crate::drivers::vsock`] owns the
//! protocol: one [`Sock`] per socket, reached from the C callbacks through
//! `vsk->trans`. The rules the C side keeps, which make the `&mut Sock`
//! below sound:
//!
//! * every callback of a socket but `init` and `destruct` runs with the
//!   socket locked (`lock_sock`), and so does every call below that hands
//!   out the socket's [`Sock`] ([`Claim`], [`peer_gone`]): one at a time;
//! * `vsk->trans` is set by `init` (made here, [`Sock::new`]) and freed by
//!   `destruct`, after which no callback comes.

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::drivers::vsock::{Sock, Transport};

mod ffi {
    use super::*;

    /// `struct hvg_vsock_claim` of `hv_shim.h`.
    #[repr(C)]
    pub(super) struct RawClaim {
        pub(super) parent: *mut c_void,
        pub(super) conn: *mut c_void,
        pub(super) trans: *mut c_void,
        pub(super) sndbuf: c_int,
        pub(super) rcvbuf: c_int,
    }

    extern "C" {
        pub(super) fn hvg_vsock_register(ctx: *mut c_void) -> c_int;
        pub(super) fn hvg_vsock_unregister();
        pub(super) fn hvg_vsock_claim(
            accept: bool,
            local_port: u32,
            remote_port: u32,
            c: *mut RawClaim,
        ) -> c_int;
        pub(super) fn hvg_vsock_claim_done(c: *mut RawClaim);
        pub(super) fn hvg_vsock_claim_fail(c: *mut RawClaim);
        pub(super) fn hvg_vsock_peer_gone(sk: *mut c_void);
        pub(super) fn hvg_vsock_refused(local_port: u32, remote_port: u32) -> bool;
        pub(super) fn hvg_vsock_wake(sk: *mut c_void);
        pub(super) fn hvg_vsock_peer_fin(vsk: *mut c_void);
        pub(super) fn hvg_vsock_reset(vsk: *mut c_void);
        pub(super) fn hvg_msg_copy_to(msg: *mut c_void, buf: *const c_void, n: usize) -> c_int;
        pub(super) fn hvg_msg_copy_from(buf: *mut c_void, msg: *mut c_void, n: usize) -> c_int;
        pub(super) fn hvg_sock_hold(sk: *mut c_void);
        pub(super) fn hvg_sock_put(sk: *mut c_void);
    }
}

/// The transport, registered with the vsock core as its guest-to-host
/// transport while this lives.
///
/// # Invariants
///
/// `ctx` is an `Arc<Transport>` turned into a raw pointer, given to the C
/// side at registration; it is taken back only after unregistering.
pub(crate) struct Registration {
    ctx: NonNull<Transport>,
}

// SAFETY: the registration only holds an `Arc<Transport>` (Send + Sync).
unsafe impl Send for Registration {}
// SAFETY: as above; `&Registration` gives nothing.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers `transport`. `EBUSY` if another guest-to-host transport
    /// (Linux's `hv_sock`, virtio-vsock, VMCI) has the place.
    pub(crate) fn new(transport: Arc<Transport>) -> Result<Self> {
        let ctx = Arc::into_raw(transport).cast_mut();
        // SAFETY: `ctx` stays valid until `drop` takes it back, after
        // unregistering; until then the C side hands it to `Sock::new`
        // only (through `hvg_vsock_rs_sock_new`).
        let err = unsafe { ffi::hvg_vsock_register(ctx.cast()) };
        if let Err(e) = kernel::error::to_result(err) {
            // SAFETY: from `into_raw` above; the C side forgot it.
            drop(unsafe { Arc::from_raw(ctx) });
            return Err(e);
        }
        // INVARIANT: registered with `ctx`, from `Arc::into_raw`.
        Ok(Self {
            // SAFETY: from `Arc::into_raw`, never null.
            ctx: unsafe { NonNull::new_unchecked(ctx) },
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: registered (invariant).
        unsafe { ffi::hvg_vsock_unregister() };
        // SAFETY: from `Arc::into_raw` (invariant); the C side no longer
        // hands it out, and every socket keeps its own `Arc`.
        drop(unsafe { Arc::from_raw(self.ctx.as_ptr()) });
    }
}

/// A reference to a `struct sock`, dropped with `sock_put`.
///
/// # Invariants
///
/// `sk` is a socket this value holds one reference to.
pub(crate) struct SockRef {
    sk: NonNull<c_void>,
}

// SAFETY: socket references are counted atomically; the calls made with
// one (`hvg_vsock_wake`, `hvg_vsock_peer_gone`) may come from any thread.
unsafe impl Send for SockRef {}
// SAFETY: as above; the calls take no `&mut`.
unsafe impl Sync for SockRef {}

impl SockRef {
    /// Wakes the socket's readers and writers: they look at the ring
    /// again. Any context, hard irq included (the socket's wait queue
    /// takes its lock irq-safe).
    pub(crate) fn wake(&self) {
        // SAFETY: referenced (invariant).
        unsafe { ffi::hvg_vsock_wake(self.sk.as_ptr()) };
    }

    /// The host rescinded the connection's channel: locks the socket,
    /// lets its [`Sock`] keep what the ring holds
    /// ([`Sock::peer_gone`]), and ends the connection (a reset unless the
    /// host had sent its FIN). Process context.
    pub(crate) fn peer_gone(&self) {
        // SAFETY: referenced (invariant); the C side locks it.
        unsafe { ffi::hvg_vsock_peer_gone(self.sk.as_ptr()) };
    }
}

impl Drop for SockRef {
    fn drop(&mut self) {
        // SAFETY: the reference this value holds (invariant).
        unsafe { ffi::hvg_sock_put(self.sk.as_ptr()) };
    }
}

/// The socket an offer is for, locked; dropping it gives the offer up
/// (a listener's new child is freed).
///
/// # Invariants
///
/// `raw` was filled by a successful `hvg_vsock_claim`, and neither
/// `hvg_vsock_claim_done` nor `hvg_vsock_claim_fail` was called on it.
pub(crate) struct Claim {
    raw: ffi::RawClaim,
}

impl Claim {
    /// Finds the socket of an offer: for `accept`, a host program
    /// connects from `remote_port` to the guest's listener on
    /// `local_port`, and a new socket is made for the listener to accept;
    /// else the socket on `local_port` that is connecting to
    /// `remote_port`. `ENOENT` if there is none, `ECONNREFUSED` if the
    /// listener's backlog is full.
    pub(crate) fn new(accept: bool, local_port: u32, remote_port: u32) -> Result<Self> {
        let mut raw = ffi::RawClaim {
            parent: core::ptr::null_mut(),
            conn: core::ptr::null_mut(),
            trans: core::ptr::null_mut(),
            sndbuf: 0,
            rcvbuf: 0,
        };
        // SAFETY: `raw` is writable; the C side fills it on success.
        let err = unsafe { ffi::hvg_vsock_claim(accept, local_port, remote_port, &mut raw) };
        kernel::error::to_result(err)?;
        // INVARIANT: claimed just now.
        Ok(Self { raw })
    }

    /// The socket buffers (`SO_SNDBUF`, `SO_RCVBUF`, in bytes) the
    /// connection's rings are sized from: the connecting socket's, or for
    /// a host's connection the listener's. Negative values read as 0.
    pub(crate) fn buffers(&self) -> (usize, usize) {
        let bytes = |v: c_int| usize::try_from(v).unwrap_or(0);
        (bytes(self.raw.sndbuf), bytes(self.raw.rcvbuf))
    }

    /// A reference of the caller's own to the connection's socket.
    pub(crate) fn sock_ref(&self) -> Result<SockRef> {
        let sk = NonNull::new(self.raw.conn).ok_or(EINVAL)?;
        // SAFETY: the claim keeps `conn` alive (invariant); this takes a
        // reference of its own.
        unsafe { ffi::hvg_sock_hold(sk.as_ptr()) };
        // INVARIANT: the reference just taken.
        Ok(SockRef { sk })
    }

    /// The connection's [`Sock`], while the claim keeps it locked.
    pub(crate) fn sock(&mut self) -> Result<&mut Sock> {
        // SAFETY: `trans` is the `vsk->trans` of the claimed socket, made
        // by `hvg_vsock_rs_sock_new` (a `KBox<Sock>`), not freed while the
        // socket lives, and not used elsewhere while it is locked (module
        // docs); the claim keeps it locked for the borrow.
        unsafe { self.raw.trans.cast::<Sock>().as_mut() }.ok_or(EINVAL)
    }

    /// The channel is open: the connection is established (and queued
    /// for `accept`), and the socket unlocked.
    pub(crate) fn done(mut self) {
        // SAFETY: claimed, not done or failed (invariant); `self` is
        // forgotten below, so `drop` does not fail it.
        unsafe { ffi::hvg_vsock_claim_done(&mut self.raw) };
        core::mem::forget(self);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // SAFETY: claimed, not done or failed (invariant).
        unsafe { ffi::hvg_vsock_claim_fail(&mut self.raw) };
    }
}

/// Makes the socket connecting from `local_port` to `remote_port` fail
/// with `ECONNREFUSED`, if there is one; returns whether there was.
pub(crate) fn refuse(local_port: u32, remote_port: u32) -> bool {
    // SAFETY: takes only ports; the C side looks the socket up and locks it.
    unsafe { ffi::hvg_vsock_refused(local_port, remote_port) }
}

/// A locked socket, as a callback sees it.
///
/// # Invariants
///
/// `vsk` is a `struct vsock_sock`, locked by the caller for `'a`.
pub(crate) struct Locked<'a> {
    vsk: NonNull<c_void>,
    _life: core::marker::PhantomData<&'a ()>,
}

impl Locked<'_> {
    /// The host sends no more: reads end after what it sent.
    pub(crate) fn peer_fin(&self) {
        // SAFETY: locked (invariant).
        unsafe { ffi::hvg_vsock_peer_fin(self.vsk.as_ptr()) };
    }

    /// The host broke the stream: the program's next call fails with
    /// `ECONNRESET`.
    pub(crate) fn reset(&self) {
        // SAFETY: locked (invariant).
        unsafe { ffi::hvg_vsock_reset(self.vsk.as_ptr()) };
    }
}

/// A program's buffer (`struct msghdr`), for one callback.
///
/// # Invariants
///
/// `msg` is the `struct msghdr` of the running `recvmsg` or `sendmsg`.
pub(crate) struct Msg<'a> {
    msg: NonNull<c_void>,
    _life: core::marker::PhantomData<&'a mut ()>,
}

impl Msg<'_> {
    /// Copies `buf` to the program (`recvmsg`); `EFAULT` on a bad address.
    pub(crate) fn copy_to(&mut self, buf: &[u8]) -> Result {
        // SAFETY: `msg` is valid (invariant), `buf` readable for its length.
        let err = unsafe { ffi::hvg_msg_copy_to(self.msg.as_ptr(), buf.as_ptr().cast(), buf.len()) };
        kernel::error::to_result(err)
    }

    /// Fills `buf` from the program (`sendmsg`); `EFAULT` on a bad address.
    pub(crate) fn copy_from(&mut self, buf: &mut [u8]) -> Result {
        // SAFETY: `msg` is valid (invariant), `buf` writable for its length.
        let err =
            unsafe { ffi::hvg_msg_copy_from(buf.as_mut_ptr().cast(), self.msg.as_ptr(), buf.len()) };
        kernel::error::to_result(err)
    }
}

/// `trans` as the socket's [`Sock`].
///
/// # Safety
///
/// `trans` is a `vsk->trans` made by [`hvg_vsock_rs_sock_new`] and not yet
/// freed, whose socket the caller has locked for `'a` (or, for `init` and
/// `destruct`, owns alone).
unsafe fn sock<'a>(trans: *mut c_void) -> &'a mut Sock {
    // SAFETY: as the caller promises: a live `KBox<Sock>` used by nobody else.
    unsafe { &mut *trans.cast::<Sock>() }
}

/// # Safety
///
/// `vsk` is the locked `struct vsock_sock` of the running callback.
unsafe fn locked<'a>(vsk: *mut c_void) -> Locked<'a> {
    // INVARIANT: as the caller promises.
    Locked {
        // SAFETY: the C side passes its `vsk`, never null.
        vsk: unsafe { NonNull::new_unchecked(vsk) },
        _life: core::marker::PhantomData,
    }
}

/// # Safety
///
/// `msg` is the `struct msghdr` of the running callback.
unsafe fn msg<'a>(msg: *mut c_void) -> Msg<'a> {
    // INVARIANT: as the caller promises.
    Msg {
        // SAFETY: the C side passes the core's `msg`, never null.
        msg: unsafe { NonNull::new_unchecked(msg) },
        _life: core::marker::PhantomData,
    }
}

// The callbacks of `hv_shim_vsock.c`. Each `t` is a `vsk->trans` made by
// `hvg_vsock_rs_sock_new`, and each runs with its socket locked except
// `sock_new` and `sock_free` (module docs), which is what `sock` needs.

/// `init`: a socket takes this transport. Null on allocation failure.
///
/// # Safety
///
/// `ctx` is the pointer [`Registration::new`] registered, still registered.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_sock_new(ctx: *mut c_void) -> *mut c_void {
    // SAFETY: `ctx` is the registration's `Arc<Transport>` (still held by
    // it); `from_raw` of a borrow takes no count, `into` takes one.
    let transport: Arc<Transport> =
        unsafe { kernel::sync::ArcBorrow::from_raw(ctx.cast::<Transport>().cast_const()) }.into();
    match Sock::new(transport) {
        Ok(s) => KBox::into_raw(s).cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// `destruct`: the socket is gone.
///
/// # Safety
///
/// `t` is from [`hvg_vsock_rs_sock_new`], not freed, used by nobody else.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_sock_free(t: *mut c_void) {
    // SAFETY: from `KBox::into_raw` in `hvg_vsock_rs_sock_new`, freed once.
    drop(unsafe { KBox::from_raw(t.cast::<Sock>()) });
}

/// # Safety
///
/// See the callbacks' rules above.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_connect(t: *mut c_void, local_port: u32, remote_port: u32) -> c_int {
    // SAFETY: see above.
    match unsafe { sock(t) }.connect(local_port, remote_port) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// See the callbacks' rules above.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_fin(t: *mut c_void) {
    // SAFETY: see above.
    unsafe { sock(t) }.fin();
}

/// # Safety
///
/// See the callbacks' rules above.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_abandon(t: *mut c_void) {
    // SAFETY: see above.
    unsafe { sock(t) }.abandon();
}

/// # Safety
///
/// See the callbacks' rules above; `vsk` is `t`'s locked socket.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_peer_gone(t: *mut c_void, vsk: *mut c_void) -> bool {
    // SAFETY: see above.
    unsafe { sock(t) }.peer_gone(&unsafe { locked(vsk) })
}

/// # Safety
///
/// See the callbacks' rules above; `vsk` is `t`'s locked socket, `m` the
/// running `recvmsg`'s buffer.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_dequeue(
    t: *mut c_void,
    vsk: *mut c_void,
    m: *mut c_void,
    len: usize,
) -> isize {
    // SAFETY: see above.
    let (s, v, mut m) = unsafe { (sock(t), locked(vsk), msg(m)) };
    match s.dequeue(&v, &mut m, len) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// See the callbacks' rules above; `m` is the running `sendmsg`'s buffer.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_enqueue(t: *mut c_void, m: *mut c_void, len: usize) -> isize {
    // SAFETY: see above.
    let (s, mut m) = unsafe { (sock(t), msg(m)) };
    match s.enqueue(&mut m, len) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// See the callbacks' rules above; `vsk` is `t`'s locked socket.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_has_data(t: *mut c_void, vsk: *mut c_void) -> i64 {
    // SAFETY: see above.
    let (s, v) = unsafe { (sock(t), locked(vsk)) };
    s.has_data(&v) as i64
}

/// # Safety
///
/// See the callbacks' rules above.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_has_space(t: *mut c_void) -> i64 {
    // SAFETY: see above.
    unsafe { sock(t) }.has_space() as i64
}

/// # Safety
///
/// See the callbacks' rules above.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_is_active(t: *mut c_void) -> bool {
    // SAFETY: see above.
    unsafe { sock(t) }.is_active()
}

/// # Safety
///
/// See the callbacks' rules above.
#[no_mangle]
unsafe extern "C" fn hvg_vsock_rs_readable(t: *mut c_void) -> bool {
    // SAFETY: see above.
    unsafe { sock(t) }.readable()
}
