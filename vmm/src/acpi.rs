// SPDX-License-Identifier: GPL-2.0

//! ACPI tables: RSDP, XSDT, FADT, FACS, MADT and a DSDT whose AML is generated here.
//!
//! The platform uses ACPI *fixed hardware* (not the hardware-reduced model): Linux's
//! hardware-reduced path drops the legacy PIC, the PIT and every ISA IRQ mapping, and COM1
//! on IRQ 4 would lose its interrupt without a PNP driver. So the FADT describes PM1a
//! event and control blocks, SCI on IRQ 9 and a RESET_REG, all served by
//! [`crate::devices::acpi_pm`]; power-off is SLP_TYP (from `\_S5_`) | SLP_EN written to
//! PM1_CNT. SMI_CMD is zero: the platform is always in ACPI mode. Tables live in the
//! legacy BIOS area, RSDP first at [`RSDP_ADDR`], and the guest learns the RSDP address
//! from `boot_params.acpi_rsdp_addr`.
//!
//! The MADT has one enabled Local APIC per vCPU, the in-kernel IOAPIC, and one interrupt
//! source override: IRQ 9 (SCI) level-triggered, active-high, because an active-low line
//! that KVM holds at 0 would read as asserted. KVM's default GSI routing wires ISA IRQ n
//! (the PIT on 0, COM1 on 4) to IOAPIC pin n, which is what Linux assumes for IRQs without
//! an override; an IRQ0-to-GSI2 override, as on real chipsets, would be wrong here.
//!
//! [`DsdtBuilder`] is how devices get into the namespace: a device is a name, a `_HID`, an
//! optional `_UID` and a list of resources for `_CRS`, placed under `\_SB_`.

use acpi_tables::aml;
use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::devices::acpi_pm::{
    PM1A_CNT_BLK, PM1A_EVT_BLK, PM1_CNT_LEN, PM1_EVT_LEN, RESET_PORT, RESET_VALUE, S5_SLEEP_TYPE,
    SCI_GSI,
};
use crate::memory::{BIOS_AREA_END, IOAPIC_ADDR, LAPIC_ADDR, RSDP_ADDR};

/// OEM ID in every table header.
pub const OEM_ID: [u8; 6] = *b"HVHOST";
/// OEM revision in every table header.
pub const OEM_REVISION: u32 = 1;
/// IOAPIC ID published in the MADT (KVM's IOAPIC ID register resets to 0).
pub const IOAPIC_ID: u8 = 0;

/// FADT IAPC_BOOT_ARCH: ISA devices (COM1, CMOS) present.
const IAPC_BOOT_ARCH_LEGACY_DEVICES: u16 = 1 << 0;
/// FADT IAPC_BOOT_ARCH: no VGA.
const IAPC_BOOT_ARCH_VGA_NOT_PRESENT: u16 = 1 << 2;

/// MADT Interrupt Source Override (type 2): ISA `source` IRQ arrives on `gsi`.
#[derive(Clone, Copy, Debug, zerocopy_derive::IntoBytes, zerocopy_derive::Immutable)]
#[repr(C, packed)]
pub struct InterruptSourceOverride {
    kind: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: [u8; 4],
    flags: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<InterruptSourceOverride>() == 10);

/// MPS INTI flags: active-high polarity.
pub const MPS_INTI_POLARITY_HIGH: u16 = 0x1;
/// MPS INTI flags: level trigger mode.
pub const MPS_INTI_TRIGGER_LEVEL: u16 = 0x3 << 2;

impl InterruptSourceOverride {
    /// ISA IRQ `source` is GSI `gsi` with MPS INTI `flags`.
    pub fn new(source: u8, gsi: u32, flags: u16) -> Self {
        Self {
            kind: 2,
            length: 10,
            bus: 0,
            source,
            gsi: gsi.to_le_bytes(),
            flags: flags.to_le_bytes(),
        }
    }
}

impl Aml for InterruptSourceOverride {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(zerocopy::IntoBytes::as_bytes(self));
    }
}

