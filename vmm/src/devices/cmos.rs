// SPDX-License-Identifier: GPL-2.0

//! A minimal MC146818 CMOS RTC on ports 0x70 (index) and 0x71 (data).
//!
//! Without KVM's paravirtual clock (hvhost hides the KVM leaves), Linux reads the wall
//! clock from the CMOS at boot and polls the "update in progress" bit for up to a second if
//! nothing answers. This device reports host UTC time, never "update in progress", and keeps
//! the other 114 bytes of CMOS RAM. There is no alarm, no periodic interrupt and no IRQ 8.

use std::time::{SystemTime, UNIX_EPOCH};

use super::PioDevice;

/// The CMOS index port (data is at +1).
pub const CMOS_BASE: u16 = 0x70;
/// Ports occupied.
pub const CMOS_LEN: u16 = 2;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

/// Register A: 32.768 kHz time base, 1024 Hz rate, UIP clear.
const REG_A_DEFAULT: u8 = 0x26;
/// Register B: 24-hour mode, BCD.
const REG_B_DEFAULT: u8 = 0x02;
const REG_B_24H: u8 = 0x02;
const REG_B_BINARY: u8 = 0x04;
/// Register D: valid RAM and time.
const REG_D_VRT: u8 = 0x80;

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Full year, e.g. 2026.
    pub year: u32,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl DateTime {
    /// UTC time `secs` seconds after the Unix epoch (proleptic Gregorian calendar).
    pub fn from_unix(secs: u64) -> Self {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Howard Hinnant's civil_from_days, for days since 1970-01-01.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        Self {
            year: u32::try_from(year).unwrap_or(u32::MAX),
            month: month as u32,
            day: day as u32,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            // 1970-01-01 was a Thursday.
            weekday: ((days + 4) % 7) as u32,
        }
    }
}

/// The CMOS RTC and RAM.
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
    now: Box<dyn Fn() -> u64 + Send>,
}

impl Default for Cmos {
    fn default() -> Self {
        Self::new()
    }
}

impl Cmos {
    /// A CMOS that reads the host's clock.
    pub fn new() -> Self {
        Self::with_clock(Box::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        }))
    }

    /// A CMOS whose time comes from `now` (seconds since the Unix epoch).
    pub fn with_clock(now: Box<dyn Fn() -> u64 + Send>) -> Self {
        let mut ram = [0u8; 128];
        ram[usize::from(REG_A)] = REG_A_DEFAULT;
        ram[usize::from(REG_B)] = REG_B_DEFAULT;
        ram[usize::from(REG_D)] = REG_D_VRT;
        Self { index: 0, ram, now }
    }

    fn encode(&self, v: u32) -> u8 {
        let v = (v % 100) as u8;
        if self.ram[usize::from(REG_B)] & REG_B_BINARY != 0 {
            v
        } else {
            (v / 10) << 4 | (v % 10)
        }
    }

    fn encode_hour(&self, hour: u32) -> u8 {
        if self.ram[usize::from(REG_B)] & REG_B_24H != 0 {
            return self.encode(hour);
        }
        // 12-hour mode: 12, 1..11 with bit 7 set for PM.
        let pm = hour >= 12;
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(h12) | if pm { 0x80 } else { 0 }
    }

    fn read_register(&self, reg: u8) -> u8 {
        let t = || DateTime::from_unix((self.now)());
        match reg {
            REG_SECONDS => self.encode(t().second),
            REG_MINUTES => self.encode(t().minute),
            REG_HOURS => self.encode_hour(t().hour),
            REG_WEEKDAY => self.encode(t().weekday + 1),
            REG_DAY => self.encode(t().day),
            REG_MONTH => self.encode(t().month),
            REG_YEAR => self.encode(t().year),
            REG_CENTURY => self.encode(t().year / 100),
            REG_C => 0,
            _ => self.ram[usize::from(reg & 0x7f)],
        }
    }

    fn write_register(&mut self, reg: u8, value: u8) {
        match reg {
            // The clock follows the host; setting it is accepted and forgotten.
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_WEEKDAY | REG_DAY | REG_MONTH
            | REG_YEAR | REG_CENTURY | REG_C | REG_D => {}
            // UIP (bit 7) is read-only.
            REG_A => self.ram[usize::from(REG_A)] = value & 0x7f,
            _ => self.ram[usize::from(reg & 0x7f)] = value,
        }
    }
}

impl PioDevice for Cmos {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        let value = match offset {
            0 => self.index,
            _ => self.read_register(self.index),
        };
        data.fill(0xff);
        if let Some(b) = data.first_mut() {
            *b = value;
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        let Some(&value) = data.first() else {
            return;
        };
        match offset {
            // Bit 7 of the index is the NMI mask on PCs; it selects no register.
            0 => self.index = value & 0x7f,
            _ => self.write_register(self.index, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_date_conversion() {
        assert_eq!(
            DateTime::from_unix(0),
            DateTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                weekday: 4
            }
        );
        // 2024-02-29T13:45:30Z, a Thursday.
        let t = DateTime::from_unix(1_709_214_330);
        assert_eq!((t.year, t.month, t.day), (2024, 2, 29));
        assert_eq!((t.hour, t.minute, t.second, t.weekday), (13, 45, 30, 4));
    }

    fn reg(cmos: &mut Cmos, r: u8) -> u8 {
        cmos.write(0, &[r | 0x80]);
        let mut b = [0u8];
        cmos.read(1, &mut b);
        b[0]
    }

    #[test]
    fn reports_time_in_bcd_without_update_in_progress() {
        let mut cmos = Cmos::with_clock(Box::new(|| 1_709_214_330));
        assert_eq!(reg(&mut cmos, REG_A) & 0x80, 0);
        assert_eq!(reg(&mut cmos, REG_SECONDS), 0x30);
        assert_eq!(reg(&mut cmos, REG_MINUTES), 0x45);
        assert_eq!(reg(&mut cmos, REG_HOURS), 0x13);
        assert_eq!(reg(&mut cmos, REG_DAY), 0x29);
        assert_eq!(reg(&mut cmos, REG_MONTH), 0x02);
        assert_eq!(reg(&mut cmos, REG_YEAR), 0x24);
        assert_eq!(reg(&mut cmos, REG_CENTURY), 0x20);
        assert_eq!(reg(&mut cmos, REG_D), 0x80);
    }

    #[test]
    fn binary_and_12_hour_modes_and_ram() {
        let mut cmos = Cmos::with_clock(Box::new(|| 1_709_214_330));
        cmos.write(0, &[REG_B]);
        cmos.write(1, &[REG_B_BINARY]);
        assert_eq!(reg(&mut cmos, REG_MINUTES), 45);
        assert_eq!(reg(&mut cmos, REG_HOURS), 0x80 | 1);
        cmos.write(0, &[0x40]);
        cmos.write(1, &[0xab]);
        assert_eq!(reg(&mut cmos, 0x40), 0xab);
    }
}
