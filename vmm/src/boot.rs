// SPDX-License-Identifier: GPL-2.0

//! 64-bit direct boot: the state a boot loader would leave behind for Linux's 64-bit entry.
//!
//! That is `boot_params` (the zero page) with the E820 map, command line, initrd and RSDP;
//! a GDT with flat 64-bit code and data segments; identity-mapped page tables for the first
//! GiB; and long mode in CR0/CR4/EFER with RSI pointing at the zero page (Linux's
//! Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"). Only the boot vCPU gets this;
//! the others wait for INIT/SIPI in KVM. Modelled on Firecracker's `arch/src/x86_64`.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs};
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_params, setup_header};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::memory::{
    E820Entry, BOOT_GDT_ADDR, BOOT_IDT_ADDR, BOOT_STACK_POINTER, CMDLINE_ADDR, PDPT_ADDR, PD_ADDR,
    PML4_ADDR, ZERO_PAGE_ADDR,
};

/// `boot_params.hdr.boot_flag`.
pub const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `boot_params.hdr.header`: "HdrS".
pub const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// `type_of_loader`: undefined boot loader.
pub const KERNEL_LOADER_OTHER: u8 = 0xff;
/// `kernel_alignment` used when the image supplies no header (ELF boot).
pub const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x100_0000;
/// Most E820 entries `boot_params` holds.
pub const E820_MAX_ENTRIES_ZEROPAGE: usize = 128;

const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_NE: u64 = 1 << 5;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Why the boot structures could not be built or written into guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Writing a boot structure into guest RAM failed.
    #[error("cannot write the {what} into guest memory: {source}")]
    GuestMemoryWrite {
        /// The structure, e.g. "page tables".
        what: &'static str,
        /// What vm-memory reported.
        #[source]
        source: vm_memory::GuestMemoryError,
    },

    /// The boot structures cannot describe this configuration.
    #[error("cannot set up the boot parameters: {0}")]
    Setup(&'static str),

    /// Writing boot_params failed.
    #[error("cannot write the Linux boot parameters: {0}")]
    Params(#[source] linux_loader::configurator::Error),
}

/// Where the boot structures that depend on the kernel and initrd go.
#[derive(Clone, Copy, Debug, Default)]
pub struct BootParamsInput {
    /// The bzImage setup header, or `None` for an ELF kernel.
    pub setup_header: Option<setup_header>,
    /// Length of the command line including its NUL.
    pub cmdline_size: u32,
    /// Initrd (address, size), if any.
    pub initrd: Option<(u64, u64)>,
    /// RSDP address.
    pub rsdp_addr: u64,
}

/// Builds the zero page.
pub fn build_boot_params(
    input: &BootParamsInput,
    e820: &[E820Entry],
) -> Result<boot_params, BootError> {
    let mut params = boot_params::default();
    if let Some(hdr) = input.setup_header {
        params.hdr = hdr;
    } else {
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    params.hdr.cmdline_size = input.cmdline_size;
    if let Some((addr, size)) = input.initrd {
        let (Ok(addr), Ok(size)) = (u32::try_from(addr), u32::try_from(size)) else {
            return Err(BootError::Setup(
                "the initrd must lie below 4 GiB for the boot protocol",
            ));
        };
        params.hdr.ramdisk_image = addr;
        params.hdr.ramdisk_size = size;
    }
    params.acpi_rsdp_addr = input.rsdp_addr;
    if e820.len() > E820_MAX_ENTRIES_ZEROPAGE {
        return Err(BootError::Setup(
            "the E820 map has more entries than boot_params holds",
        ));
    }
    for (slot, e) in params.e820_table.iter_mut().zip(e820) {
        slot.addr = e.addr;
        slot.size = e.size;
        slot.r#type = e.kind as u32;
    }
    params.e820_entries = e820.len() as u8;
    Ok(params)
}

/// Writes the zero page at [`ZERO_PAGE_ADDR`] with linux-loader's configurator.
pub fn write_boot_params(mem: &GuestMemoryMmap, params: &boot_params) -> Result<(), BootError> {
    let bp = BootParams::new::<boot_params>(params, GuestAddress(ZERO_PAGE_ADDR));
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(&bp, mem).map_err(BootError::Params)
}

/// A GDT descriptor from flags (access byte and flags nibble as in Firecracker), base, limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The boot GDT: null, 64-bit code (0x08), data (0x10), TSS (0x18).
pub const BOOT_GDT: [u64; 4] = [
    gdt_entry(0, 0, 0),
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
];

/// The `kvm_segment` that loading descriptor `entry` from GDT slot `index` would produce.
pub fn segment_from_gdt(entry: u64, index: u8) -> kvm_segment {
    let bit = |n: u32| ((entry >> n) & 1) as u8;
    let g = bit(55);
    let raw_limit = (((entry >> 32) & 0x000f_0000) | (entry & 0x0000_ffff)) as u32;
    let present = bit(47);
    kvm_segment {
        base: ((entry >> 32) & 0xff00_0000) | ((entry >> 16) & 0x00ff_ffff),
        limit: if g == 0 {
            raw_limit
        } else {
            (raw_limit << 12) | 0xfff
        },
        selector: u16::from(index) * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 0x3) as u8,
        db: bit(54),
        s: bit(44),
        l: bit(53),
        g,
        avl: bit(52),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

/// Writes the GDT, a null IDT and identity-mapping page tables (first GiB, 2 MiB pages).
pub fn write_boot_tables(mem: &GuestMemoryMmap) -> Result<(), BootError> {
    let wr = |what: &'static str, bytes: &[u8], addr: u64| {
        mem.write_slice(bytes, GuestAddress(addr))
            .map_err(|source| BootError::GuestMemoryWrite { what, source })
    };
    let gdt: Vec<u8> = BOOT_GDT.iter().flat_map(|e| e.to_le_bytes()).collect();
    wr("GDT", &gdt, BOOT_GDT_ADDR)?;
    wr("IDT", &0u64.to_le_bytes(), BOOT_IDT_ADDR)?;
    // Present | writable.
    wr("page tables", &(PDPT_ADDR | 0x3).to_le_bytes(), PML4_ADDR)?;
    wr("page tables", &(PD_ADDR | 0x3).to_le_bytes(), PDPT_ADDR)?;
    // Present | writable | 2 MiB page.
    let pd: Vec<u8> = (0..512u64)
        .flat_map(|i| ((i << 21) | 0x83).to_le_bytes())
        .collect();
    wr("page tables", &pd, PD_ADDR)
}

/// Puts `sregs` (as read from a fresh vCPU) into 64-bit mode with the boot GDT and paging.
pub fn setup_long_mode_sregs(sregs: &mut kvm_sregs) {
    let code = segment_from_gdt(BOOT_GDT[1], 1);
    let data = segment_from_gdt(BOOT_GDT[2], 2);
    let tss = segment_from_gdt(BOOT_GDT[3], 3);
    sregs.gdt.base = BOOT_GDT_ADDR;
    sregs.gdt.limit = (std::mem::size_of_val(&BOOT_GDT) - 1) as u16;
    sregs.idt.base = BOOT_IDT_ADDR;
    sregs.idt.limit = (std::mem::size_of::<u64>() - 1) as u16;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.cr3 = PML4_ADDR;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
}

/// General registers at the 64-bit entry point.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rflags: 0x2,
        rip: entry,
        rsp: BOOT_STACK_POINTER,
        rbp: BOOT_STACK_POINTER,
        rsi: ZERO_PAGE_ADDR,
        ..Default::default()
    }
}

