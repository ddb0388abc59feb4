// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers around `hv_shim.c`, the C half of this module.
//!
//! The 7.3 `kernel` crate binds no MSR access, no interrupt without a device,
//! no CPU hotplug state and no cross-CPU call; `hv_shim.c` provides the
//! minimum in C and this file is the only caller. Every `extern` function is
//! wrapped here, once, in a function or type whose signature carries the
//! rules the C side documents.
//!
//! The few kernel functions this module needs that bindgen does see but
//! the `kernel` crate does not wrap (flushing one work item, the wall
//! clock) are wrapped here too: no other file calls `kernel::bindings`.

use core::ffi::{c_int, c_uint, c_ulong, c_void};
use core::marker::PhantomData;
use kernel::ffi::c_char;

use kernel::{bindings, error::to_result, page::Page, prelude::*, str::CStr};
use kernel::page::PAGE_SIZE;
use kernel::sync::atomic::{Atomic, Full, Relaxed};
use kernel::sync::Arc;

mod ffi {
    use super::*;

    extern "C" {
        pub(super) fn hvg_rdmsr(msr: u32, val: *mut u64) -> c_int;
        pub(super) fn hvg_wrmsr(msr: u32, val: u64) -> c_int;
        pub(super) fn hvg_cpu_vector_alloc(
            cpu: c_uint,
            handler: unsafe extern "C" fn(c_int, *mut c_void) -> c_uint,
            name: *const c_char,
            dev_id: *mut c_void,
            virq: *mut c_uint,
            vector: *mut c_uint,
        ) -> c_int;
        pub(super) fn hvg_cpu_vector_free(virq: c_uint, dev_id: *mut c_void);
        pub(super) fn hvg_synchronize_irq(virq: c_uint);
        pub(super) fn hvg_cpuhp_multi_setup(name: *const c_char) -> c_int;
        pub(super) fn hvg_cpuhp_add_instance(
            state: c_int,
            online: unsafe extern "C" fn(c_uint, *mut c_void) -> c_int,
            offline: unsafe extern "C" fn(c_uint, *mut c_void) -> c_int,
            ctx: *mut c_void,
        ) -> *mut c_void;
        pub(super) fn hvg_cpuhp_remove_instance(state: c_int, instance: *mut c_void);
        pub(super) fn hvg_cpuhp_multi_remove(state: c_int);
        pub(super) fn hvg_on_cpu(
            cpu: c_uint,
            func: unsafe extern "C" fn(*mut c_void),
            info: *mut c_void,
        ) -> c_int;
        pub(super) fn hvg_vmalloc_to_pfn(addr: *const c_void) -> c_ulong;
        // `struct page` is opaque here: passed as `void *` (same ABI).
        pub(super) fn hvg_page_address(page: *mut c_void) -> *mut c_void;
        pub(super) fn hvg_page_to_phys(page: *mut c_void) -> u64;
        pub(super) fn hvg_smp_processor_id() -> c_uint;
        pub(super) fn hvg_local_irq_save() -> c_ulong;
        pub(super) fn hvg_local_irq_restore(flags: c_ulong);
        #[cfg(hv_guest_selftest)]
        pub(super) fn hvg_cpu_online(cpu: c_uint) -> bool;
        pub(super) fn hvg_linux_version_code() -> u32;
        pub(super) fn hvg_orderly_poweroff();
        pub(super) fn hvg_orderly_reboot();
        pub(super) fn hvg_num_online_cpus() -> c_uint;
        pub(super) fn hvg_copy_shared(dst: *mut c_void, src: *const c_void, n: usize);
    }
}

/// Reads an MSR; a #GP (the hypervisor refused) is `EIO`.
pub(crate) fn rdmsr(msr: u32) -> Result<u64> {
    let mut val = 0u64;
    // SAFETY: `hvg_rdmsr` uses the exception-table-protected RDMSR and writes
    // only through the pointer, which points to a live local.
    to_result(unsafe { ffi::hvg_rdmsr(msr, &mut val) })?;
    Ok(val)
}

/// Writes an MSR; a #GP is `EIO`.
///
/// The MSRs this module writes are the synthetic ones of the hypervisor,
/// which change no state of this kernel's own; the callers document what
/// each write means to the host.
pub(crate) fn wrmsr(msr: u32, val: u64) -> Result {
    // SAFETY: exception-table-protected WRMSR. Synthetic MSRs only affect the
    // hypervisor's view of this partition, never this kernel's memory.
    to_result(unsafe { ffi::hvg_wrmsr(msr, val) })
}

