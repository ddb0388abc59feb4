// SPDX-License-Identifier: GPL-2.0

//! ACPI fixed-hardware power management: the PM1a event block (PM1_STS, PM1_EN), the PM1a
//! control block (PM1_CNT) and the FADT's RESET_REG, all on ports from [`ACPI_PM_BASE`].
//!
//! To power off, the guest evaluates `\_S5_` in the DSDT and writes
//! `SLP_TYP << 10 | SLP_EN` to PM1_CNT (ACPI 6.5, 4.8.3.2.1). To reset, it writes the
//! FADT's RESET_VALUE to the reset register. Both end the VM through [`VmControl`]; the
//! vCPU that wrote sees the stop flag before its next KVM_RUN.
//!
//! No fixed event is ever raised, so PM1_STS stays zero and the SCI is never asserted.
//! SMI_CMD is zero in the FADT, so the platform is always in ACPI mode: PM1_CNT.SCI_EN
//! reads as set.

use std::sync::Arc;

use super::PioDevice;
use crate::control::{VmControl, VmExitReason};

/// First port of the device.
pub const ACPI_PM_BASE: u16 = 0x600;
/// Ports the device occupies.
pub const ACPI_PM_LEN: u16 = 0x10;
/// PM1a_EVT_BLK: PM1_STS at +0, PM1_EN at +2.
pub const PM1A_EVT_BLK: u16 = ACPI_PM_BASE;
/// Length of PM1a_EVT_BLK.
pub const PM1_EVT_LEN: u8 = 4;
/// PM1a_CNT_BLK.
pub const PM1A_CNT_BLK: u16 = ACPI_PM_BASE + 4;
/// Length of PM1a_CNT_BLK.
pub const PM1_CNT_LEN: u8 = 2;
/// The reset register (one byte).
pub const RESET_PORT: u16 = ACPI_PM_BASE + 8;
/// Value the guest writes to the reset register to reset (FADT RESET_VALUE).
pub const RESET_VALUE: u8 = 0x1;
/// SLP_TYP value of the S5 (soft-off) state, as published in the DSDT's `\_S5_`.
pub const S5_SLEEP_TYPE: u8 = 5;
/// The SCI's GSI (FADT SCI_INT); level-triggered, active-high per the MADT override.
pub const SCI_GSI: u16 = 9;

const STS_OFFSET: u16 = 0;
const EN_OFFSET: u16 = 2;
const CNT_OFFSET: u16 = 4;
const RESET_OFFSET: u16 = 8;

/// PM1_CNT.SCI_EN.
const SCI_EN: u16 = 1 << 0;
/// PM1_CNT.SLP_TYP (bits 10..12).
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 0x7 << SLP_TYP_SHIFT;
/// PM1_CNT.SLP_EN (write-only).
const SLP_EN: u16 = 1 << 13;

/// PM1 registers and the reset register.
pub struct AcpiPmDevice {
    control: Arc<VmControl>,
    pm1_en: u16,
    pm1_cnt: u16,
}

fn set_byte(reg: &mut u16, index: u16, value: u8) {
    let shift = 8 * index;
    *reg = (*reg & !(0xff << shift)) | (u16::from(value) << shift);
}

impl AcpiPmDevice {
    /// A device that ends the VM through `control`.
    pub fn new(control: Arc<VmControl>) -> Self {
        Self {
            control,
            pm1_en: 0,
            pm1_cnt: SCI_EN,
        }
    }

    fn read_byte(&self, offset: u16) -> u8 {
        let (reg, index) = match offset {
            STS_OFFSET..EN_OFFSET => (0, offset - STS_OFFSET),
            EN_OFFSET..CNT_OFFSET => (self.pm1_en, offset - EN_OFFSET),
            CNT_OFFSET..6 => (self.pm1_cnt | SCI_EN, offset - CNT_OFFSET),
            _ => (0, 0),
        };
        (reg >> (8 * index)) as u8
    }

    fn sleep(&mut self, value: u16) {
        let sleep_type = ((value & SLP_TYP_MASK) >> SLP_TYP_SHIFT) as u8;
        if sleep_type == S5_SLEEP_TYPE {
            log::info!("guest entered ACPI S5 (soft off)");
            self.control.request_exit(VmExitReason::PowerOff);
        } else {
            // Only S5 is published in the DSDT; a guest asking for another state gets nothing.
            log::warn!("guest asked for unsupported ACPI sleep type {sleep_type}; ignoring it");
        }
    }
}