/// FPU state after FNINIT, with the default MXCSR.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

mod msr {
    pub const IA32_SYSENTER_CS: u32 = 0x174;
    pub const IA32_SYSENTER_ESP: u32 = 0x175;
    pub const IA32_SYSENTER_EIP: u32 = 0x176;
    pub const IA32_MISC_ENABLE: u32 = 0x1a0;
    pub const MTRR_DEF_TYPE: u32 = 0x2ff;
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const CSTAR: u32 = 0xc000_0083;
    pub const SYSCALL_MASK: u32 = 0xc000_0084;
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const MISC_ENABLE_FAST_STRING: u64 = 1;
    /// MTRRs enabled, default type write-back.
    pub const MTRR_ENABLE_WB: u64 = (1 << 11) | 6;
}

/// MSR values a firmware would leave on every CPU: syscall MSRs cleared, fast strings on,
/// MTRRs enabled with write-back as the default type.
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    let e = |index, data| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    vec![
        e(msr::IA32_SYSENTER_CS, 0),
        e(msr::IA32_SYSENTER_ESP, 0),
        e(msr::IA32_SYSENTER_EIP, 0),
        e(msr::STAR, 0),
        e(msr::CSTAR, 0),
        e(msr::KERNEL_GS_BASE, 0),
        e(msr::SYSCALL_MASK, 0),
        e(msr::LSTAR, 0),
        e(msr::IA32_MISC_ENABLE, msr::MISC_ENABLE_FAST_STRING),
        e(msr::MTRR_DEF_TYPE, msr::MTRR_ENABLE_WB),
    ]
}

/// LAPIC register offsets and delivery modes for the local interrupt pins.
pub mod lapic {
    /// LVT LINT0.
    pub const APIC_LVT0: usize = 0x350;
    /// LVT LINT1.
    pub const APIC_LVT1: usize = 0x360;
    /// Delivery mode ExtINT (the 8259 is wired to LINT0).
    pub const APIC_MODE_EXTINT: u32 = 0x7;
    /// Delivery mode NMI (LINT1).
    pub const APIC_MODE_NMI: u32 = 0x4;

