// SPDX-License-Identifier: GPL-2.0

//! Per-thread seccomp filters (seccompiler, as Firecracker does).
//!
//! Every hvhost thread belongs to a [`ThreadClass`] and, as its first act, enters that
//! class's filter ([`enter`]). The filter allows the system calls that class's work makes
//! (read off `strace -f` of the whole `make test`: `RIG_L1_APPEND=rig.strace=1`) and traps
//! every other. The trap handler writes one record,
//!
//! ```text
//! seccomp thread=vmbus syscall=59 name=execve
//! ```
//!
//! to stderr and ends the process with [`EXIT_FORBIDDEN_SYSCALL`]: a thread that does what
//! its class never does has been taken over, or hvhost has a bug; either way the VM stops.
//!
//! A filter is inherited by the threads its thread spawns, and filters stack. So a class
//! that spawns threads ([`ThreadClass::children`]) allows what its children need as well as
//! the calls that spawn and sandbox a thread; the child then enters its own, narrower
//! filter.
//!
//! `ioctl` is allowed by request: KVM's (type `0xAE`) to the threads that drive KVM, FIONBIO
//! to those that set sockets non-blocking, the terminal's to the main thread. `prctl` only
//! names a thread or sets no-new-privileges, and the user switch of `--user` only switches
//! to that user. Only the control thread opens files (`hvctl disk-add`); the VMBus thread
//! opens directories only (`hvctl stats` counts `/proc/self/fd`); in every other case
//! `openat` fails with EACCES (a second filter, [`open_refusal`]) rather than trap,
//! because glibc's malloc opens two files of its own, once, from whichever thread needs
//! them first.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// hvhost's exit status after a forbidden system call: 128 + SIGSYS, as if the signal had
/// killed it.
pub const EXIT_FORBIDDEN_SYSCALL: i32 = 128 + libc::SIGSYS;

/// Whether the filters are installed (`--seccomp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SeccompMode {
    /// Every thread runs under its class's filter.
    #[default]
    On,
    /// No filters (for debugging, or a kernel without `CONFIG_SECCOMP_FILTER`).
    Off,
}

/// Why the filters could not be set up or entered.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The kernel has no seccomp filters.
    #[error(
        "the kernel has no seccomp filters (CONFIG_SECCOMP_FILTER): {0}; --seccomp=off runs \
         without them"
    )]
    Unsupported(#[source] std::io::Error),
    /// seccompiler refused a filter (a bug in the lists here).
    #[error("cannot build the seccomp filter of the {class} threads: {source}")]
    Build {
        /// The thread class.
        class: &'static str,
        /// seccompiler's error.
        #[source]
        source: seccompiler::BackendError,
    },
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(#[source] std::io::Error),
    /// The kernel refused a filter.
    #[error("cannot enter the seccomp filter of a {class} thread: {source}")]
    Apply {
        /// The thread class.
        class: &'static str,
        /// seccompiler's error.
        #[source]
        source: seccompiler::Error,
    },
}

/// The kinds of hvhost thread, one filter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadClass {
    /// The main thread, once the VM runs: the event loop (signals, console input), then
    /// stopping the others and writing the exit report.
    Main,
    /// A vCPU: KVM_RUN and the exits it handles (devices, MSRs, hypercalls).
    Vcpu,
    /// The VMBus worker: messages, channels, rings, and the guest's socket connects.
    Vmbus,
    /// A SCSI controller's I/O thread: reads and writes of the disk images.
    ScsiIo,
    /// The synthetic timers.
    Stimer,
    /// The control socket (`--api-socket`).
    Api,
    /// The Hyper-V sockets' readiness watcher (epoll).
    VsockPoll,
    /// The Hyper-V sockets' listener for host programs.
    VsockListen,
    /// One host program's `CONNECT` handshake.
    VsockConnect,
}

impl ThreadClass {
    /// Every class.
    pub const ALL: [Self; 9] = [
        Self::Main,
        Self::Vcpu,
        Self::Vmbus,
        Self::ScsiIo,
        Self::Stimer,
        Self::Api,
        Self::VsockPoll,
        Self::VsockListen,
        Self::VsockConnect,
    ];

