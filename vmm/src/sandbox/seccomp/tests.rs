// SPDX-License-Identifier: GPL-2.0

//! Each class's filter, entered for real in a child process (this test binary run again
//! for the one test `child`): the class's normal calls go through, and a forbidden one ends
//! the process with [`EXIT_FORBIDDEN_SYSCALL`] and a record that names the thread class and
//! the call.

use super::*;
use std::process::{Command, Output};

/// The child's instructions: `CLASS:PROBE`.
const CHILD_ENV: &str = "HVHOST_SECCOMP_CHILD";

/// What the child does after entering its filter.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// The calls every thread makes (memory, locks, clocks, stderr), then exit 0.
    Normal,
    /// execve: forbidden everywhere.
    Execve,
    /// A terminal ioctl on stdin: forbidden to the classes that may only use KVM's.
    TerminalIoctl,
    /// A KVM ioctl on stdin: allowed (ENOTTY) to the classes that drive KVM.
    KvmIoctl,
    /// openat of a file without O_DIRECTORY.
    OpenFile,
    /// openat of a directory with O_DIRECTORY.
    OpenDirectory,
    /// socket(AF_INET): no class makes network sockets.
    InetSocket,
    /// Spawns a thread that enters the first child class's filter and works normally.
    Spawn,
}

impl Probe {
    const ALL: [Self; 8] = [
        Self::Normal,
        Self::Execve,
        Self::TerminalIoctl,
        Self::KvmIoctl,
        Self::OpenFile,
        Self::OpenDirectory,
        Self::InetSocket,
        Self::Spawn,
    ];

    fn name(self) -> String {
        format!("{self:?}")
    }
}

fn run_child(class: ThreadClass, probe: Probe) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    Command::new(exe)
        .args([
            "sandbox::seccomp::tests::child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}:{}", class.name(), probe.name()))
        .output()
        .expect("run the child")
}

/// Asserts the child ended through the SIGSYS handler, naming `class` and `call`.
fn assert_killed(class: ThreadClass, probe: Probe, call: &str) {
    let out = run_child(class, probe);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(EXIT_FORBIDDEN_SYSCALL),
        "{} {probe:?}: not killed; stderr: {stderr}",
        class.name()
    );
    let want = format!("seccomp thread={} syscall=", class.name());
    let record = stderr
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_else(|| panic!("{} {probe:?}: no record; stderr: {stderr}", class.name()));
    assert!(
        record.ends_with(&format!(" name={call}")),
        "{} {probe:?}: record {record:?} does not name {call}",
        class.name()
    );
}

fn assert_allowed(class: ThreadClass, probe: Probe) {
    let out = run_child(class, probe);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} {probe:?}: the filter stopped it; stderr: {}",
        class.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Without [`init`] nothing is filtered: [`enter`] does nothing (the unit tests and
/// fuzzing harnesses start hvhost's threads so). Run by `run_child`, with `CHILD_ENV`
/// set, this is the child's body instead.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        assert!(!enabled());
        enter(ThreadClass::Vcpu).expect("a no-op");
        // Still unfiltered: a call no filter allows goes through.
        // SAFETY: getppid has no arguments and cannot fail.
        assert!(unsafe { libc::getppid() } > 0);
        return;
    };
    let (class, probe) = spec.split_once(':').expect("CLASS:PROBE");
    let class = *ThreadClass::ALL
        .iter()
        .find(|c| c.name() == class)
        .expect("class");
    let probe = *Probe::ALL
        .iter()
        .find(|p| p.name() == probe)
        .expect("probe");
    init(SeccompMode::On, None).expect("filters");
    enter(class).expect("enter");
    // Normal work: allocation small and large, a lock, the clock, a sleep, stderr.
    let big = vec![1u8; 8 << 20];
    let small: Vec<String> = (0..64).map(|i| i.to_string()).collect();
    let lock = std::sync::Mutex::new(big.len() + small.len());
    let t0 = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(1));
    eprintln!(
        "child {}: {} in {:?}",
        class.name(),
        lock.lock().map(|g| *g).unwrap_or(0),
        t0.elapsed()
    );
    drop(big);
    // SAFETY: each call is made with valid (or deliberately invalid but harmless)
    // arguments; nothing it returns is dereferenced.
    unsafe {
        match probe {
            Probe::Normal => {}
            Probe::Execve => {
                let path = c"/bin/true";
                let argv = [path.as_ptr(), std::ptr::null()];
                libc::execve(path.as_ptr(), argv.as_ptr(), std::ptr::null());
            }
            Probe::TerminalIoctl => {
                let mut t: libc::termios = std::mem::zeroed();
                libc::ioctl(libc::STDIN_FILENO, libc::TCGETS, &mut t);
            }
            Probe::KvmIoctl => {
                // KVM_GET_API_VERSION: ENOTTY on a file that is not /dev/kvm.
                libc::ioctl(libc::STDIN_FILENO, 0xae00);
            }
            Probe::OpenFile => open_outcome(libc::openat(
                libc::AT_FDCWD,
                c"/proc/self/status".as_ptr(),
                libc::O_RDONLY,
            )),
            Probe::OpenDirectory => open_outcome(libc::openat(
                libc::AT_FDCWD,
                c"/proc/self/fd".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )),
            Probe::InetSocket => {
                libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            }
            Probe::Spawn => {
                let child = class.children().first().copied().unwrap_or(class);
                let worker =
                    std::thread::Builder::new()
                        .name(child.name().into())
                        .spawn(move || {
                            enter(child).expect("enter the child's filter");
                            let v = vec![0u8; 1 << 20];
                            eprintln!("{} works: {}", child.name(), v.len());
                        });
                if let Ok(w) = worker {
                    let _ = w.join();
                }
            }
        }
        libc::_exit(0);
    }
}