    /// `reg` with its delivery mode (bits 8..10) replaced by `mode`.
    pub fn with_delivery_mode(reg: u32, mode: u32) -> u32 {
        (reg & !0x700) | (mode << 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLayout;
    use vm_memory::Bytes;

    #[test]
    fn gdt_segments_decode_as_flat_64bit() {
        let cs = segment_from_gdt(BOOT_GDT[1], 1);
        assert_eq!((cs.selector, cs.base, cs.limit), (0x08, 0, 0xffff_ffff));
        assert_eq!(
            (cs.type_, cs.l, cs.db, cs.s, cs.present, cs.g),
            (0xb, 1, 0, 1, 1, 1)
        );
        let ds = segment_from_gdt(BOOT_GDT[2], 2);
        assert_eq!((ds.selector, ds.type_, ds.l, ds.db), (0x10, 0x3, 0, 1));
        let tr = segment_from_gdt(BOOT_GDT[3], 3);
        assert_eq!((tr.selector, tr.type_, tr.s), (0x18, 0xb, 0));
        let null = segment_from_gdt(BOOT_GDT[0], 0);
        assert_eq!(null.unusable, 1);
    }

    #[test]
    fn long_mode_registers() {
        let mut sregs = kvm_sregs::default();
        setup_long_mode_sregs(&mut sregs);
        assert_eq!(sregs.cr3, 0x9000);
        assert_ne!(sregs.cr0 & X86_CR0_PG, 0);
        assert_ne!(sregs.cr0 & X86_CR0_PE, 0);
        assert_ne!(sregs.cr4 & X86_CR4_PAE, 0);
        assert_eq!(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(sregs.gdt.limit, 31);
        let regs = boot_regs(0x100_200);
        assert_eq!((regs.rip, regs.rsi, regs.rflags), (0x100_200, 0x7000, 2));
    }

    #[test]
    fn page_tables_identity_map_the_first_gib() {
        let mem = MemoryLayout::new(32)
            .expect("valid")
            .create_guest_memory()
            .expect("mmap");
        write_boot_tables(&mem).expect("write");
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_ADDR)).expect("read");
        assert_eq!(pml4, PDPT_ADDR | 3);
        let pdpt: u64 = mem.read_obj(GuestAddress(PDPT_ADDR)).expect("read");
        assert_eq!(pdpt, PD_ADDR | 3);
        let last: u64 = mem.read_obj(GuestAddress(PD_ADDR + 511 * 8)).expect("read");
        assert_eq!(last, (511 << 21) | 0x83);
        let gdt1: u64 = mem.read_obj(GuestAddress(BOOT_GDT_ADDR + 8)).expect("read");
        assert_eq!(gdt1, 0x00af_9b00_0000_ffff);
    }

    #[test]
    fn boot_params_fields() {
        let layout = MemoryLayout::new(256).expect("valid");
        let hdr = setup_header {
            version: 0x020f,
            kernel_alignment: 0x20_0000,
            ..Default::default()
        };
        let input = BootParamsInput {
            setup_header: Some(hdr),
            cmdline_size: 42,
            initrd: Some((0x0f00_0000, 0x12_3456)),
            rsdp_addr: 0xe0000,
        };
        let p = build_boot_params(&input, &layout.e820_entries()).expect("build");
        let (ptr, size, ty) = (p.hdr.cmd_line_ptr, p.hdr.cmdline_size, p.hdr.type_of_loader);
        assert_eq!((ptr, size, ty), (0x20000, 42, 0xff));
        let (image, rsize) = (p.hdr.ramdisk_image, p.hdr.ramdisk_size);
        assert_eq!((image, rsize), (0x0f00_0000, 0x12_3456));
        let (flag, magic, version, align) = (
            p.hdr.boot_flag,
            p.hdr.header,
            p.hdr.version,
            p.hdr.kernel_alignment,
        );
        assert_eq!(
            (flag, magic, version, align),
            (0xaa55, 0x5372_6448, 0x020f, 0x20_0000)
        );
        let rsdp = p.acpi_rsdp_addr;
        assert_eq!(rsdp, 0xe0000);
        assert_eq!(p.e820_entries, 4);
        let e3 = p.e820_table[3];
        let (addr, size, ty) = (e3.addr, e3.size, e3.r#type);
        assert_eq!((addr, size, ty), (0x10_0000, (256 << 20) - 0x10_0000, 1));

        let mem = layout.create_guest_memory().expect("mmap");
        write_boot_params(&mem, &p).expect("write");
        let back: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_ADDR)).expect("read");
        let ptr = back.hdr.cmd_line_ptr;
        assert_eq!(ptr, 0x20000);
        assert_eq!(back.e820_entries, 4);
    }

    #[test]
    fn elf_boot_params_have_defaults() {
        let p = build_boot_params(&BootParamsInput::default(), &[]).expect("build");
        let (align, ramdisk) = (p.hdr.kernel_alignment, p.hdr.ramdisk_image);
        assert_eq!((align, ramdisk), (KERNEL_MIN_ALIGNMENT_BYTES, 0));
    }

    #[test]
    fn lapic_delivery_mode() {
        assert_eq!(
            lapic::with_delivery_mode(0x0001_0000, lapic::APIC_MODE_EXTINT),
            0x0001_0700
        );
        assert_eq!(
            lapic::with_delivery_mode(0x0000_0700, lapic::APIC_MODE_NMI),
            0x400
        );
    }
}