    /// The class's name in records (the thread names, vCPUs as one).
    pub fn name(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Vcpu => "vcpu",
            Self::Vmbus => "vmbus",
            Self::ScsiIo => "scsi-io",
            Self::Stimer => "hv-stimer",
            Self::Api => "api",
            Self::VsockPoll => "vsock-poll",
            Self::VsockListen => "vsock-listen",
            Self::VsockConnect => "vsock-connect",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// The classes of the threads this class spawns while it runs under its filter.
    pub fn children(self) -> &'static [Self] {
        match self {
            Self::Vmbus => &[Self::ScsiIo],
            Self::VsockListen => &[Self::VsockConnect],
            _ => &[],
        }
    }

    /// The system calls of this class's own work (not its children's), each with the
    /// argument rule it is allowed under.
    fn calls(self) -> Vec<(i64, Arg)> {
        use libc::*;
        let plain = |calls: &[i64]| calls.iter().map(|c| (*c, Arg::Any)).collect::<Vec<_>>();
        // Every thread: memory (malloc's arenas, a thread's stack and its signal stack at
        // exit), locks, sleeping and clocks (the vDSO falls back to the call for CPU-time
        // clocks), logging to stderr, HashMap's seed, signals (the vCPU kick, glibc's
        // user-switch broadcast), and ending.
        let mut v = plain(&[
            SYS_read,
            SYS_write,
            SYS_writev,
            SYS_close,
            SYS_futex,
            SYS_sched_yield,
            SYS_nanosleep,
            SYS_clock_nanosleep,
            SYS_clock_gettime,
            SYS_gettid,
            SYS_getpid,
            SYS_mmap,
            SYS_munmap,
            SYS_mprotect,
            SYS_madvise,
            SYS_mremap,
            SYS_brk,
            SYS_rt_sigprocmask,
            SYS_rt_sigreturn,
            SYS_sigaltstack,
            SYS_restart_syscall,
            SYS_exit,
            SYS_exit_group,
            SYS_getrandom,
            // glibc's malloc reads /sys/devices/system/cpu/online and
            // /proc/sys/vm/overcommit_memory once, in whichever thread first
            // needs them: the second filter ([`open_refusal`]) makes every open
            // but the class's own fail with EACCES, which glibc copes with
            // (the CPU count then comes from sched_getaffinity, which std's
            // thread start calls too).
            SYS_openat,
            SYS_sched_getaffinity,
        ]);
        // Sockets to host programs (Hyper-V sockets, the control socket, COM2).
        let stream = [
            (SYS_recvfrom, Arg::Any),
            (SYS_sendto, Arg::Any),
            (SYS_recvmsg, Arg::Any),
            (SYS_sendmsg, Arg::Any),
            (SYS_shutdown, Arg::Any),
            (SYS_setsockopt, Arg::Any),
            (SYS_getsockopt, Arg::Any),
            (SYS_fcntl, Arg::Any),
            (SYS_ioctl, Arg::Fionbio),
        ];
        match self {
            Self::Main => {
                v.extend(plain(&[
                    // The event loop's own epoll set.
                    SYS_epoll_create1,
                    SYS_epoll_wait,
                    SYS_epoll_pwait,
                    SYS_epoll_ctl,
                    SYS_tgkill,
                    // Waking the control thread's accept() (api.rs), and removing the
                    // sockets' files.
                    SYS_connect,
                    SYS_unlink,
                    SYS_unlinkat,
                ]));
                v.push((SYS_socket, Arg::Unix));
                v.extend(stream);
                v.push((SYS_ioctl, Arg::Terminal));
            }
            Self::Vcpu => {
                v.push((SYS_ioctl, Arg::Kvm));
                v.extend(plain(&[SYS_pread64, SYS_tgkill]));
                v.extend(stream);
            }
            Self::Vmbus => {
                v.push((SYS_ioctl, Arg::Kvm));
                v.extend(plain(&[
                    SYS_pread64,
                    SYS_connect,
                    SYS_epoll_ctl,
                    SYS_getdents64,
                    // glibc's opendir() checks the directory with fstat, which is
                    // newfstatat(fd, "", AT_EMPTY_PATH).
                    SYS_newfstatat,
                    SYS_fstat,
                ]));
                v.push((SYS_socket, Arg::Unix));
                // `hvctl vsock-fault unsolicited-offer`: a stream pair nobody reads.
                v.push((SYS_socketpair, Arg::Unix));
                v.extend(stream);
            }
            Self::ScsiIo => {
                v.push((SYS_ioctl, Arg::Kvm));
                v.extend(plain(&[
                    SYS_pread64,
                    SYS_pwrite64,
                    SYS_preadv,
                    SYS_pwritev,
                    SYS_preadv2,
                    SYS_pwritev2,
                    SYS_fsync,
                    SYS_fdatasync,
                    SYS_fallocate,
                    SYS_lseek,
                ]));
            }
            Self::Stimer => v.push((SYS_ioctl, Arg::Kvm)),
            Self::Api => {
                v.extend(plain(&[SYS_accept4, SYS_accept]));
                // `hvctl disk-add`: the image is opened, checked and locked here, not
                // on the VMBus thread.
                v.extend(plain(&[
                    SYS_statx,
                    SYS_fstat,
                    SYS_newfstatat,
                    SYS_flock,
                    SYS_lseek,
                ]));
                v.extend(stream);
            }
            Self::VsockPoll => v.extend(plain(&[SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl])),
            Self::VsockListen => v.extend(plain(&[SYS_accept4, SYS_accept])),
            Self::VsockConnect => {
                v.extend(plain(&[SYS_epoll_ctl]));
                v.extend(stream);
            }
        }
        if !self.children().is_empty() {
            // Spawning a thread (glibc tries clone3, then clone), and the new thread's
            // start: naming it and entering its own filter.
            v.extend(plain(&[
                SYS_clone3,
                SYS_clone,
                SYS_set_robust_list,
                SYS_rseq,
                SYS_seccomp,
            ]));
            v.push((SYS_prctl, Arg::Prctl));
        }
        v
    }
}

