// SPDX-License-Identifier: GPL-2.0

//! The command line, and the VM configuration it turns into.
//!
//! clap checks ranges and formats here, so that the builder receives a [`VmConfig`] that is
//! valid apart from what only the files and the host can tell (does the kernel exist, is
//! it a kernel, does KVM allow that many vCPUs).

use crate::storage::DiskSpec;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use vmbus::version::Version;

use crate::memory::{MAX_MEMORY_MIB, MIN_MEMORY_MIB};
use crate::sandbox::seccomp::SeccompMode;

/// The default kernel command line. `pci=off` until PCI configuration space is emulated;
/// `reboot=k` makes a guest reboot reach the 8042 reset line; `panic=-1` reboots at once on
/// a panic so that a failing guest ends the VM; `no_timer_check` skips Linux's boot-time
/// test that the PIT reaches the IOAPIC, which KVM's in-kernel PIT always does and which
/// fails spuriously when the host is slow (nested, emulated): KVM guests set it themselves
/// from kvmclock, but hvhost hides KVM's leaves.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off no_timer_check";

/// Most vCPUs hvhost accepts.
pub const MAX_VCPUS: u8 = 32;

/// Where COM1 output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialTarget {
    /// hvhost's stdout (and input from stdin when it is a terminal).
    Stdio,
    /// A file, created or truncated; no input.
    File(PathBuf),
}

/// `--vmbus-fault` values: deliberate VMBus protocol violations, for testing
/// a guest's defences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VmbusFault {
    /// Send one OFFERCHANNEL shorter than the protocol's minimum.
    MalformedOffer,
    /// Answer the first GPADL with a GPADL_CREATED for a handle never sent.
    BogusGpadlReply,
    /// Corrupt the write index of the first opened channel's guest ring.
    CorruptRing,
}

/// `--log-level` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also lifecycle messages and the exit summary.
    Info,
    /// Also device and setup details.
    Debug,
    /// Also every unclaimed port or MMIO access.
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

fn parse_serial(s: &str) -> Result<SerialTarget, String> {
    match s {
        "stdio" => Ok(SerialTarget::Stdio),
        _ => match s.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(SerialTarget::File(PathBuf::from(path))),
            Some(_) => Err("file: needs a path, as in file:/tmp/serial.log".to_string()),
            None => Err(format!("expected stdio or file:PATH, got {s:?}")),
        },
    }
}

fn parse_serial2(s: &str) -> Result<PathBuf, String> {
    match s.strip_prefix("unix:") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(format!("expected unix:PATH, got {s:?}")),
    }
}

/// `--vmbus-versions`: a comma-separated list of versions (`5.3`, `0x50003`)
/// and inclusive ranges (`4.0..5.2`), each within 4.0..6.0; sorted, no
/// duplicates.
fn parse_vmbus_versions(s: &str) -> Result<VmbusVersions, String> {
    let served = Version::SERVED;
    let one = |t: &str| -> Result<Version, String> {
        let v =
            Version::parse(t.trim()).ok_or_else(|| format!("{t:?} is not a version like 5.3"))?;
        if served.contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "hvhost serves VMBus {} to {}, not {v}",
                served[0],
                served[served.len() - 1]
            ))
        }
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once("..") {
            Some((lo, hi)) => {
                let (lo, hi) = (one(lo)?, one(hi)?);
                if lo > hi {
                    return Err(format!("empty range {lo}..{hi}"));
                }
                out.extend(served.iter().copied().filter(|v| (lo..=hi).contains(v)));
            }
            None => out.push(one(part)?),
        }
    }
    out.sort();
    out.dedup();
    Ok(VmbusVersions(out))
}

/// The VMBus versions hvhost accepts (`--vmbus-versions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmbusVersions(pub Vec<Version>);

impl Default for VmbusVersions {
    fn default() -> Self {
        Self(Version::SERVED.to_vec())
    }
}

impl std::fmt::Display for VmbusVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            write!(f, "{}{v}", if i == 0 { "" } else { "," })?;
        }
        Ok(())
    }
}

fn parse_debug_console(s: &str) -> Result<PathBuf, String> {
    match s.strip_prefix("file:") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        Some(_) => Err("file: needs a path, as in file:/tmp/debugcon.log".to_string()),
        None => Err(format!("expected file:PATH, got {s:?}")),
    }
}