/// `LINUX_VERSION_CODE` of the running kernel.
pub(crate) fn linux_version_code() -> u32 {
    // SAFETY: returns a constant.
    unsafe { ffi::hvg_linux_version_code() }
}

/// Starts an orderly poweroff of this machine (any context): the shutdown
/// request of the host.
pub(crate) fn orderly_poweroff() {
    // SAFETY: `orderly_poweroff(true)` only queues the kernel's poweroff
    // work; callable from any context.
    unsafe { ffi::hvg_orderly_poweroff() }
}

/// Starts an orderly reboot of this machine (any context).
pub(crate) fn orderly_reboot() {
    // SAFETY: `orderly_reboot()` only queues the kernel's reboot work.
    unsafe { ffi::hvg_orderly_reboot() }
}

/// Physical frame number of an address in this module's own image.
///
/// Returns `None` if the address is not mapped.
pub(crate) fn module_text_pfn(addr: *const u8) -> Option<u64> {
    // SAFETY: `vmalloc_to_pfn` only walks the page tables for the address;
    // any address is allowed and an unmapped one gives 0.
    let pfn = unsafe { ffi::hvg_vmalloc_to_pfn(addr.cast()) };
    (pfn != 0).then_some(pfn as u64)
}

/// A zeroed page shared with the hypervisor, with its linear address and
/// guest physical address.
///
/// # Invariants
///
/// `virt` is the linear-map address of `page`, valid for reads and writes of
/// `PAGE_SIZE` bytes for as long as `self` lives; `phys` is its physical
/// address.
pub(crate) struct SharedPage {
    // Owned: freed when `self` is dropped.
    _page: Page,
    virt: *mut u8,
    phys: u64,
}

// SAFETY: the page is owned; the raw pointer is only an address into it.
unsafe impl Send for SharedPage {}
// SAFETY: `&SharedPage` only hands out the address; accesses through it are
// the users' business and are atomic or done by one CPU (see the users).
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// Allocates a zeroed page (may sleep).
    pub(crate) fn new() -> Result<Self> {
        let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
        // SAFETY: `page` is a valid, owned page; x86-64 has no highmem, so it
        // has a linear-map address.
        let virt = unsafe { ffi::hvg_page_address(page.as_ptr().cast()) }.cast::<u8>();
        if virt.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: as above.
        let phys = unsafe { ffi::hvg_page_to_phys(page.as_ptr().cast()) };
        // INVARIANT: `virt` and `phys` were derived from `page`, owned by `self`.
        Ok(Self {
            _page: page,
            virt,
            phys,
        })
    }

    /// The linear address; valid for `PAGE_SIZE` bytes while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.virt
    }

    /// The physical address (page aligned).
    pub(crate) fn phys(&self) -> u64 {
        self.phys
    }

    /// Atomically sets bit `bit` of the bitmap that starts `offset` bytes
    /// into the page (a 4-byte aligned offset), as the kernel's `set_bit`
    /// does; the other side reads and clears the bitmap concurrently.
    /// `EINVAL` if the bit is outside the page.
    pub(crate) fn set_bit(&self, offset: usize, bit: u32) -> Result {
        let word = offset
            .checked_add(bit as usize / 32 * 4)
            .filter(|w| offset % 4 == 0 && w + 4 <= PAGE_SIZE)
            .ok_or(EINVAL)?;
        // SAFETY: `word` is 4-byte aligned and `word + 4 <= PAGE_SIZE`, so the
        // pointer is inside the page, valid while `self` lives (type
        // invariant); every access to the bitmap, here and by the other
        // side, is atomic.
        let atomic = unsafe { Atomic::<u32>::from_ptr(self.virt.add(word).cast::<u32>()) };
        let mask = 1u32 << (bit % 32);
        let mut old = atomic.load(Relaxed);
        loop {
            match atomic.cmpxchg(old, old | mask, Full) {
                Ok(_) => return Ok(()),
                Err(now) => old = now,
            }
        }
    }
}

/// Local interrupts off on this CPU for the guard's lifetime; the CPU
/// therefore cannot change and nothing else runs on it.
pub(crate) struct IrqsOff {
    flags: c_ulong,
    _not_send: PhantomData<*mut ()>,
}

