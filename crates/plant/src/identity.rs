//! Acting as the user whose HOME `plant` works in. Run as root (an MDM, configuration
//! management), `plant` reads and writes the user's files with the user's ids, so the kernel
//! checks every path as it would for the user: a missing `~/.aws` is made the user's, and a
//! `~/.aws` that points where the user may not write gets nothing. Only the state, in its
//! root-only place, is written as root.
//!
//! The effective ids are switched with the saved ids kept at 0, so the way back is open; glibc
//! applies each set*id call to every thread of the process. The real ids stay 0, so the user
//! cannot signal or trace the process meanwhile.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::{
    geteuid, getgrouplist, getgroups, setgroups, setresgid, setresuid, Gid, Uid, User,
};

use super::PlantError;

/// The owner of HOME, when `plant` runs as root for someone else.
#[derive(Clone, Debug)]
pub struct Owner {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    name: String,
}

impl Owner {
    /// The user to act as: HOME's owner, when this process is root and HOME is not root's.
    pub fn of_home(home: &Path) -> Result<Option<Self>, PlantError> {
        if !geteuid().is_root() {
            return Ok(None);
        }
        let meta = std::fs::metadata(home).map_err(|e| PlantError::file(home, "cannot read", e))?;
        let uid = Uid::from_raw(meta.uid());
        if uid.is_root() {
            return Ok(None);
        }
        let unknown = |why: String| {
            PlantError::Usage(format!(
                "HOME ({}) belongs to uid {uid}, {why}; plant runs as that user for the files it writes there",
                home.display()
            ))
        };
        let user = User::from_uid(uid)
            .map_err(|e| unknown(format!("which cannot be looked up ({e})")))?
            .ok_or_else(|| unknown("which has no passwd entry".into()))?;
        let cname = CString::new(user.name.clone())
            .map_err(|_| unknown("whose name has a NUL byte".into()))?;
        let groups = getgrouplist(&cname, user.gid)
            .map_err(|e| unknown(format!("whose groups cannot be read ({e})")))?;
        Ok(Some(Self {
            uid,
            gid: user.gid,
            groups,
            name: user.name,
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` with this user's effective ids and groups, then returns to root.
    pub fn run<T, E: From<Errno>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let saved = getgroups()?;
        let root_u = Uid::from_raw(0);
        let root_g = Gid::from_raw(0);
        let drop = || -> nix::Result<()> {
            setgroups(&self.groups)?;
            setresgid(root_g, self.gid, root_g)?;
            setresuid(root_u, self.uid, root_u)
        };
        if let Err(e) = drop() {
            restore(&saved);
            return Err(e.into());
        }
        let out = f();
        restore(&saved);
        out
    }
}

/// Back to root. Failing here would leave a process that is neither; there is no sane way on.
fn restore(groups: &[Gid]) {
    let root_u = Uid::from_raw(0);
    let root_g = Gid::from_raw(0);
    let back = setresuid(root_u, root_u, root_u)
        .and_then(|()| setresgid(root_g, root_g, root_g))
        .and_then(|()| setgroups(groups));
    if let Err(e) = back {
        eprintln!("cannot return to root after acting as the user: {e}");
        std::process::abort();
    }
}

/// Runs `f` as `owner` when there is one, else as this process is.
pub fn as_user<T, E: From<Errno>>(
    owner: Option<&Owner>,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    match owner {
        Some(o) => o.run(f),
        None => f(),
    }
}