/// Why ACPI tables could not be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcpiError {
    /// An AML name segment is not four characters of `[A-Z0-9_]` starting with a non-digit.
    #[error(
        "{0:?} is not a valid AML name (four characters A-Z, 0-9 or _, not starting with a digit)"
    )]
    InvalidName(String),
    /// An EISA ID is not of the form UUUNNNN.
    #[error("{0:?} is not a valid EISA ID (three capital letters and four hex digits)")]
    InvalidEisaId(String),
    /// A string _HID is empty, too long or not printable ASCII.
    #[error("{0:?} is not a valid _HID string (1 to 16 printable ASCII characters)")]
    InvalidHid(String),
    /// The tables do not fit in the BIOS area.
    #[error("the ACPI tables need {size} bytes but only {room} are available")]
    TooLarge {
        /// Bytes needed.
        size: u64,
        /// Bytes available.
        room: u64,
    },
}

/// A validated four-character AML name segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmlName(String);

impl AmlName {
    /// Checks `name` against the AML NameSeg grammar.
    pub fn new(name: &str) -> Result<Self, AcpiError> {
        let b = name.as_bytes();
        let valid = b.len() == 4
            && (b[0].is_ascii_uppercase() || b[0] == b'_')
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_');
        if valid {
            Ok(Self(name.to_string()))
        } else {
            Err(AcpiError::InvalidName(name.to_string()))
        }
    }

    fn path(&self) -> aml::Path {
        aml::Path::new(&self.0)
    }
}

/// A device's hardware ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hid {
    /// A compressed EISA ID such as `PNP0501`.
    Eisa(String),
    /// A string ID such as `VMBUS`.
    String(String),
}

impl Hid {
    /// An EISA ID (`UUUNNNN`, e.g. `PNP0501`).
    pub fn eisa(id: &str) -> Result<Self, AcpiError> {
        let b = id.as_bytes();
        let valid = b.len() == 7
            && b[..3].iter().all(u8::is_ascii_uppercase)
            && b[3..].iter().all(u8::is_ascii_hexdigit);
        if valid {
            Ok(Hid::Eisa(id.to_string()))
        } else {
            Err(AcpiError::InvalidEisaId(id.to_string()))
        }
    }

    /// A string ID (e.g. `VMBUS`).
    pub fn string(id: &str) -> Result<Self, AcpiError> {
        let valid = (1..=16).contains(&id.len()) && id.bytes().all(|c| c.is_ascii_graphic());
        if valid {
            Ok(Hid::String(id.to_string()))
        } else {
            Err(AcpiError::InvalidHid(id.to_string()))
        }
    }
}

/// One entry of a device's `_CRS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A fixed range of I/O ports.
    Io {
        /// First port.
        base: u16,
        /// Number of ports.
        len: u8,
    },
    /// A fixed read/write 32-bit MMIO range.
    Memory32 {
        /// First address.
        base: u32,
        /// Length in bytes.
        len: u32,
    },
    /// An exclusive interrupt on a GSI.
    Interrupt {
        /// The GSI.
        gsi: u32,
        /// Edge-triggered (else level).
        edge: bool,
        /// Active-low (else active-high).
        active_low: bool,
    },
}

/// A device in `\_SB_`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiDevice {
    name: AmlName,
    hid: Hid,
    uid: Option<u32>,
    resources: Vec<Resource>,
    /// Emit `_CRS` even without resources (Linux's VMBus driver walks it).
    always_crs: bool,
}

impl AcpiDevice {
    /// A device called `name` with hardware ID `hid`.
    pub fn new(name: &str, hid: Hid) -> Result<Self, AcpiError> {
        Ok(Self {
            name: AmlName::new(name)?,
            hid,
            uid: None,
            resources: Vec::new(),
            always_crs: false,
        })
    }

    /// Emits a `_CRS` even if it lists nothing (an empty resource template):
    /// Linux's VMBus driver fails its probe when `_CRS` is missing.
    pub fn with_crs(mut self) -> Self {
        self.always_crs = true;
        self
    }