/// The rule an allowed call's arguments must meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    /// Any arguments.
    Any,
    /// `ioctl` with a KVM request (type 0xAE).
    Kvm,
    /// `ioctl(FIONBIO)`.
    Fionbio,
    /// `ioctl` with a terminal request (TCGETS..TCSETSF: the raw console).
    Terminal,
    /// `prctl(PR_SET_NAME)` and `prctl(PR_SET_NO_NEW_PRIVS)`.
    Prctl,
    /// `socket(AF_UNIX, ...)`.
    Unix,
    /// A `--user` switch to exactly (uid, gid).
    User(u32, u32),
}

impl Arg {
    fn rules(self, call: i64) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
        use SeccompCmpArgLen::{Dword, Qword};
        use SeccompCmpOp::{Eq, MaskedEq};
        let cond = SeccompCondition::new;
        let one = |c| SeccompRule::new(vec![c]);
        Ok(match self {
            Self::Any => Vec::new(),
            Self::Kvm => vec![one(cond(1, Dword, MaskedEq(0xff00), 0xae00)?)?],
            Self::Fionbio => vec![one(cond(1, Dword, Eq, libc::FIONBIO)?)?],
            Self::Terminal => (libc::TCGETS..=libc::TCSETSF)
                .map(|r| one(cond(1, Dword, Eq, r)?))
                .collect::<Result<_, _>>()?,
            Self::Prctl => vec![
                one(cond(0, Dword, Eq, libc::PR_SET_NAME as u64)?)?,
                one(cond(0, Dword, Eq, libc::PR_SET_NO_NEW_PRIVS as u64)?)?,
            ],
            Self::Unix => vec![one(cond(0, Dword, Eq, libc::AF_UNIX as u64)?)?],
            Self::User(uid, gid) => {
                let id = if call == libc::SYS_setgroups {
                    // setgroups(1, [gid]): the count is all a filter can see.
                    return Ok(vec![one(cond(0, Qword, Eq, 1)?)?]);
                } else if call == libc::SYS_setresgid {
                    gid
                } else {
                    uid
                };
                let id = u64::from(id);
                vec![SeccompRule::new(vec![
                    cond(0, Dword, Eq, id)?,
                    cond(1, Dword, Eq, id)?,
                    cond(2, Dword, Eq, id)?,
                ])?]
            }
        })
    }
}

