// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers around `hv_shim.c`, the C half of this module.
//!
//! The 7.3 `kernel` crate binds no MSR access, no interrupt without a device,
//! no CPU hotplug state and no cross-CPU call; `hv_shim.c` provides the
//! minimum in C and this file is the only caller. Every `extern` function is
//! wrapped here, once, in a function or type whose signature carries the
//! rules the C side documents.

use core::ffi::{c_int, c_uint, c_ulong, c_void};
use core::marker::PhantomData;
use kernel::ffi::c_char;

use kernel::{bindings, error::to_result, page::Page, prelude::*, str::CStr};
use kernel::page::PAGE_SIZE;
use kernel::sync::atomic::{Atomic, Full, Relaxed};

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
        pub(super) fn hvg_cpuhp_setup(
            name: *const c_char,
            online: unsafe extern "C" fn(c_uint) -> c_int,
            offline: unsafe extern "C" fn(c_uint) -> c_int,
        ) -> c_int;
        pub(super) fn hvg_cpuhp_remove(state: c_int);
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
        pub(super) fn hvg_cpu_online(cpu: c_uint) -> bool;
        pub(super) fn hvg_linux_version_code() -> u32;
        pub(super) fn hvg_orderly_poweroff();
        pub(super) fn hvg_orderly_reboot();
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

/// A dynamic CPU hotplug state; removing it (on drop) runs the offline
/// callback on every online CPU.
pub(crate) struct HotplugState(c_int);

impl HotplugState {
    /// Registers `online`/`offline`, which run on the CPU concerned, in
    /// process context, serialized by the hotplug lock. `online` runs for
    /// every CPU already online before this returns.
    pub(crate) fn new(
        name: &'static CStr,
        online: unsafe extern "C" fn(c_uint) -> c_int,
        offline: unsafe extern "C" fn(c_uint) -> c_int,
    ) -> Result<Self> {
        // SAFETY: `name` is static; the callbacks are `extern "C"` functions
        // whose safety contract the caller documents where it defines them.
        let state = unsafe { ffi::hvg_cpuhp_setup(name.as_char_ptr(), online, offline) };
        to_result(state.min(0))?;
        Ok(Self(state))
    }
}

impl Drop for HotplugState {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a state returned by `hvg_cpuhp_setup`.
        unsafe { ffi::hvg_cpuhp_remove(self.0) }
    }
}