    /// Sets `_UID`.
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Appends a resource to `_CRS`.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resources.push(resource);
        self
    }

    fn to_aml(&self) -> Vec<u8> {
        let hid_value: Box<dyn Aml> = match &self.hid {
            Hid::Eisa(id) => Box::new(aml::EISAName::new(id)),
            Hid::String(id) => Box::new(id.clone()),
        };
        let hid = aml::Name::new("_HID".into(), hid_value.as_ref());
        let uid = self.uid.map(|u| aml::Name::new("_UID".into(), &u));
        let resources: Vec<Box<dyn Aml>> = self
            .resources
            .iter()
            .map(|r| -> Box<dyn Aml> {
                match *r {
                    Resource::Io { base, len } => Box::new(aml::IO::new(base, base, 1, len)),
                    Resource::Memory32 { base, len } => {
                        Box::new(aml::Memory32Fixed::new(true, base, len))
                    }
                    Resource::Interrupt {
                        gsi,
                        edge,
                        active_low,
                    } => Box::new(aml::Interrupt::new(true, edge, active_low, false, gsi)),
                }
            })
            .collect();
        let template = aml::ResourceTemplate::new(resources.iter().map(|r| r.as_ref()).collect());
        let crs = aml::Name::new("_CRS".into(), &template);

        let mut children: Vec<&dyn Aml> = vec![&hid];
        if let Some(uid) = &uid {
            children.push(uid);
        }
        if !self.resources.is_empty() || self.always_crs {
            children.push(&crs);
        }
        let mut bytes = Vec::new();
        aml::Device::new(self.name.path(), children).to_aml_bytes(&mut bytes);
        bytes
    }
}

/// Collects the devices of the DSDT and emits the table.
#[derive(Clone, Debug, Default)]
pub struct DsdtBuilder {
    devices: Vec<AcpiDevice>,
}

impl DsdtBuilder {
    /// A DSDT with `\_S5_` and an empty `\_SB_`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a device under `\_SB_`.
    pub fn add_device(&mut self, device: AcpiDevice) -> &mut Self {
        self.devices.push(device);
        self
    }

    /// The AML body (everything after the table header).
    pub fn aml(&self) -> Vec<u8> {
        let mut body = Vec::new();
        // \_S5_: SLP_TYPa, SLP_TYPb, reserved, reserved.
        let s5 = [S5_SLEEP_TYPE, S5_SLEEP_TYPE, 0, 0];
        let s5_package = aml::Package::new(s5.iter().map(|v| v as &dyn Aml).collect());
        aml::Name::new("_S5_".into(), &s5_package).to_aml_bytes(&mut body);

        let devices: Vec<u8> = self.devices.iter().flat_map(|d| d.to_aml()).collect();
        body.extend(aml::Scope::raw("\\_SB_".into(), devices));
        body
    }

    /// The complete DSDT.
    pub fn build(&self) -> Vec<u8> {
        let mut dsdt = Sdt::new(*b"DSDT", 36, 2, OEM_ID, *b"HVHOSTDS", OEM_REVISION);
        dsdt.append_slice(&self.aml());
        dsdt.as_slice().to_vec()
    }
}