/// The compiled filters: per class, the programs a thread of it enters, in order.
struct Filters {
    programs: Vec<Vec<BpfProgram>>,
}

static FILTERS: OnceLock<Option<Filters>> = OnceLock::new();

thread_local! {
    /// This thread's class, for the SIGSYS record (`u8::MAX`: none yet).
    static CLASS: Cell<u8> = const { Cell::new(u8::MAX) };
}

/// The BPF program of `class`: its own calls and its children's, plus the `--user`
/// switch to `user` (uid, gid) if one is to come while the thread runs.
pub fn program(class: ThreadClass, user: Option<(u32, u32)>) -> Result<BpfProgram, SeccompError> {
    let build = |source| SeccompError::Build {
        class: class.name(),
        source,
    };
    let mut calls = class.calls();
    for child in class.children() {
        calls.extend(child.calls());
    }
    if let Some((uid, gid)) = user {
        for call in [
            libc::SYS_setgroups,
            libc::SYS_setresgid,
            libc::SYS_setresuid,
        ] {
            calls.push((call, Arg::User(uid, gid)));
        }
    }
    // One entry per call: the union of its rules, or no rule (any arguments) if any use
    // allows any.
    let mut map: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
    for (call, arg) in calls {
        let rules = arg.rules(call).map_err(build)?;
        let entry = map.entry(call).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), rules.is_empty()) {
            (_, true) => *entry = None,
            (Some(list), false) => list.extend(rules),
            (None, false) => {}
        }
    }
    let map = map
        .into_iter()
        .map(|(call, rules)| (call, rules.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(build)?;
    filter.try_into().map_err(build)
}

/// The second filter of `class`: `openat` fails with EACCES, except what the class opens
/// itself (any file on the control thread, directories on the VMBus thread); every other
/// call is left to the class's filter. Of two filters' answers the kernel takes the stricter,
/// so an open the first allows comes back EACCES, and anything the first forbids still
/// traps.
pub fn open_refusal(class: ThreadClass) -> Result<Option<BpfProgram>, SeccompError> {
    let build = |source| SeccompError::Build {
        class: class.name(),
        source,
    };
    let rules = match class {
        ThreadClass::Api => return Ok(None),
        ThreadClass::Vmbus => {
            // Not O_DIRECTORY: refused.
            let dir = libc::O_DIRECTORY as u64;
            vec![SeccompRule::new(vec![SeccompCondition::new(
                2,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(dir),
                0,
            )
            .map_err(build)?])
            .map_err(build)?]
        }
        _ => Vec::new(),
    };
    let filter = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_openat, rules)]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        TargetArch::x86_64,
    )
    .map_err(build)?;
    filter.try_into().map(Some).map_err(build)
}

/// Compiles every class's filter and installs the SIGSYS handler, or, with
/// [`SeccompMode::Off`], records that threads run unfiltered. Call once, before the first
/// thread starts. `user` is the (uid, gid) `--user` switches to after some threads
/// started.
pub fn init(mode: SeccompMode, user: Option<(u32, u32)>) -> Result<(), SeccompError> {
    let filters = match mode {
        SeccompMode::Off => None,
        SeccompMode::On => {
            // SAFETY: PR_GET_SECCOMP takes no pointers and changes nothing.
            if unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } < 0 {
                return Err(SeccompError::Unsupported(std::io::Error::last_os_error()));
            }
            let programs = ThreadClass::ALL
                .iter()
                .map(|c| {
                    // The refusal first: the class's filter allows neither prctl nor
                    // seccomp, which entering a second filter takes.
                    let mut list: Vec<BpfProgram> = open_refusal(*c)?.into_iter().collect();
                    list.push(program(*c, user)?);
                    Ok(list)
                })
                .collect::<Result<Vec<_>, SeccompError>>()?;
            install_sigsys_handler()?;
            Some(Filters { programs })
        }
    };
    if FILTERS.set(filters).is_err() {
        log::warn!("seccomp: set up twice; the first setting stays");
    }
    Ok(())
}