/// hvhost boots a 64-bit Linux kernel on KVM with an in-kernel irqchip, ACPI tables, a
/// 16550 serial console and an optional debug console on port 0xe9. It exits 0 when the
/// guest powers off (ACPI S5) or resets, and non-zero when the guest or the host fails.
#[derive(Debug, Parser)]
#[command(name = "hvhost", version)]
pub struct Cli {
    /// Guest kernel: a bzImage (64-bit boot protocol), or an ELF vmlinux.
    #[arg(long, value_name = "PATH")]
    pub kernel: PathBuf,

    /// Initramfs to load high in guest RAM and pass to the kernel.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,

    /// Kernel command line (printable ASCII, at most 2047 bytes).
    #[arg(long, value_name = "STR", default_value = DEFAULT_CMDLINE)]
    pub cmdline: String,

    /// Number of vCPUs (1 to 32); each is one core of a single package.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_VCPUS)))]
    pub cpus: u8,

    /// Guest RAM in MiB (32 to 16384); RAM beyond 3 GiB is placed above 4 GiB.
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(MIN_MEMORY_MIB..=MAX_MEMORY_MIB))]
    pub memory: u64,

    /// Where COM1 (ttyS0) goes: "stdio" (output to stdout, input from stdin if it is a
    /// terminal) or "file:PATH" (output to PATH, created or truncated).
    #[arg(long, value_name = "stdio|file:PATH", default_value = "stdio",
          value_parser = parse_serial)]
    pub serial: SerialTarget,

    /// Append every byte the guest writes to I/O port 0xe9 to PATH ("file:PATH").
    #[arg(long, value_name = "file:PATH", value_parser = parse_debug_console)]
    pub debug_console: Option<PathBuf>,

    /// Hide XSAVE and everything that depends on it (AVX and later) from the guest. For
    /// nested setups whose outer hypervisor does not intercept XSETBV (QEMU TCG, as in this
    /// project's test rig), where the guest would see a wrong XSAVE size.
    #[arg(long)]
    pub no_xsave: bool,

    /// Add the Hyper-V test device (QEMU's hyperv-testdev protocol on port 0x3000): the
    /// guest creates SINT routes and message/event connections that echo back. Off by
    /// default; for guest tests only.
    #[arg(long)]
    pub test_device: bool,

    /// No VMBus: no VMBUS ACPI device, no message connections, no devices.
    #[arg(long)]
    pub no_vmbus: bool,

    /// Ask the guest to shut down (VMBus shutdown integration service) SECS seconds after
    /// boot. A guest that has not opened the shutdown channel yet is asked once it does.
    /// SIGTERM or SIGINT asks the same way when the channel is open (a second signal stops
    /// the VM at once).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub shutdown_after: Option<u64>,

    /// VMBus versions to accept: a comma-separated list of versions and inclusive ranges,
    /// e.g. 5.3 or 4.0..5.2 or 4.0,6.0. A guest proposes versions newest first and gets
    /// the first one in this set. Default: every version from 4.0 to 6.0.
    #[arg(long, value_name = "LIST", value_parser = parse_vmbus_versions, default_value = "4.0..6.0")]
    pub vmbus_versions: VmbusVersions,

    /// Offer channels without a dedicated interrupt to a guest that connects below VMBus
    /// 5.0: it signals them all on event connection 2 and names the channel by its bit in
    /// the interrupt page it named at connection (what Hyper-V hosts of that era could
    /// do). For testing guests.
    #[arg(long)]
    pub vmbus_shared_interrupts: bool,

    /// Break the VMBus protocol on purpose (repeatable): malformed-offer, bogus-gpadl-reply,
    /// corrupt-ring. For testing guests only.
    #[arg(long, value_name = "KIND", value_enum)]
    pub vmbus_fault: Vec<VmbusFault>,

    /// Serve a control socket at PATH (a Unix stream socket hvhost creates and removes):
    /// one request per connection, e.g. "devices", "remove heartbeat", "add heartbeat",
    /// "shutdown", "stats". `hvctl PATH REQUEST` is the client.
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,
    /// At exit, write a report to PATH for scripts: one record per line, `key=value` fields
    /// ("vcpu index=0 ...", "vmbus ...", "channel relid=1 ...", "hyperv ...", "exit status=0
    /// clean=1 errors=0 warnings=0").
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Also offer the VMBus benchmark sink (class 8f3f6b2e-0457-449d-95ee-b14c60dc90c7):
    /// counts and drops the guest's packets, answers completion requests with its counters.
    #[arg(long)]
    pub vmbus_perf: bool,
    /// A disk on the VMBus SCSI controller (class ba6163d9-04a1-4d29-b605-72e2ffb1dc7f):
    /// a raw image file or block device, locked against a second writer; `readonly` makes it
    /// write-protected, `lun=N` (0..7) places it, else the next free LUN. Repeatable.
    #[arg(long, value_name = "PATH[,readonly][,lun=N]")]
    pub disk: Vec<DiskSpec>,
    /// A second 16550 UART (COM2: ports 0x2f8, IRQ 3) joined to the Unix socket PATH, which a
    /// host program listens on before hvhost starts: what the guest writes to ttyS1 goes to
    /// it, what it writes is the guest's input (the emulated stream of bench_stream).
    #[arg(long, value_name = "unix:PATH", value_parser = parse_serial2)]
    pub serial2: Option<PathBuf>,
    /// Hyper-V sockets, relayed to Unix sockets as Firecracker and Cloud Hypervisor do: a guest
    /// program's connection to port N goes to PATH_N; a host program connects to PATH, writes
    /// "CONNECT N\n" and reads "OK <host-port>\n" once the guest program listening on N accepted.
    #[arg(long, value_name = "PATH")]
    pub vsock: Option<PathBuf>,
    /// Most Hyper-V socket connections at once (both ways); more are refused.
    #[arg(long, value_name = "N", default_value_t = crate::vsock::service::DEFAULT_MAX_CONNS,
          value_parser = clap::value_parser!(usize))]
    pub vsock_max_conns: usize,

    /// Per-thread seccomp filters: each thread may make only the system calls its work
    /// needs; any other ends hvhost (exit status 159) with a "seccomp thread=... syscall=..."
    /// record on stderr. "off" is for debugging, or for a kernel without seccomp.
    #[arg(long, value_name = "on|off", value_enum, default_value_t = SeccompMode::On)]
    pub seccomp: SeccompMode,
    /// Run the guest as this user (a name, UID or UID:GID): hvhost must start as root; it
    /// opens /dev/kvm, the images, the files and the sockets, then drops to the user before
    /// the vCPUs start, and refuses to run if root could be taken back.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Logging verbosity on stderr.
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

