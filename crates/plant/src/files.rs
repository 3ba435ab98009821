//! Writing planted files all-or-nothing: each file is written to a temporary file in its own
//! directory, synced and renamed over the old one, and a failed write puts back every file
//! written before it. The bytes go through a [`Disk`], so tests can make the disk fill up.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::identity::{as_user, Owner};
use super::PlantError;

/// Where file contents are written. [`RealDisk`] writes them; a test's disk may fail.
pub trait Disk: Send + Sync {
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()>;
}

pub struct RealDisk;

impl Disk for RealDisk {
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }
}

/// One file's change: from `before` (absent: the file did not exist) to `after` (absent: the
/// file goes away).
#[derive(Clone, Debug)]
pub struct Edit {
    pub path: PathBuf,
    /// One of the user's files (written as the user when root plants for someone else), not
    /// the state.
    pub user: bool,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
}

/// The file's bytes, or `None` if there is no file.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, PlantError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PlantError::file(path, "cannot read", e)),
    }
}

/// Refuses a file we could not replace, before anything is created on the server. A file
/// without write permission is refused even for root: whoever made it read-only meant it.
pub fn check_writable(path: &Path) -> Result<(), PlantError> {
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_file() {
            return Err(PlantError::NotWritable(
                path.into(),
                "not a regular file".into(),
            ));
        }
        if meta.permissions().mode() & 0o222 == 0 {
            let why = format!("read-only (mode {:o})", meta.permissions().mode() & 0o777);
            return Err(PlantError::NotWritable(path.into(), why));
        }
        OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| PlantError::NotWritable(path.into(), e.to_string()))?;
    }
    // The rename needs the directory (or, if it is missing, its nearest existing parent); a
    // link is written through, so its target's directory.
    let real =
        through_links(path).map_err(|e| PlantError::NotWritable(path.into(), e.to_string()))?;
    let mut dir = parent(&real);
    while !dir.exists() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p.to_path_buf(),
            _ => break,
        }
    }
    tempfile::Builder::new()
        .prefix(".")
        .tempfile_in(&dir)
        .map(drop)
        .map_err(|e| PlantError::NotWritable(path.into(), e.to_string()))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates the missing directories above `path` (mode 0700) and returns the topmost one it
/// made, so that removing the plant can take it away again.
pub fn make_parent(path: &Path) -> Result<Option<PathBuf>, PlantError> {
    let dir = parent(path);
    let mut top = None;
    let mut d = dir.as_path();
    while !d.exists() {
        top = Some(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    if top.is_some() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| PlantError::file(&dir, "cannot create", e))?;
    }
    Ok(top)
}

/// Applies the edits in order, each as its owner (the user's files as the user, when root plants
/// for someone else). Each file is compared with the bytes the plan was made from just before it
/// is replaced: another writer meanwhile makes the whole apply fail with [`PlantError::Raced`].
/// If one fails, those already done are undone (best effort, in reverse, each only if it is
/// still as this apply left it), and the error names the file that failed.
pub fn apply(disk: &dyn Disk, edits: &[Edit], owner: Option<&Owner>) -> Result<(), PlantError> {
    for (i, edit) in edits.iter().enumerate() {
        let who = owner.filter(|_| edit.user);
        let done = as_user(who, || {
            apply_one(disk, edit, edit.before.as_deref(), edit.after.as_deref())
        });
        if let Err(e) = done {
            for done in edits[..i].iter().rev() {
                let who = owner.filter(|_| done.user);
                let _ = as_user(who, || {
                    apply_one(
                        &RealDisk,
                        done,
                        done.after.as_deref(),
                        done.before.as_deref(),
                    )
                });
            }
            return Err(match e {
                Failure::Changed => PlantError::Raced(edit.path.clone()),
                Failure::Io(e) => PlantError::file(&edit.path, "cannot write", e),
            });
        }
    }
    Ok(())
}

