// SPDX-License-Identifier: GPL-2.0

//! Byte-level checks of the ACPI tables, and an `iasl -d` round trip of the DSDT.

use super::*;

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn table<'a>(t: &'a AcpiTables, sig: &[u8; 4]) -> &'a PlacedTable {
    t.tables()
        .iter()
        .find(|p| &p.signature == sig)
        .expect("table present")
}

fn com1() -> AcpiDevice {
    AcpiDevice::new("COM1", Hid::eisa("PNP0501").expect("valid EISA ID"))
        .expect("valid name")
        .uid(1)
        .resource(Resource::Io {
            base: 0x3f8,
            len: 8,
        })
        .resource(Resource::Interrupt {
            gsi: 4,
            edge: true,
            active_low: false,
        })
}

fn vmbus() -> AcpiDevice {
    AcpiDevice::new("VMBS", Hid::string("VMBUS").expect("valid HID"))
        .expect("valid name")
        .uid(0)
        .resource(Resource::Interrupt {
            gsi: 5,
            edge: true,
            active_low: false,
        })
        .resource(Resource::Memory32 {
            base: 0xd000_0000,
            len: 0x1000,
        })
}

fn tables(vcpus: u8) -> AcpiTables {
    let mut dsdt = DsdtBuilder::new();
    dsdt.add_device(com1());
    AcpiTables::new(vcpus, &dsdt).expect("tables fit")
}

#[test]
fn every_table_has_a_valid_checksum_and_length() {
    let t = tables(4);
    for p in t.tables() {
        match &p.signature {
            b"RSD " => {
                assert_eq!(&p.bytes[..8], b"RSD PTR ");
                assert_eq!(sum(&p.bytes[..20]), 0, "RSDP checksum");
                assert_eq!(sum(&p.bytes), 0, "RSDP extended checksum");
                assert_eq!(p.bytes[15], 2, "RSDP revision");
            }
            b"FACS" => {
                // The FACS has no checksum; it must be 64-byte aligned.
                assert_eq!(&p.bytes[..4], b"FACS");
                assert_eq!(u32_at(&p.bytes, 4) as usize, p.bytes.len());
                assert_eq!(p.addr % 64, 0);
            }
            sig => {
                assert_eq!(&p.bytes[..4], sig);
                assert_eq!(u32_at(&p.bytes, 4) as usize, p.bytes.len(), "length field");
                assert_eq!(
                    sum(&p.bytes),
                    0,
                    "{} checksum",
                    String::from_utf8_lossy(sig)
                );
                assert_eq!(&p.bytes[10..16], b"HVHOST");
            }
        }
        assert!(p.addr >= 0xe0000 && p.addr + p.bytes.len() as u64 <= 0x10_0000);
    }
}

#[test]
fn tables_are_linked_rsdp_xsdt_fadt_dsdt() {
    let t = tables(2);
    let rsdp = table(&t, b"RSD ");
    assert_eq!(rsdp.addr, 0xe0000);
    let xsdt = table(&t, b"XSDT");
    assert_eq!(u64_at(&rsdp.bytes, 24), xsdt.addr);
    let fadt = table(&t, b"FACP");
    let madt = table(&t, b"APIC");
    assert_eq!(xsdt.bytes.len(), 36 + 16);
    assert_eq!(u64_at(&xsdt.bytes, 36), fadt.addr);
    assert_eq!(u64_at(&xsdt.bytes, 44), madt.addr);
    assert_eq!(u64_at(&fadt.bytes, 140), table(&t, b"DSDT").addr, "X_DSDT");
    assert_eq!(
        u64_at(&fadt.bytes, 132),
        table(&t, b"FACS").addr,
        "X_FIRMWARE_CTRL"
    );
    // Tables do not overlap.
    let mut spans: Vec<(u64, u64)> = t
        .tables()
        .iter()
        .map(|p| (p.addr, p.addr + p.bytes.len() as u64))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0);
    }
}