impl PioDevice for AcpiPmDevice {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        for (i, b) in (0u16..).zip(data.iter_mut()) {
            *b = self.read_byte(offset.saturating_add(i));
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        let mut cnt = self.pm1_cnt;
        let mut cnt_written = false;
        for (i, &value) in (0u16..).zip(data) {
            match offset.saturating_add(i) {
                // PM1_STS is write-one-to-clear and nothing is ever set.
                STS_OFFSET..EN_OFFSET => {}
                o @ EN_OFFSET..CNT_OFFSET => set_byte(&mut self.pm1_en, o - EN_OFFSET, value),
                o @ CNT_OFFSET..6 => {
                    set_byte(&mut cnt, o - CNT_OFFSET, value);
                    cnt_written = true;
                }
                RESET_OFFSET if value == RESET_VALUE => {
                    log::info!("guest requested reset (ACPI reset register)");
                    self.control.request_exit(VmExitReason::Reset);
                }
                o => log::debug!("ignoring ACPI PM write {value:#x} at offset {o:#x}"),
            }
        }
        if cnt_written {
            // SLP_EN is write-only: it triggers the transition and is never stored.
            self.pm1_cnt = (cnt & !SLP_EN) | SCI_EN;
            if cnt & SLP_EN != 0 {
                self.sleep(cnt);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EventFd;

    fn device() -> (AcpiPmDevice, Arc<VmControl>) {
        let ctl = Arc::new(VmControl::new(
            EventFd::new(libc::EFD_NONBLOCK).expect("eventfd"),
        ));
        (AcpiPmDevice::new(ctl.clone()), ctl)
    }

    fn cnt_value(sleep_type: u8, enable: bool) -> [u8; 2] {
        let v = u16::from(sleep_type) << SLP_TYP_SHIFT | if enable { SLP_EN } else { 0 };
        v.to_le_bytes()
    }

    #[test]
    fn s5_with_slp_en_powers_off() {
        let (mut dev, ctl) = device();
        // What ACPICA does: clear status, write SLP_TYP, then SLP_TYP | SLP_EN.
        dev.write(STS_OFFSET, &[0xff, 0xff]);
        dev.write(CNT_OFFSET, &cnt_value(S5_SLEEP_TYPE, false));
        assert!(!ctl.should_stop());
        dev.write(CNT_OFFSET, &cnt_value(S5_SLEEP_TYPE, true));
        assert_eq!(ctl.reason(), Some(VmExitReason::PowerOff));
    }

    #[test]
    fn byte_write_of_the_high_half_also_works() {
        let (mut dev, ctl) = device();
        dev.write(CNT_OFFSET + 1, &[cnt_value(S5_SLEEP_TYPE, true)[1]]);
        assert_eq!(ctl.reason(), Some(VmExitReason::PowerOff));
    }

    #[test]
    fn other_sleep_types_are_ignored() {
        let (mut dev, ctl) = device();
        dev.write(CNT_OFFSET, &cnt_value(3, true));
        assert!(!ctl.should_stop());
    }

    #[test]
    fn registers_read_back() {
        let (mut dev, _ctl) = device();
        let mut w = [0u8; 2];
        dev.read(CNT_OFFSET, &mut w);
        assert_eq!(u16::from_le_bytes(w), SCI_EN, "always in ACPI mode");
        dev.write(EN_OFFSET, &[0x21, 0x01]);
        let mut d = [0u8; 4];
        dev.read(STS_OFFSET, &mut d);
        assert_eq!(d, [0, 0, 0x21, 0x01]);
        dev.write(CNT_OFFSET, &cnt_value(S5_SLEEP_TYPE, false));
        dev.read(CNT_OFFSET, &mut w);
        assert_eq!(u16::from_le_bytes(w), 5 << 10 | SCI_EN);
    }

    #[test]
    fn reset_register_resets() {
        let (mut dev, ctl) = device();
        dev.write(RESET_OFFSET, &[0x2]);
        assert!(!ctl.should_stop());
        dev.write(RESET_OFFSET, &[RESET_VALUE]);
        assert_eq!(ctl.reason(), Some(VmExitReason::Reset));
    }
}
