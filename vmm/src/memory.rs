// SPDX-License-Identifier: GPL-2.0

//! The guest physical address map: where RAM is, where the boot structures go, and the E820
//! table that tells the guest about it.
//!
//! This module owns the layout constants and the creation of guest RAM. It never writes
//! into guest memory itself; `boot`, `loader` and `acpi` do that through `GuestMemory`
//! accessors at the addresses defined here.

use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Why guest memory could not be laid out or mapped.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// A memory size outside the supported range.
    #[error("{mib} MiB of guest memory is outside the supported range {min}..={max} MiB")]
    Size {
        /// Requested size.
        mib: u64,
        /// Smallest supported size.
        min: u64,
        /// Largest supported size.
        max: u64,
    },
    /// Guest RAM could not be mapped.
    #[error("cannot allocate guest memory: {0}")]
    Alloc(#[source] vm_memory::mmap::FromRangesError),
}

type Result<T> = std::result::Result<T, MemoryError>;

/// Global descriptor table used for the 64-bit direct boot.
pub const BOOT_GDT_ADDR: u64 = 0x500;
/// A zero interrupt descriptor table (the kernel installs its own before enabling interrupts).
pub const BOOT_IDT_ADDR: u64 = 0x520;
/// Linux `boot_params` ("zero page"); RSI points here at entry.
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Initial stack pointer of the boot vCPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-mapping page tables: PML4, one PDPT, one PD of 2 MiB pages (first GiB).
pub const PML4_ADDR: u64 = 0x9000;
/// Page-directory-pointer table of the identity map.
pub const PDPT_ADDR: u64 = 0xa000;
/// Page directory of the identity map.
pub const PD_ADDR: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Longest command line accepted, including the terminating NUL (x86 COMMAND_LINE_SIZE).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the extended BIOS data area; RAM below it is usable.
pub const EBDA_START: u64 = 0x9fc00;
/// Start of the legacy BIOS area where the ACPI tables live (RSDP first).
pub const BIOS_AREA_START: u64 = 0xe0000;
/// End (exclusive) of the legacy BIOS area.
pub const BIOS_AREA_END: u64 = 0x10_0000;
/// Where the RSDP is written (also found by a legacy scan of 0xe0000..0x100000).
pub const RSDP_ADDR: u64 = BIOS_AREA_START;
/// First byte of "high" memory (above 1 MiB), where kernels load.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO hole: no RAM between here and 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// First address above 4 GiB, where RAM resumes when the guest has more than fits below.
pub const FIRST_ADDR_PAST_32BITS: u64 = 1 << 32;
/// IOAPIC register window (in-kernel IOAPIC).
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// Local APIC register window (in-kernel LAPIC).
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
/// Three pages KVM needs for the real-mode TSS on Intel (inside the MMIO hole).
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// One page KVM needs for the real-mode identity map on Intel (inside the MMIO hole).
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;

/// Smallest accepted guest RAM size in MiB.
pub const MIN_MEMORY_MIB: u64 = 32;
/// Largest accepted guest RAM size in MiB. RAM past the MMIO hole is relocated above 4 GiB.
pub const MAX_MEMORY_MIB: u64 = 16 * 1024;

const MIB: u64 = 1 << 20;

/// E820 range types (`E820_TYPE_*` in Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    /// Usable RAM.
    Ram = 1,
    /// Reserved, not to be used by the OS.
    Reserved = 2,
}

/// One entry of the E820 map handed to the guest in `boot_params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// First guest physical address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: E820Type,
}

/// Where guest RAM lives, derived from its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLayout {
    ram_bytes: u64,
}