impl IrqsOff {
    /// Saves the interrupt state and disables local interrupts.
    pub(crate) fn new() -> Self {
        // SAFETY: always allowed; restored in `drop`, on the same CPU since
        // the guard is not `Send` and nothing can migrate us meanwhile.
        let flags = unsafe { ffi::hvg_local_irq_save() };
        Self {
            flags,
            _not_send: PhantomData,
        }
    }

    /// The CPU this runs on.
    pub(crate) fn cpu(&self) -> u32 {
        // SAFETY: interrupts are off, so `smp_processor_id()` is stable.
        unsafe { ffi::hvg_smp_processor_id() }
    }
}

impl Drop for IrqsOff {
    fn drop(&mut self) {
        // SAFETY: `flags` came from the matching save on this CPU.
        unsafe { ffi::hvg_local_irq_restore(self.flags) }
    }
}

#[cfg(hv_guest_selftest)]
/// Whether `cpu` is online.
pub(crate) fn cpu_online(cpu: u32) -> bool {
    // SAFETY: reads the online mask; any number is allowed.
    unsafe { ffi::hvg_cpu_online(cpu) }
}

/// Runs `f` on `cpu` with interrupts off and waits for its result.
///
/// `f` must not sleep. `ENXIO` if the CPU is offline.
pub(crate) fn on_cpu<R, F: FnOnce() -> R + Send>(cpu: u32, f: F) -> Result<R> {
    struct Call<R, F> {
        f: Option<F>,
        out: Option<R>,
    }
    /// # Safety
    ///
    /// `info` points to a live `Call<R, F>` that nothing else touches
    /// during the call.
    unsafe extern "C" fn trampoline<R, F: FnOnce() -> R>(info: *mut c_void) {
        // SAFETY: `info` is the `Call` below, alive until `hvg_on_cpu`
        // returns, and only this function touches it meanwhile.
        let call = unsafe { &mut *info.cast::<Call<R, F>>() };
        if let Some(f) = call.f.take() {
            call.out = Some(f());
        }
    }
    let mut call = Call::<R, F> {
        f: Some(f),
        out: None,
    };
    // SAFETY: the trampoline matches `Call<R, F>`, the call waits (wait=1),
    // so `call` outlives its use on the other CPU.
    let ret = unsafe { ffi::hvg_on_cpu(cpu, trampoline::<R, F>, (&raw mut call).cast()) };
    to_result(ret)?;
    call.out.ok_or(ENXIO)
}

/// Something that handles a module-owned vector on one CPU, in hard-irq
/// context.
pub(crate) trait VectorHandler: Sync {
    /// The interrupt fired on this handler's CPU.
    fn handle(&self);
}

/// An interrupt with its own vector on one CPU, whose handler is `T`.
///
/// # Invariants
///
/// `virq` is an irq from `hvg_cpu_vector_alloc` whose `dev_id` is the
/// address of `*handler`; the irq is freed (and no handler runs any more)
/// in `drop`, before the box is.
pub(crate) struct CpuVector<T: VectorHandler> {
    virq: u32,
    vector: u8,
    handler: KBox<T>,
}

impl<T: VectorHandler> CpuVector<T> {
    /// Allocates a vector on `cpu` (online; process context) for `handler`.
    pub(crate) fn new(cpu: u32, name: &'static CStr, handler: T) -> Result<Self> {
        /// # Safety
        ///
        /// `dev_id` is the `T` this vector was created with, alive while
        /// the irq exists.
        unsafe extern "C" fn irq<T: VectorHandler>(_irq: c_int, dev_id: *mut c_void) -> c_uint {
            // SAFETY: `dev_id` is the boxed `T`, alive while the irq exists
            // (type invariant).
            let handler = unsafe { &*dev_id.cast::<T>() };
            handler.handle();
            bindings::irqreturn::IRQ_HANDLED.0 as c_uint
        }
        let handler = KBox::new(handler, GFP_KERNEL)?;
        let dev_id: *mut c_void = core::ptr::from_ref::<T>(&handler).cast_mut().cast();
        let (mut virq, mut vector) = (0, 0);
        // SAFETY: `name` is a static C string; `dev_id` is the boxed handler,
        // which lives until after the irq is freed; the out-pointers are
        // locals.
        to_result(unsafe {
            ffi::hvg_cpu_vector_alloc(
                cpu,
                irq::<T>,
                name.as_char_ptr(),
                dev_id,
                &mut virq,
                &mut vector,
            )
        })?;
        let Ok(vector) = u8::try_from(vector) else {
            // SAFETY: just allocated with this dev_id.
            unsafe { ffi::hvg_cpu_vector_free(virq, dev_id) };
            return Err(EIO);
        };
        // INVARIANT: allocated with `dev_id` = the box's contents.
        Ok(Self {
            virq,
            vector,
            handler,
        })
    }