/// The FADT: fixed-hardware PM1a blocks and reset register of
/// [`crate::devices::acpi_pm`], SCI on IRQ 9, no SMI command port.
pub fn fadt(dsdt_addr: u64, facs_addr: u64) -> Vec<u8> {
    let mut fadt = FADTBuilder::new(OEM_ID, *b"HVHOSTFA", OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .firmware_ctrl_64(facs_addr)
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .flag(Flags::ResetRegSup);
    let io = |bits: u8, access: AccessSize, port: u16| {
        GAS::new(AddressSpace::SystemIo, bits, 0, access, port.into())
    };
    fadt.sci_int = SCI_GSI.into();
    fadt.pm1a_evt_blk = u32::from(PM1A_EVT_BLK).into();
    fadt.pm1_evt_len = PM1_EVT_LEN;
    fadt.x_pm1a_evt_blk = io(PM1_EVT_LEN * 8, AccessSize::Undefined, PM1A_EVT_BLK);
    fadt.pm1a_cnt_blk = u32::from(PM1A_CNT_BLK).into();
    fadt.pm1_cnt_len = PM1_CNT_LEN;
    fadt.x_pm1a_cnt_blk = io(PM1_CNT_LEN * 8, AccessSize::Undefined, PM1A_CNT_BLK);
    fadt.reset_reg = io(8, AccessSize::ByteAccess, RESET_PORT);
    fadt.reset_value = RESET_VALUE;
    fadt.iapc_boot_arch = (IAPC_BOOT_ARCH_LEGACY_DEVICES | IAPC_BOOT_ARCH_VGA_NOT_PRESENT).into();
    let mut bytes = Vec::new();
    fadt.finalize().to_aml_bytes(&mut bytes);
    bytes
}

/// The FACS (no waking vector, no global lock in use).
pub fn facs() -> Vec<u8> {
    let mut bytes = Vec::new();
    FACS::new().to_aml_bytes(&mut bytes);
    bytes
}

/// The MADT: one enabled Local APIC per vCPU (APIC ID = vCPU index), the IOAPIC, and the
/// SCI's interrupt source override.
pub fn madt(vcpus: u8) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        *b"HVHOSTAP",
        OEM_REVISION,
        LocalInterruptController::Address(LAPIC_ADDR),
    );
    for i in 0..vcpus {
        madt.add_structure(ProcessorLocalApic::new(i, i, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(IOAPIC_ID, IOAPIC_ADDR, 0));
    madt.add_structure(InterruptSourceOverride::new(
        SCI_GSI as u8,
        SCI_GSI.into(),
        MPS_INTI_POLARITY_HIGH | MPS_INTI_TRIGGER_LEVEL,
    ));
    let mut bytes = Vec::new();
    madt.to_aml_bytes(&mut bytes);
    bytes
}

/// A table and where it goes.
#[derive(Clone, Debug)]
pub struct PlacedTable {
    /// Signature, for logs and tests.
    pub signature: [u8; 4],
    /// Guest physical address.
    pub addr: u64,
    /// The table bytes.
    pub bytes: Vec<u8>,
}

/// The complete set of tables, laid out from [`RSDP_ADDR`].
#[derive(Clone, Debug)]
pub struct AcpiTables {
    tables: Vec<PlacedTable>,
}

fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

impl AcpiTables {
    /// Lays out RSDP, DSDT, FACS, FADT, MADT and XSDT for `vcpus` vCPUs and the given DSDT.
    /// Every table starts on a 64-byte boundary (the FACS must).
    pub fn new(vcpus: u8, dsdt: &DsdtBuilder) -> Result<Self, AcpiError> {
        let mut next = align_up(RSDP_ADDR + Rsdp::len() as u64, 64);
        let mut place = |signature: [u8; 4], bytes: Vec<u8>| {
            let addr = next;
            next = align_up(addr + bytes.len() as u64, 64);
            PlacedTable {
                signature,
                addr,
                bytes,
            }
        };
        let dsdt = place(*b"DSDT", dsdt.build());
        let facs = place(*b"FACS", facs());
        let fadt = place(*b"FACP", fadt(dsdt.addr, facs.addr));
        let madt = place(*b"APIC", madt(vcpus));
        let mut xsdt_table = XSDT::new(OEM_ID, *b"HVHOSTXS", OEM_REVISION);
        xsdt_table.add_entry(fadt.addr);
        xsdt_table.add_entry(madt.addr);
        let mut xsdt_bytes = Vec::new();
        xsdt_table.to_aml_bytes(&mut xsdt_bytes);
        let xsdt = place(*b"XSDT", xsdt_bytes);

        let mut rsdp_bytes = Vec::new();
        Rsdp::new(OEM_ID, xsdt.addr).to_aml_bytes(&mut rsdp_bytes);
        let rsdp = PlacedTable {
            signature: *b"RSD ",
            addr: RSDP_ADDR,
            bytes: rsdp_bytes,
        };

        let end = xsdt.addr + xsdt.bytes.len() as u64;
        if end > BIOS_AREA_END {
            return Err(AcpiError::TooLarge {
                size: end - RSDP_ADDR,
                room: BIOS_AREA_END - RSDP_ADDR,
            });
        }
        Ok(Self {
            tables: vec![rsdp, dsdt, facs, fadt, madt, xsdt],
        })
    }

    /// The tables, RSDP first.
    pub fn tables(&self) -> &[PlacedTable] {
        &self.tables
    }

    /// Where the RSDP is.
    pub fn rsdp_addr(&self) -> u64 {
        RSDP_ADDR
    }

    /// Copies every table into guest memory.
    pub fn write_to(&self, mem: &GuestMemoryMmap) -> Result<(), vm_memory::GuestMemoryError> {
        for t in &self.tables {
            mem.write_slice(&t.bytes, GuestAddress(t.addr))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