impl MemoryLayout {
    /// A layout for `mib` MiB of RAM; refuses sizes outside `MIN_MEMORY_MIB..=MAX_MEMORY_MIB`.
    pub fn new(mib: u64) -> Result<Self> {
        if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) {
            return Err(MemoryError::Size {
                mib,
                min: MIN_MEMORY_MIB,
                max: MAX_MEMORY_MIB,
            });
        }
        Ok(Self {
            ram_bytes: mib * MIB,
        })
    }

    /// Total RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram_bytes
    }

    /// End (exclusive) of the RAM below the MMIO hole.
    pub fn low_ram_end(&self) -> u64 {
        self.ram_bytes.min(MMIO_HOLE_START)
    }

    /// Bytes of RAM relocated above 4 GiB (zero for guests smaller than the hole start).
    pub fn high_ram_bytes(&self) -> u64 {
        self.ram_bytes.saturating_sub(MMIO_HOLE_START)
    }

    /// The RAM ranges as (start, length), one KVM memory slot each.
    pub fn ram_ranges(&self) -> Vec<(GuestAddress, usize)> {
        let mut ranges = vec![(GuestAddress(0), to_usize(self.low_ram_end()))];
        if self.high_ram_bytes() > 0 {
            ranges.push((
                GuestAddress(FIRST_ADDR_PAST_32BITS),
                to_usize(self.high_ram_bytes()),
            ));
        }
        ranges
    }

    /// The E820 map: low RAM up to the EBDA, the EBDA and BIOS area (ACPI tables) reserved,
    /// RAM from 1 MiB to the hole, and RAM above 4 GiB if any.
    pub fn e820_entries(&self) -> Vec<E820Entry> {
        let mut entries = vec![
            E820Entry {
                addr: 0,
                size: EBDA_START,
                kind: E820Type::Ram,
            },
            E820Entry {
                addr: EBDA_START,
                size: 0xa0000 - EBDA_START,
                kind: E820Type::Reserved,
            },
            E820Entry {
                addr: BIOS_AREA_START,
                size: BIOS_AREA_END - BIOS_AREA_START,
                kind: E820Type::Reserved,
            },
            E820Entry {
                addr: HIMEM_START,
                size: self.low_ram_end() - HIMEM_START,
                kind: E820Type::Ram,
            },
        ];
        if self.high_ram_bytes() > 0 {
            entries.push(E820Entry {
                addr: FIRST_ADDR_PAST_32BITS,
                size: self.high_ram_bytes(),
                kind: E820Type::Ram,
            });
        }
        entries
    }

    /// Maps anonymous host memory for every RAM range.
    pub fn create_guest_memory(&self) -> Result<GuestMemoryMmap> {
        GuestMemoryMmap::from_ranges(&self.ram_ranges()).map_err(MemoryError::Alloc)
    }
}

/// Sizes here are bounded by `MAX_MEMORY_MIB`, far below `usize::MAX` on x86_64.
fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

    #[test]
    fn rejects_sizes_out_of_range() {
        assert!(MemoryLayout::new(31).is_err());
        assert!(MemoryLayout::new(MAX_MEMORY_MIB + 1).is_err());
        assert!(MemoryLayout::new(32).is_ok());
        assert!(MemoryLayout::new(MAX_MEMORY_MIB).is_ok());
    }

    #[test]
    fn small_guest_has_one_range_and_four_e820_entries() {
        let layout = MemoryLayout::new(256).expect("256 MiB is valid");
        assert_eq!(layout.ram_ranges(), vec![(GuestAddress(0), 256 << 20)]);
        let e820 = layout.e820_entries();
        assert_eq!(e820.len(), 4);
        assert_eq!(
            e820[0],
            E820Entry {
                addr: 0,
                size: 0x9fc00,
                kind: E820Type::Ram
            }
        );
        assert_eq!(e820[1].kind, E820Type::Reserved);
        assert_eq!(e820[2].addr, 0xe0000);
        assert_eq!(e820[2].kind, E820Type::Reserved);
        assert_eq!(
            e820[3],
            E820Entry {
                addr: 0x10_0000,
                size: (256 << 20) - 0x10_0000,
                kind: E820Type::Ram
            }
        );
    }

    #[test]
    fn large_guest_is_split_around_the_mmio_hole() {
        let layout = MemoryLayout::new(4096).expect("4 GiB is valid");
        assert_eq!(layout.low_ram_end(), MMIO_HOLE_START);
        assert_eq!(layout.high_ram_bytes(), (4096 << 20) - MMIO_HOLE_START);
        let ranges = layout.ram_ranges();
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[1].0, GuestAddress(1 << 32));
        let e820 = layout.e820_entries();
        assert_eq!(e820.len(), 5);
        assert_eq!(e820[3].addr + e820[3].size, MMIO_HOLE_START);
        assert_eq!(e820[4].addr, 1 << 32);
        let ram: u64 = e820
            .iter()
            .filter(|e| e.kind == E820Type::Ram)
            .map(|e| e.size)
            .sum();
        // All RAM except the EBDA..1 MiB window is usable.
        assert_eq!(ram, layout.ram_bytes() - (HIMEM_START - EBDA_START));
        // No E820 range overlaps the IOAPIC or LAPIC windows.
        for e in &e820 {
            let end = e.addr + e.size;
            assert!(end <= u64::from(IOAPIC_ADDR) || e.addr >= FIRST_ADDR_PAST_32BITS);
        }
    }

    #[test]
    fn e820_entries_are_sorted_and_disjoint() {
        for mib in [32, 256, 3072, 3073, 8192] {
            let e820 = MemoryLayout::new(mib).expect("valid").e820_entries();
            for w in e820.windows(2) {
                assert!(w[0].addr + w[0].size <= w[1].addr, "{mib} MiB: {w:?}");
            }
        }
    }

    #[test]
    fn guest_memory_matches_layout() {
        let layout = MemoryLayout::new(64).expect("valid");
        let mem = layout.create_guest_memory().expect("mmap 64 MiB");
        assert_eq!(mem.num_regions(), 1);
        let total: u64 = mem.iter().map(|r| r.len()).sum();
        assert_eq!(total, 64 << 20);
    }
}