    /// The vector on the CPU it was allocated for.
    pub(crate) fn vector(&self) -> u8 {
        self.vector
    }

    /// The handler (the irq's `dev_id`).
    pub(crate) fn handler(&self) -> &T {
        &self.handler
    }

    /// The Linux irq number (as in `/proc/interrupts`).
    pub(crate) fn irq(&self) -> u32 {
        self.virq
    }

    /// Waits until no handler of this irq runs.
    pub(crate) fn synchronize(&self) {
        // SAFETY: `virq` is live (invariant).
        unsafe { ffi::hvg_synchronize_irq(self.virq) }
    }
}

impl<T: VectorHandler> Drop for CpuVector<T> {
    fn drop(&mut self) {
        let dev_id: *mut c_void = core::ptr::from_ref::<T>(&self.handler).cast_mut().cast();
        // SAFETY: allocated in `new` with this dev_id; `free_irq` waits for a
        // running handler, after which the box is no longer used.
        unsafe { ffi::hvg_cpu_vector_free(self.virq, dev_id) }
    }
}

/// What a CPU hotplug state does on each CPU, with its context.
pub(crate) trait HotplugCallbacks: Send + Sync {
    /// `cpu` is coming online (or was online when the state was added):
    /// runs on that CPU, in process context, serialized by the hotplug
    /// lock. An error keeps the CPU down (or fails [`Hotplug::new`]).
    fn online(&self, cpu: u32) -> Result;
    /// `cpu` is going down (or the state is being removed): runs on that
    /// CPU, in process context.
    fn offline(&self, cpu: u32);
}

/// A dynamic multi-instance CPU hotplug state with one instance whose
/// callbacks get `ctx`: no global pointer is needed to find it. Dropping
/// it runs `offline` on every online CPU, then removes the state; `ctx` is
/// released after that.
pub(crate) struct Hotplug<T: HotplugCallbacks> {
    state: c_int,
    // INVARIANT: an instance of `state` from `hvg_cpuhp_add_instance`
    // whose context is `ctx`, removed only in `drop`.
    instance: *mut c_void,
    ctx: Arc<T>,
}

// SAFETY: the instance pointer is only passed back to the hotplug core,
// from any thread; `T` is `Send + Sync`.
unsafe impl<T: HotplugCallbacks> Send for Hotplug<T> {}
// SAFETY: `&Hotplug` gives access to nothing but `ctx` (`Sync`).
unsafe impl<T: HotplugCallbacks> Sync for Hotplug<T> {}