#[test]
fn fadt_describes_fixed_hardware_pm_and_reset() {
    let t = tables(1);
    let f = &table(&t, b"FACP").bytes;
    assert_eq!(f.len(), 276);
    assert_eq!(f[8], 6, "FADT major revision");
    assert_eq!(u16::from_le_bytes([f[46], f[47]]), 9, "SCI_INT");
    assert_eq!(u32_at(f, 48), 0, "SMI_CMD: always in ACPI mode");
    assert_eq!(u32_at(f, 56), 0x600, "PM1a_EVT_BLK");
    assert_eq!(u32_at(f, 64), 0x604, "PM1a_CNT_BLK");
    assert_eq!((f[88], f[89]), (4, 2), "PM1_EVT_LEN, PM1_CNT_LEN");
    let flags = u32_at(f, 112);
    assert_eq!(flags & 1 << 20, 0, "not HW_REDUCED_ACPI");
    assert_ne!(flags & 1 << 10, 0, "RESET_REG_SUP");
    // RESET_REG: system I/O, 8 bits, byte access, port 0x608; RESET_VALUE 1.
    assert_eq!(&f[116..120], &[1, 8, 0, 1]);
    assert_eq!(u64_at(f, 120), 0x608);
    assert_eq!(f[128], 1);
    // X_PM1a_EVT_BLK (offset 148) and X_PM1a_CNT_BLK (offset 172) match the 32-bit fields.
    assert_eq!((f[148], f[149]), (1, 32));
    assert_eq!(u64_at(f, 152), 0x600);
    assert_eq!((f[172], f[173]), (1, 16));
    assert_eq!(u64_at(f, 176), 0x604);
    assert_eq!(
        u16::from_le_bytes([f[109], f[110]]),
        0b101,
        "IAPC_BOOT_ARCH"
    );
}

#[test]
fn madt_has_one_enabled_lapic_per_vcpu_and_the_ioapic() {
    for vcpus in [1u8, 2, 8, 32] {
        let t = tables(vcpus);
        let m = &table(&t, b"APIC").bytes;
        assert_eq!(u32_at(m, 36), 0xfee0_0000);
        let mut off = 44;
        let mut lapics = Vec::new();
        let mut ioapics = Vec::new();
        let mut overrides = Vec::new();
        while off < m.len() {
            let (kind, len) = (m[off], usize::from(m[off + 1]));
            match kind {
                0 => {
                    assert_eq!(len, 8);
                    assert_eq!(u32_at(m, off + 4), 1, "enabled");
                    lapics.push((m[off + 2], m[off + 3]));
                }
                1 => ioapics.push((m[off + 2], u32_at(m, off + 4), u32_at(m, off + 8))),
                2 => {
                    assert_eq!(len, 10);
                    overrides.push((m[off + 3], u32_at(m, off + 4), m[off + 8]));
                }
                other => panic!("unexpected MADT entry type {other}"),
            }
            off += len;
        }
        assert_eq!(off, m.len());
        let expected: Vec<(u8, u8)> = (0..vcpus).map(|i| (i, i)).collect();
        assert_eq!(lapics, expected);
        assert_eq!(ioapics, vec![(0, 0xfec0_0000, 0)]);
        // Only the SCI: IRQ 9 on GSI 9, level-triggered, active-high.
        assert_eq!(overrides, vec![(9, 9, 0x0d)]);
    }
}

#[test]
fn builder_validates_names_and_ids() {
    assert!(AmlName::new("VMBS").is_ok());
    assert!(AmlName::new("_S5_").is_ok());
    assert!(AmlName::new("1ABC").is_err());
    assert!(AmlName::new("abcd").is_err());
    assert!(AmlName::new("TOOLONG").is_err());
    assert!(Hid::eisa("PNP0501").is_ok());
    assert!(Hid::eisa("pnp0501").is_err());
    assert!(Hid::eisa("PNP05G1").is_err());
    assert!(Hid::string("VMBUS").is_ok());
    assert!(Hid::string("").is_err());
    assert!(Hid::string("has space").is_err());
}