/// Why one file was not written.
enum Failure {
    /// Its bytes are not those the plan was made from.
    Changed,
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<nix::errno::Errno> for Failure {
    fn from(e: nix::errno::Errno) -> Self {
        Self::Io(e.into())
    }
}

/// The file a write goes to: a symlink's target (a link is written through, never replaced).
/// A link to nothing is refused: creating its target could put a file anywhere it points.
pub fn through_links(path: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("a symbolic link whose target cannot be reached ({e}); plant writes through links and never replaces them"),
            )
        }),
        _ => Ok(path.to_path_buf()),
    }
}

fn apply_one(
    disk: &dyn Disk,
    edit: &Edit,
    expect: Option<&[u8]>,
    bytes: Option<&[u8]>,
) -> Result<(), Failure> {
    let path = edit.path.as_path();
    // The user's files are written through their links; the state never is: run as root, a
    // link there would send root's write anywhere.
    let resolved;
    let path = if edit.user {
        resolved = through_links(path)?;
        &resolved
    } else {
        path
    };
    match bytes {
        None => {
            unchanged(path, expect)?;
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(sync_dir(&parent(path))?),
            }
        }
        Some(bytes) => write_atomic(disk, path, expect, bytes),
    }
}

/// Compare and swap: the file still holds the bytes the plan was made from.
fn unchanged(path: &Path, expect: Option<&[u8]>) -> Result<(), Failure> {
    let now = match fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if now.as_deref() == expect {
        Ok(())
    } else {
        Err(Failure::Changed)
    }
}

/// Temp file in the same directory, same mode and owner as the file it replaces (0600 and the
/// directory's owner for a new one), synced, checked against `expect` just before it is
/// renamed over the file, then the directory synced.
fn write_atomic(
    disk: &dyn Disk,
    path: &Path,
    expect: Option<&[u8]>,
    bytes: &[u8],
) -> Result<(), Failure> {
    let dir = parent(path);
    let old = fs::metadata(path).ok();
    let (mode, owner) = match &old {
        Some(m) => (m.permissions().mode() & 0o7777, (m.uid(), m.gid())),
        None => {
            let d = fs::metadata(&dir)?;
            (0o600, (d.uid(), d.gid()))
        }
    };
    let mut tmp = tempfile::Builder::new().prefix(".").tempfile_in(&dir)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    // Root writing its own files into another's directory keeps them the directory owner's;
    // others cannot chown, and need not: acting as the user, the file is the user's already.
    let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(owner.0), Some(owner.1));
    disk.write_all(tmp.as_file_mut(), bytes)?;
    tmp.as_file().sync_all()?;
    unchanged(path, expect)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(sync_dir(&dir)?)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes directories a plant created, if they are empty again (deepest first).
pub fn remove_empty_dirs(top: &Path, file: &Path) {
    let mut d = parent(file);
    loop {
        if fs::remove_dir(&d).is_err() || d == top {
            break;
        }
        match d.parent() {
            Some(p) => d = p.to_path_buf(),
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A disk that fills up after `n` writes: then writes fail as the kernel's /dev/full
    /// makes them fail.
    pub struct FullAfter(pub AtomicUsize);
    impl Disk for FullAfter {
        fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
            if self.0.fetch_sub(1, Ordering::SeqCst) > 0 {
                return file.write_all(bytes);
            }
            File::options()
                .write(true)
                .open("/dev/full")?
                .write_all(bytes)
        }
    }

    #[test]
    fn a_full_disk_leaves_every_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"old").unwrap();
        let edits = [
            Edit {
                path: a.clone(),
                user: true,
                before: Some(b"old".to_vec()),
                after: Some(b"new".to_vec()),
            },
            Edit {
                path: dir.path().join("b"),
                user: true,
                before: None,
                after: Some(b"x".to_vec()),
            },
        ];
        let err = apply(&FullAfter(AtomicUsize::new(1)), &edits, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("No space left on device"), "{err}");
        assert_eq!(fs::read(&a).unwrap(), b"old");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file and no new file left behind");
        apply(&RealDisk, &edits, None).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new");
        let mode = fs::metadata(dir.path().join("b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