/// Puts the calling thread under `class`'s filter, for the rest of its life. Without
/// [`init`], or with [`SeccompMode::Off`], it does nothing.
pub fn enter(class: ThreadClass) -> Result<(), SeccompError> {
    let Some(Some(filters)) = FILTERS.get() else {
        return Ok(());
    };
    CLASS.with(|c| c.set(u8::try_from(class.index()).unwrap_or(u8::MAX)));
    for program in &filters.programs[class.index()] {
        seccompiler::apply_filter(program).map_err(|source| SeccompError::Apply {
            class: class.name(),
            source,
        })?;
    }
    Ok(())
}

/// [`enter`], or, if the kernel refuses, the end of the process: a thread must not go on
/// unfiltered when filters are on.
pub fn enter_or_exit(class: ThreadClass) {
    if let Err(e) = enter(class) {
        log::error!("{e}");
        std::process::exit(1);
    }
}

/// Whether filters are on (after [`init`]).
pub fn enabled() -> bool {
    matches!(FILTERS.get(), Some(Some(_)))
}

/// The names of the system calls the record can name: every allowed one and the usual
/// suspects.
fn syscall_name(nr: i64) -> Option<&'static str> {
    use libc::*;
    const NAMES: &[(i64, &str)] = &[
        (SYS_read, "read"),
        (SYS_write, "write"),
        (SYS_open, "open"),
        (SYS_openat, "openat"),
        (SYS_close, "close"),
        (SYS_stat, "stat"),
        (SYS_fstat, "fstat"),
        (SYS_statx, "statx"),
        (SYS_lseek, "lseek"),
        (SYS_mmap, "mmap"),
        (SYS_mprotect, "mprotect"),
        (SYS_munmap, "munmap"),
        (SYS_brk, "brk"),
        (SYS_ioctl, "ioctl"),
        (SYS_pread64, "pread64"),
        (SYS_pwrite64, "pwrite64"),
        (SYS_readv, "readv"),
        (SYS_writev, "writev"),
        (SYS_pipe2, "pipe2"),
        (SYS_mremap, "mremap"),
        (SYS_madvise, "madvise"),
        (SYS_dup, "dup"),
        (SYS_dup2, "dup2"),
        (SYS_dup3, "dup3"),
        (SYS_nanosleep, "nanosleep"),
        (SYS_getpid, "getpid"),
        (SYS_socket, "socket"),
        (SYS_connect, "connect"),
        (SYS_socketpair, "socketpair"),
        (SYS_accept, "accept"),
        (SYS_accept4, "accept4"),
        (SYS_sendto, "sendto"),
        (SYS_recvfrom, "recvfrom"),
        (SYS_sendmsg, "sendmsg"),
        (SYS_recvmsg, "recvmsg"),
        (SYS_shutdown, "shutdown"),
        (SYS_bind, "bind"),
        (SYS_listen, "listen"),
        (SYS_setsockopt, "setsockopt"),
        (SYS_getsockopt, "getsockopt"),
        (SYS_clone, "clone"),
        (SYS_clone3, "clone3"),
        (SYS_fork, "fork"),
        (SYS_vfork, "vfork"),
        (SYS_execve, "execve"),
        (SYS_execveat, "execveat"),
        (SYS_exit, "exit"),
        (SYS_exit_group, "exit_group"),
        (SYS_kill, "kill"),
        (SYS_tgkill, "tgkill"),
        (SYS_fcntl, "fcntl"),
        (SYS_fsync, "fsync"),
        (SYS_fdatasync, "fdatasync"),
        (SYS_fallocate, "fallocate"),
        (SYS_getdents64, "getdents64"),
        (SYS_flock, "flock"),
        (SYS_newfstatat, "newfstatat"),
        (SYS_unlink, "unlink"),
        (SYS_unlinkat, "unlinkat"),
        (SYS_mkdir, "mkdir"),
        (SYS_chmod, "chmod"),
        (SYS_chown, "chown"),
        (SYS_ptrace, "ptrace"),
        (SYS_prctl, "prctl"),
        (SYS_seccomp, "seccomp"),
        (SYS_setuid, "setuid"),
        (SYS_setgid, "setgid"),
        (SYS_setresuid, "setresuid"),
        (SYS_setresgid, "setresgid"),
        (SYS_setgroups, "setgroups"),
        (SYS_mount, "mount"),
        (SYS_futex, "futex"),
        (SYS_epoll_wait, "epoll_wait"),
        (SYS_epoll_pwait, "epoll_pwait"),
        (SYS_epoll_ctl, "epoll_ctl"),
        (SYS_epoll_create1, "epoll_create1"),
        (SYS_eventfd2, "eventfd2"),
        (SYS_poll, "poll"),
        (SYS_ppoll, "ppoll"),
        (SYS_clock_gettime, "clock_gettime"),
        (SYS_clock_nanosleep, "clock_nanosleep"),
        (SYS_rt_sigaction, "rt_sigaction"),
        (SYS_rt_sigprocmask, "rt_sigprocmask"),
        (SYS_sigaltstack, "sigaltstack"),
        (SYS_getrandom, "getrandom"),
        (SYS_memfd_create, "memfd_create"),
        (SYS_preadv2, "preadv2"),
        (SYS_pwritev2, "pwritev2"),
        (SYS_process_vm_readv, "process_vm_readv"),
        (SYS_process_vm_writev, "process_vm_writev"),
    ];
    NAMES.iter().find(|(n, _)| *n == nr).map(|(_, s)| *s)
}