/// What the builder needs to create a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Kernel image path.
    pub kernel: PathBuf,
    /// Initramfs path.
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: String,
    /// vCPU count, 1..=MAX_VCPUS.
    pub vcpus: u8,
    /// RAM size in MiB.
    pub memory_mib: u64,
    /// COM1 destination.
    pub serial: SerialTarget,
    /// Debug console output file.
    pub debug_console: Option<PathBuf>,
    /// Hide XSAVE and its dependents from the guest.
    pub no_xsave: bool,
    /// Add the Hyper-V test device.
    pub test_device: bool,
    /// Serve VMBus.
    pub vmbus: bool,
    /// Seconds after boot to ask the guest to shut down.
    pub shutdown_after: Option<u64>,
    /// VMBus versions accepted.
    pub vmbus_versions: VmbusVersions,
    /// Offer channels without a dedicated interrupt below 5.0.
    pub vmbus_shared_interrupts: bool,
    /// VMBus fault injection.
    pub vmbus_faults: Vec<VmbusFault>,
    /// Control socket path.
    pub api_socket: Option<PathBuf>,
    /// Where the exit report goes.
    pub report: Option<PathBuf>,
    /// Offer the VMBus benchmark sink.
    pub vmbus_perf: bool,
    /// Disks on the SCSI controller.
    pub disks: Vec<DiskSpec>,
    /// Hyper-V sockets.
    pub vsock: Option<crate::vsock::service::VsockConfig>,
    /// COM2's Unix socket.
    pub serial2: Option<PathBuf>,
    /// Per-thread seccomp filters.
    pub seccomp: SeccompMode,
    /// The user to run the guest as.
    pub user: Option<String>,
}

