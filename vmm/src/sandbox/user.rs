// SPDX-License-Identifier: GPL-2.0

//! `--user`: run the guest as an unprivileged user.
//!
//! hvhost starts as root (it must, for `--user`), opens `/dev/kvm`, the images, the output
//! files and the sockets, and then, before any vCPU runs, becomes the user: supplementary
//! groups, then the group, then the user, each real, effective and saved. glibc applies
//! each change to every thread. It then checks that root cannot be taken back, and
//! refuses to go on if it can.
//!
//! What the user needs afterwards: to connect to the host programs' sockets of `--vsock`
//! (`PATH_N`), and nothing else; the files are already open. The sockets hvhost created
//! stay root's: it cannot remove them at exit (a warning), and the host programs that
//! connect to them must be allowed to (root can).

use std::ffi::CString;

/// Why `--user` cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The user is not in the password database (and not numeric).
    #[error("--user {0}: no such user")]
    Unknown(String),
    /// The value is not a name or `UID[:GID]`.
    #[error("--user {0}: expected a user name, UID or UID:GID")]
    Malformed(String),
    /// root is not a user to drop to.
    #[error("--user {0}: that is root; --user names the unprivileged user to run as")]
    Root(String),
    /// hvhost is not root, so it cannot become someone else.
    #[error("--user needs hvhost to start as root (it is uid {0})")]
    NotRoot(u32),
    /// A set*id call failed.
    #[error("cannot become {user} ({what}): {source}")]
    Switch {
        /// The `--user` value.
        user: String,
        /// Which call.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// root could be taken back after the switch.
    #[error("--user {0}: root could be taken back after the switch; refusing to run")]
    Regained(String),
}

/// A user to run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The `--user` value, for messages.
    pub spec: String,
    /// User ID.
    pub uid: u32,
    /// Group ID.
    pub gid: u32,
}

/// The password database's (uid, gid) for `name`, or for the numeric `uid`.
fn lookup(name: Option<&CString>, uid: u32) -> Option<(u32, u32)> {
    // SAFETY: a zeroed passwd is a valid out-value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the right type; buf.len() is its size.
    let rc = unsafe {
        match name {
            Some(n) => libc::getpwnam_r(
                n.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            ),
            None => libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result),
        }
    };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

impl User {
    /// Resolves `--user`: a name from the password database, a numeric UID (its group
    /// from the database, or the same number), or `UID:GID`.
    pub fn resolve(spec: &str) -> Result<Self, UserError> {
        let malformed = || UserError::Malformed(spec.to_string());
        let number = |s: &str| s.parse::<u32>().map_err(|_| malformed());
        let (uid, gid) = if let Some((u, g)) = spec.split_once(':') {
            (number(u)?, number(g)?)
        } else if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
            let uid = number(spec)?;
            lookup(None, uid).unwrap_or((uid, uid))
        } else {
            let name = CString::new(spec).map_err(|_| malformed())?;
            if spec.is_empty() {
                return Err(malformed());
            }
            lookup(Some(&name), 0).ok_or_else(|| UserError::Unknown(spec.to_string()))?
        };
        if uid == 0 {
            return Err(UserError::Root(spec.to_string()));
        }
        Ok(Self {
            spec: spec.to_string(),
            uid,
            gid,
        })
    }

    /// Refuses unless hvhost runs as root: call before opening anything.
    pub fn check_root() -> Result<(), UserError> {
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            Ok(())
        } else {
            Err(UserError::NotRoot(euid))
        }
    }

    /// Becomes this user, in every thread, for good.
    pub fn switch(&self) -> Result<(), UserError> {
        let fail = |what| {
            let source = std::io::Error::last_os_error();
            UserError::Switch {
                user: self.spec.clone(),
                what,
                source,
            }
        };
        let groups = [self.gid];
        // SAFETY: groups is a live array of one gid_t.
        if unsafe { libc::setgroups(1, groups.as_ptr()) } != 0 {
            return Err(fail("setgroups"));
        }
        // SAFETY: plain integer arguments.
        if unsafe { libc::setresgid(self.gid, self.gid, self.gid) } != 0 {
            return Err(fail("setresgid"));
        }
        // SAFETY: plain integer arguments.
        if unsafe { libc::setresuid(self.uid, self.uid, self.uid) } != 0 {
            return Err(fail("setresuid"));
        }
        // Taking root back must fail. The raw call tries in this thread only: glibc's
        // setuid() would try it in every thread, whose filters allow only the switch.
        // SAFETY: plain integer arguments.
        let back = unsafe { libc::syscall(libc::SYS_setresuid, 0, 0, 0) };
        // SAFETY: as above.
        let back_gid = unsafe { libc::syscall(libc::SYS_setresgid, 0, 0, 0) };
        if back == 0 || back_gid == 0 {
            return Err(UserError::Regained(self.spec.clone()));
        }
        log::info!(
            "running as user {} (uid {}, gid {})",
            self.spec,
            self.uid,
            self.gid
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_forms() {
        let u = User::resolve("65534:65533").expect("uid:gid");
        assert_eq!((u.uid, u.gid), (65534, 65533));
        let u = User::resolve("4242").expect("uid");
        assert_eq!(u.uid, 4242);
    }

    #[test]
    fn refusals() {
        assert!(matches!(User::resolve("0"), Err(UserError::Root(_))));
        assert!(matches!(User::resolve("0:0"), Err(UserError::Root(_))));
        assert!(matches!(User::resolve("root"), Err(UserError::Root(_))));
        assert!(matches!(User::resolve(""), Err(UserError::Malformed(_))));
        assert!(matches!(User::resolve("1:x"), Err(UserError::Malformed(_))));
        assert!(matches!(
            User::resolve("no-such-user-hvhost"),
            Err(UserError::Unknown(_))
        ));
    }
}