/// The child's exit status after an open: [`OPENED`], [`REFUSED`] (EACCES) or 1.
const OPENED: i32 = 10;
const REFUSED: i32 = 11;

fn open_outcome(fd: libc::c_int) {
    let status = if fd >= 0 {
        OPENED
    } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES) {
        REFUSED
    } else {
        1
    };
    // SAFETY: _exit ends the child at once.
    unsafe { libc::_exit(status) };
}

fn assert_open(class: ThreadClass, probe: Probe, want: i32) {
    let out = run_child(class, probe);
    assert_eq!(
        out.status.code(),
        Some(want),
        "{} {probe:?}: want {want} (10 opened, 11 EACCES); stderr: {}",
        class.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The classes whose filter has KVM's ioctls.
fn drives_kvm(class: ThreadClass) -> bool {
    matches!(
        class,
        ThreadClass::Vcpu | ThreadClass::Vmbus | ThreadClass::ScsiIo | ThreadClass::Stimer
    )
}

fn check_class(class: ThreadClass) {
    assert_allowed(class, Probe::Normal);
    assert_killed(class, Probe::Execve, "execve");
    assert_killed(class, Probe::InetSocket, "socket");
    if class != ThreadClass::Main {
        assert_killed(class, Probe::TerminalIoctl, "ioctl");
    }
    if drives_kvm(class) {
        assert_allowed(class, Probe::KvmIoctl);
    } else {
        assert_killed(class, Probe::KvmIoctl, "ioctl");
    }
    // Opens fail with EACCES (glibc's malloc copes), but the control thread's (the
    // images of `hvctl disk-add`) and the VMBus thread's directories.
    match class {
        ThreadClass::Api => assert_open(class, Probe::OpenFile, OPENED),
        ThreadClass::Vmbus => {
            assert_open(class, Probe::OpenDirectory, OPENED);
            assert_open(class, Probe::OpenFile, REFUSED);
        }
        _ => {
            assert_open(class, Probe::OpenFile, REFUSED);
            assert_open(class, Probe::OpenDirectory, REFUSED);
        }
    }
}

#[test]
fn main_thread_filter() {
    check_class(ThreadClass::Main);
}

#[test]
fn vcpu_filter() {
    check_class(ThreadClass::Vcpu);
}

#[test]
fn vmbus_filter() {
    check_class(ThreadClass::Vmbus);
}

#[test]
fn scsi_io_filter() {
    check_class(ThreadClass::ScsiIo);
}

#[test]
fn stimer_filter() {
    check_class(ThreadClass::Stimer);
}

#[test]
fn api_filter() {
    check_class(ThreadClass::Api);
}

#[test]
fn vsock_poll_filter() {
    check_class(ThreadClass::VsockPoll);
}

#[test]
fn vsock_listen_filter() {
    check_class(ThreadClass::VsockListen);
}

#[test]
fn vsock_connect_filter() {
    check_class(ThreadClass::VsockConnect);
}

/// The terminal ioctls are the main thread's alone.
#[test]
fn main_may_set_the_terminal() {
    assert_allowed(ThreadClass::Main, Probe::TerminalIoctl);
}

/// A spawning class can start its children, which then enter their own filter on top.
#[test]
fn parents_spawn_their_children() {
    for class in ThreadClass::ALL {
        if class.children().is_empty() {
            // glibc blocks every signal around clone3, so the kernel cannot run the
            // handler: it kills the process with SIGSYS itself (no record; a shell sees
            // the same status, 128 + SIGSYS).
            let out = run_child(class, Probe::Spawn);
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&out.status),
                Some(libc::SIGSYS),
                "{}: spawned a thread: {:?}",
                class.name(),
                out.status
            );
        } else {
            assert_allowed(class, Probe::Spawn);
        }
    }
}

#[test]
fn every_class_compiles_with_and_without_a_user() {
    for class in ThreadClass::ALL {
        assert!(!program(class, None).expect("compiles").is_empty());
        assert!(!program(class, Some((65534, 65534)))
            .expect("compiles")
            .is_empty());
    }
}

#[test]
fn the_record_names_class_and_call() {
    let r = violation_record(2, libc::SYS_execve);
    assert_eq!(
        std::str::from_utf8(&r.buf[..r.len]).expect("utf-8"),
        "seccomp thread=vmbus syscall=59 name=execve\n"
    );
    let r = violation_record(u8::MAX, 100_000);
    assert_eq!(
        std::str::from_utf8(&r.buf[..r.len]).expect("utf-8"),
        "seccomp thread=unknown syscall=100000 name=unknown\n"
    );
}