impl Cli {
    /// The VM configuration described by these arguments.
    pub fn vm_config(&self) -> VmConfig {
        VmConfig {
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            cmdline: self.cmdline.clone(),
            vcpus: self.cpus,
            memory_mib: self.memory,
            serial: self.serial.clone(),
            debug_console: self.debug_console.clone(),
            no_xsave: self.no_xsave,
            test_device: self.test_device,
            vmbus: !self.no_vmbus,
            shutdown_after: self.shutdown_after,
            vmbus_versions: self.vmbus_versions.clone(),
            vmbus_shared_interrupts: self.vmbus_shared_interrupts,
            vmbus_faults: self.vmbus_fault.clone(),
            api_socket: self.api_socket.clone(),
            report: self.report.clone(),
            vmbus_perf: self.vmbus_perf,
            disks: self.disk.clone(),
            serial2: self.serial2.clone(),
            seccomp: self.seccomp,
            user: self.user.clone(),
            vsock: self
                .vsock
                .as_ref()
                .map(|path| crate::vsock::service::VsockConfig {
                    path: path.clone(),
                    max_conns: self.vsock_max_conns,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hvhost").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = parse(&["--kernel", "/k"]).expect("valid");
        let c = cli.vm_config();
        assert_eq!(c.kernel, PathBuf::from("/k"));
        assert_eq!(c.initrd, None);
        assert_eq!(
            c.cmdline,
            "console=ttyS0 reboot=k panic=-1 pci=off no_timer_check"
        );
        assert!(!c.no_xsave);
        assert!(!c.test_device);
        assert_eq!(c.vcpus, 1);
        assert_eq!(c.memory_mib, 256);
        assert_eq!(c.serial, SerialTarget::Stdio);
        assert_eq!(c.debug_console, None);
        assert_eq!(cli.log_level, LogLevel::Info);
        assert!(c.vmbus);
        assert_eq!(c.shutdown_after, None);
        assert!(c.vmbus_faults.is_empty());
        assert!(!c.vmbus_perf);
    }

    #[test]
    fn vmbus_versions() {
        let versions = |arg: &str| {
            parse(&["--kernel", "/k", "--vmbus-versions", arg])
                .expect("valid")
                .vm_config()
                .vmbus_versions
                .0
        };
        let c = parse(&["--kernel", "/k"]).expect("valid").vm_config();
        assert_eq!(c.vmbus_versions.0, Version::SERVED.to_vec());
        assert_eq!(c.vmbus_versions.to_string(), "4.0,4.1,5.0,5.1,5.2,5.3,6.0");
        assert_eq!(versions("5.3"), vec![Version::V5_3]);
        assert_eq!(versions("0x40000"), vec![Version::WIN10]);
        assert_eq!(
            versions("6.0,4.0..4.1,4.1"),
            vec![Version::WIN10, Version::V4_1, Version::V6_0]
        );
        assert_eq!(
            versions("5.0..5.2"),
            vec![Version::V5_0, Version::V5_1, Version::V5_2]
        );
    }

    #[test]
    fn vmbus_options() {
        let c = parse(&[
            "--kernel",
            "/k",
            "--shutdown-after",
            "30",
            "--vmbus-fault",
            "corrupt-ring",
            "--vmbus-fault",
            "malformed-offer",
        ])
        .expect("valid")
        .vm_config();
        assert!(c.vmbus);
        assert!(!c.vmbus_perf);
        assert_eq!(c.shutdown_after, Some(30));
        assert_eq!(
            c.vmbus_faults,
            vec![VmbusFault::CorruptRing, VmbusFault::MalformedOffer]
        );
        assert!(
            !parse(&["--kernel", "/k", "--no-vmbus"])
                .expect("valid")
                .vm_config()
                .vmbus
        );
        assert!(
            parse(&["--kernel", "/k", "--vmbus-perf"])
                .expect("valid")
                .vm_config()
                .vmbus_perf
        );
        let disks = parse(&[
            "--kernel",
            "/k",
            "--disk",
            "/a.img",
            "--disk",
            "/b.img,readonly,lun=3",
        ])
        .expect("valid")
        .vm_config()
        .disks;
        assert_eq!(disks.len(), 2);
        assert_eq!((disks[1].read_only, disks[1].lun), (true, Some(3)));
        assert!(parse(&["--kernel", "/k", "--disk", "/a.img,lun=9"]).is_err());
        let c = parse(&[
            "--kernel",
            "/k",
            "--serial2",
            "unix:/tmp/com2",
            "--vsock",
            "/tmp/v",
        ])
        .expect("valid")
        .vm_config();
        assert_eq!(c.serial2, Some(PathBuf::from("/tmp/com2")));
        let v = c.vsock.expect("vsock");
        assert_eq!((v.path, v.max_conns), (PathBuf::from("/tmp/v"), 256));
        assert!(parse(&["--kernel", "/k", "--serial2", "/tmp/com2"]).is_err());
        assert!(parse(&["--kernel", "/k", "--vsock", "/v", "--vsock-max-conns", "x"]).is_err());
        assert!(parse(&["--kernel", "/k", "--shutdown-after", "0"]).is_err());
        assert!(parse(&["--kernel", "/k", "--vmbus-fault", "nope"]).is_err());
    }

    #[test]
    fn every_option() {
        let cli = parse(&[
            "--kernel",
            "/boot/bzImage",
            "--initrd",
            "/i.cpio",
            "--cmdline",
            "console=ttyS0 quiet",
            "--cpus",
            "8",
            "--memory",
            "1024",
            "--serial",
            "file:/tmp/s.log",
            "--debug-console",
            "file:/tmp/d.log",
            "--log-level",
            "trace",
        ])
        .expect("valid");
        let c = cli.vm_config();
        assert_eq!(c.initrd, Some(PathBuf::from("/i.cpio")));
        assert_eq!(c.cmdline, "console=ttyS0 quiet");
        assert_eq!(c.vcpus, 8);
        assert_eq!(c.memory_mib, 1024);
        assert_eq!(c.serial, SerialTarget::File(PathBuf::from("/tmp/s.log")));
        assert_eq!(c.debug_console, Some(PathBuf::from("/tmp/d.log")));
        assert_eq!(cli.log_level, LogLevel::Trace);
        assert_eq!(
            log::LevelFilter::from(cli.log_level),
            log::LevelFilter::Trace
        );
    }

    #[test]
    fn rejections() {
        let bad: &[&[&str]] = &[
            &[], // no kernel
            &["--kernel", "/k", "--cpus", "0"],
            &["--kernel", "/k", "--cpus", "33"],
            &["--kernel", "/k", "--cpus", "two"],
            &["--kernel", "/k", "--memory", "31"],
            &["--kernel", "/k", "--memory", "16385"],
            &["--kernel", "/k", "--memory", "-1"],
            &["--kernel", "/k", "--serial", "tcp:1234"],
            &["--kernel", "/k", "--serial", "file:"],
            &["--kernel", "/k", "--debug-console", "/tmp/x"],
            &["--kernel", "/k", "--debug-console", "file:"],
            &["--kernel", "/k", "--log-level", "loud"],
            &["--kernel", "/k", "--bogus"],
            &["--kernel", "/k", "--vmbus-versions", "3.0"],
            &["--kernel", "/k", "--vmbus-versions", "7.0"],
            &["--kernel", "/k", "--vmbus-versions", "5.2..4.0"],
            &["--kernel", "/k", "--vmbus-versions", "5"],
            &["--kernel", "/k", "--vmbus-versions", ""],
            &["--kernel", "/k", "--vmbus-versions", "4.0,"],
        ];
        for args in bad {
            let err = parse(args).expect_err(&format!("{args:?} must be rejected"));
            assert_ne!(err.exit_code(), 0, "{args:?}");
        }
    }

    #[test]
    fn accepted_bounds() {
        assert_eq!(
            parse(&["--kernel", "/k", "--cpus", "32"]).expect("ok").cpus,
            32
        );
        assert_eq!(
            parse(&["--kernel", "/k", "--memory", "32"])
                .expect("ok")
                .memory,
            32
        );
        assert_eq!(
            parse(&["--kernel", "/k", "--serial", "stdio"])
                .expect("ok")
                .serial,
            SerialTarget::Stdio
        );
    }

    #[test]
    fn help_describes_every_option() {
        let help = Cli::command().render_long_help().to_string();
        for opt in [
            "--kernel",
            "--initrd",
            "--cmdline",
            "--cpus",
            "--memory",
            "--serial",
            "--debug-console",
            "--log-level",
            "--no-vmbus",
            "--shutdown-after",
            "--vmbus-fault",
            "--api-socket",
            "--report",
            "--vmbus-perf",
            "--help",
        ] {
            assert!(help.contains(opt), "{opt} missing from --help:\n{help}");
        }
    }
}