#[test]
fn dsdt_contains_s5_and_devices() {
    let mut b = DsdtBuilder::new();
    b.add_device(com1()).add_device(vmbus());
    let d = b.build();
    let find = |needle: &[u8]| d.windows(needle.len()).any(|w| w == needle);
    assert!(find(b"_S5_"));
    assert!(find(b"_SB_"));
    assert!(find(b"VMBS"));
    assert!(find(b"VMBUS\0"));
    assert_eq!(sum(&d), 0);
}

/// Disassembles `bytes` with `iasl -d`, returning the .dsl text, or `None` if iasl is absent.
fn iasl_disassemble(name: &str, bytes: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let aml_path = dir.path().join(format!("{name}.aml"));
    std::fs::write(&aml_path, bytes).expect("write aml");
    let out = match std::process::Command::new("iasl")
        .arg("-d")
        .arg(&aml_path)
        .current_dir(dir.path())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run iasl: {e}"),
    };
    assert!(
        out.status.success(),
        "iasl -d failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(std::fs::read_to_string(dir.path().join(format!("{name}.dsl"))).expect("iasl wrote .dsl"))
}

#[test]
fn dsdt_disassembles_with_iasl() {
    let mut b = DsdtBuilder::new();
    b.add_device(com1()).add_device(vmbus());
    let Some(dsl) = iasl_disassemble("dsdt", &b.build()) else {
        println!("NOTICE: iasl not found on PATH; skipping the DSDT disassembly test");
        return;
    };
    assert!(dsl.contains("Name (_S5, Package (0x04)"), "{dsl}");
    assert!(dsl.contains("Scope (\\_SB)"), "{dsl}");
    assert!(dsl.contains("Device (COM1)"), "{dsl}");
    assert!(dsl.contains("EisaId (\"PNP0501\")"), "{dsl}");
    assert!(dsl.contains("Name (_HID, \"VMBUS\")"), "{dsl}");
    assert!(dsl.contains("IO (Decode16"), "{dsl}");
    assert!(
        dsl.contains("Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive"),
        "{dsl}"
    );
}

#[test]
fn fadt_and_madt_disassemble_with_iasl() {
    let t = tables(2);
    let Some(fadt) = iasl_disassemble("facp", &table(&t, b"FACP").bytes) else {
        println!("NOTICE: iasl not found on PATH; skipping the FADT/MADT disassembly test");
        return;
    };
    assert!(
        fadt.contains("PM1A Event Block Address : 00000600"),
        "{fadt}"
    );
    assert!(fadt.contains("Hardware Reduced (V5) : 0"), "{fadt}");
    let madt = iasl_disassemble("apic", &table(&t, b"APIC").bytes).expect("iasl present");
    assert!(madt.contains("Interrupt Source Override"), "{madt}");
    assert!(!madt.to_lowercase().contains("error"), "{madt}");
    assert!(!fadt.to_lowercase().contains("error"), "{fadt}");
}

#[test]
fn vmbus_device_has_an_empty_crs() {
    let dev = AcpiDevice::new("VMBS", Hid::string("VMBUS").expect("valid HID"))
        .expect("valid name")
        .uid(0)
        .with_crs();
    let mut b = DsdtBuilder::new();
    b.add_device(dev);
    let aml = b.aml();
    let find = |needle: &[u8]| aml.windows(needle.len()).any(|w| w == needle);
    assert!(find(b"_CRS"), "no _CRS");
    // An empty ResourceTemplate is a buffer holding only the end tag (0x79, checksum).
    assert!(find(&[0x79, 0x00]), "no end tag");
    let Some(dsl) = iasl_disassemble("vmbus", &b.build()) else {
        return;
    };
    assert!(dsl.contains("Name (_HID, \"VMBUS\")"), "{dsl}");
    // iasl shows an empty template as the buffer it is: just the end tag.
    assert!(dsl.contains("Name (_CRS, Buffer (0x02)"), "{dsl}");
    assert!(dsl.contains("0x79, 0x00"), "{dsl}");
}