/// The kernel's `siginfo_t` for SIGSYS (`_sigsys` in the union), which the libc crate
/// does not spell out.
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: *mut libc::c_void,
    syscall: i32,
    arch: u32,
}

/// A fixed buffer the SIGSYS handler formats into: no allocation in a signal handler.
struct Record {
    buf: [u8; 128],
    len: usize,
}

impl Record {
    fn push(&mut self, s: &[u8]) {
        for b in s {
            if self.len < self.buf.len() {
                self.buf[self.len] = *b;
                self.len += 1;
            }
        }
    }

    fn push_number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// The record for a forbidden call `nr` by a thread of class index `class`.
fn violation_record(class: u8, nr: i64) -> Record {
    let mut r = Record {
        buf: [0; 128],
        len: 0,
    };
    r.push(b"seccomp thread=");
    r.push(
        ThreadClass::ALL
            .get(usize::from(class))
            .map_or("unknown", |c| c.name())
            .as_bytes(),
    );
    r.push(b" syscall=");
    r.push_number(u64::try_from(nr).unwrap_or(u64::MAX));
    r.push(b" name=");
    r.push(syscall_name(nr).unwrap_or("unknown").as_bytes());
    r.push(b"\n");
    r
}

extern "C" fn handle_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SIGSYS, whose layout from offset 0
    // is `SigsysInfo` (include/uapi/asm-generic/siginfo.h, `_sigsys`).
    let nr = unsafe { (*info.cast::<SigsysInfo>()).syscall };
    // A const thread-local without destructor: a plain TLS read, safe in a handler.
    let class = CLASS.with(Cell::get);
    let r = violation_record(class, i64::from(nr));
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer lives on this stack.
    unsafe {
        libc::write(libc::STDERR_FILENO, r.buf.as_ptr().cast(), r.len);
        libc::_exit(EXIT_FORBIDDEN_SYSCALL);
    }
}

fn install_sigsys_handler() -> Result<(), SeccompError> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is
    // an extern "C" fn with the SA_SIGINFO signature, and lives for the whole program.
    let rc = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            handle_sigsys;
        act.sa_sigaction = handler as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(SeccompError::Handler(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