/// # Safety
///
/// `ctx` is the `T` of a live [`Hotplug<T>`] instance (the hotplug core
/// calls this only between the instance's addition and removal).
unsafe extern "C" fn hotplug_online<T: HotplugCallbacks>(cpu: c_uint, ctx: *mut c_void) -> c_int {
    // SAFETY: `ctx` points to the `T` inside the `Arc` the `Hotplug` holds
    // until the instance is removed, which waits for this call.
    let ctx = unsafe { &*ctx.cast::<T>() };
    match ctx.online(cpu) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// As [`hotplug_online`].
unsafe extern "C" fn hotplug_offline<T: HotplugCallbacks>(cpu: c_uint, ctx: *mut c_void) -> c_int {
    // SAFETY: as in `hotplug_online`.
    let ctx = unsafe { &*ctx.cast::<T>() };
    ctx.offline(cpu);
    0
}

impl<T: HotplugCallbacks> Hotplug<T> {
    /// Registers state `name` and adds `ctx` as its instance: `online`
    /// runs for every CPU already online before this returns.
    pub(crate) fn new(name: &'static CStr, ctx: Arc<T>) -> Result<Self> {
        // SAFETY: `name` is static.
        let state = unsafe { ffi::hvg_cpuhp_multi_setup(name.as_char_ptr()) };
        to_result(state.min(0))?;
        let raw: *mut c_void = core::ptr::from_ref::<T>(&ctx).cast_mut().cast();
        // SAFETY: `state` was just set up; the callbacks follow their
        // contract for `raw`, which `ctx` keeps alive as long as the
        // instance exists (this struct holds both, and `drop` removes the
        // instance first).
        let instance = unsafe {
            ffi::hvg_cpuhp_add_instance(state, hotplug_online::<T>, hotplug_offline::<T>, raw)
        };
        let instance = match kernel::error::from_err_ptr(instance) {
            Ok(instance) => instance,
            Err(e) => {
                // SAFETY: the state has no instance.
                unsafe { ffi::hvg_cpuhp_multi_remove(state) };
                return Err(e);
            }
        };
        // INVARIANT: `instance` was added with `ctx`.
        Ok(Self {
            state,
            instance,
            ctx,
        })
    }

    /// The context the callbacks get.
    pub(crate) fn ctx(&self) -> &Arc<T> {
        &self.ctx
    }
}

impl<T: HotplugCallbacks> Drop for Hotplug<T> {
    fn drop(&mut self) {
        // SAFETY: `instance` belongs to `state` (type invariant) and is
        // removed once, here; then the state, which has no other instance.
        // `ctx` is dropped after this, when no callback can run any more.
        unsafe {
            ffi::hvg_cpuhp_remove_instance(self.state, self.instance);
            ffi::hvg_cpuhp_multi_remove(self.state);
        }
    }
}

/// Waits until `work` is idle: not queued, not running (`flush_work`).
/// Process context; the caller must not hold anything the work takes.
pub(crate) fn flush_work<T: ?Sized, const ID: u64>(work: &kernel::workqueue::Work<T, ID>) {
    // SAFETY: a `Work` exists only initialized, and the borrow keeps it
    // alive for the call; flushing needs no other guarantee.
    unsafe { bindings::flush_work(kernel::workqueue::Work::raw_get(work)) };
}

/// Runs `dwork` now if it is pending and waits until it is idle
/// (`flush_delayed_work`). Process context; the caller must not hold
/// anything the work takes. A work that re-arms itself is pending again
/// afterwards: callers that need it idle stop that first.
pub(crate) fn flush_delayed_work<T: ?Sized, const ID: u64>(
    dwork: &kernel::workqueue::DelayedWork<T, ID>,
) {
    // `DelayedWork` is `#[repr(transparent)]` over
    // `Opaque<bindings::delayed_work>`.
    let raw = core::ptr::from_ref(dwork)
        .cast::<bindings::delayed_work>()
        .cast_mut();
    // SAFETY: `raw` is an initialized delayed work, alive for the call
    // (the borrow); flushing needs no other guarantee.
    unsafe { bindings::flush_delayed_work(raw) };
}

/// How many CPUs are online now.
pub(crate) fn num_online_cpus() -> u32 {
    // SAFETY: reads a counter; any context.
    unsafe { ffi::hvg_num_online_cpus() }
}

/// The wall clock (CLOCK_REALTIME), in nanoseconds since the epoch.
pub(crate) fn real_time_ns() -> i64 {
    // SAFETY: reads the clock; any context but NMI.
    unsafe { bindings::ktime_get_real() }
}

/// Sets the wall clock to `ns` nanoseconds since the epoch; `EINVAL` for a
/// time before it. Process context.
pub(crate) fn set_real_time_ns(ns: i64) -> Result {
    if ns < 0 {
        return Err(EINVAL);
    }
    let ts = bindings::timespec64 {
        tv_sec: ns / 1_000_000_000,
        // Below one second: fits every `c_long`.
        tv_nsec: (ns % 1_000_000_000) as kernel::ffi::c_long,
    };
    // SAFETY: `ts` is a valid, normalized timespec (non-negative, nsec
    // below one second) in a local; process context.
    to_result(unsafe { bindings::do_settimeofday64(&ts) })
}

/// Copies `n` bytes from `src` to `dst` where either side is memory the
/// host shares with this kernel and may write meanwhile (a SynIC slot, a
/// channel ring): through C's `memcpy`, since a Rust copy racing with
/// another agent's writes is undefined behaviour. What is copied out is
/// some bytes, possibly torn; callers check the copy, never the original.
///
/// # Safety
///
/// `src` is valid for `n` byte reads and `dst` for `n` byte writes, and the
/// two do not overlap.
pub(crate) unsafe fn copy_shared(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller guarantees both ranges; `hvg_copy_shared` is a
    // plain memcpy that touches nothing else.
    unsafe { ffi::hvg_copy_shared(dst.cast(), src.cast(), n) }
}
