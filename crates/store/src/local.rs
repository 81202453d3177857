//! Durable writes into a local folder: a write counts only once its bytes and its name are on disk.
//!
//! object_store's local backend neither syncs files nor works where hard links do not (vfat, SMB,
//! some FUSE mounts), and create-only writes are what the commit chain stands on
//! (docs/commit-protocol.md). So every write here goes to a staging file next to its target
//! (`<name>#<digits>`, a name object_store's listing skips), is synced, and is then put in place:
//! - overwrite (`rename`), for the one object that may change (the chain-head hint);
//! - create-only, by the first mechanism the folder supports: a hard link (atomic, the POSIX way),
//!   else `renameat2(RENAME_NOREPLACE)` (atomic, Linux), else an exclusive create
//!   (`O_CREAT | O_EXCL`) of the target written in place. Only the last can leave a short file
//!   after a power loss; `verify` names it and `verify --repair` recovers it.
//!
//! The folder is synced after the name is in place, and so is every folder the write created, so
//! that a power loss after the write returned loses nothing.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How a create-only write was made, for `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMechanism {
    HardLink,
    RenameNoReplace,
    ExclusiveCreate,
}

impl std::fmt::Display for CreateMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CreateMechanism::HardLink => "hard links",
            CreateMechanism::RenameNoReplace => {
                "rename without replace (the folder has no hard links)"
            }
            CreateMechanism::ExclusiveCreate => {
                "exclusive create (the folder has neither hard links nor rename without replace)"
            }
        })
    }
}

/// What a create-only write found.
#[derive(Debug, PartialEq, Eq)]
pub enum Placed {
    Created(CreateMechanism),
    /// The name was taken (by whom is for the caller to find out).
    Exists,
}

static STAGING: AtomicU64 = AtomicU64::new(0);

/// `<target>#<pid><n>`: unique per write, and all digits, so object_store's listing skips it.
fn staging_path(target: &Path) -> PathBuf {
    let n = STAGING.fetch_add(1, Ordering::Relaxed);
    let mut name = target.as_os_str().to_owned();
    name.push(format!("#{}{:06}", std::process::id(), n % 1_000_000));
    PathBuf::from(name)
}

/// Creates the missing folders of `dir`, syncing the parent of each one created.
fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => sync_dir(dir.parent().unwrap_or(dir)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` into a new synced staging file next to `target`.
fn stage(target: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    if let Some(dir) = target.parent() {
        ensure_dir(dir)?;
    }
    let staging = staging_path(target);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&staging)?;
    let written = file.write_all(bytes).and_then(|_| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    Ok(staging)
}

fn parent_of(target: &Path) -> &Path {
    target.parent().unwrap_or(Path::new("."))
}

/// Writes `target`, replacing what it held.
pub fn overwrite(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let staging = stage(target, bytes)?;
    if let Err(e) = std::fs::rename(&staging, target) {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    sync_dir(parent_of(target))
}

/// Whether a failed link or rename means "this filesystem cannot do that" (rather than a real
/// failure), so that the next mechanism is tried.
fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM)
            | Some(libc::EOPNOTSUPP)
            | Some(libc::ENOSYS)
            | Some(libc::EINVAL)
            | Some(libc::EMLINK)
            | Some(libc::EXDEV)
    )
}

#[cfg(target_os = "linux")]
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "a NUL byte in a path"))
    };
    let (from, to) = (cstr(from)?, cstr(to)?);
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(_from: &Path, _to: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
}

/// Creates `target` holding `bytes`, unless it exists (see the module docs for how).
pub fn create(target: &Path, bytes: &[u8]) -> std::io::Result<Placed> {
    let staging = stage(target, bytes)?;
    let placed = place_new(&staging, target, bytes);
    let _ = std::fs::remove_file(&staging);
    let placed = placed?;
    if matches!(placed, Placed::Created(_)) {
        sync_dir(parent_of(target))?;
    }
    Ok(placed)
}

fn place_new(staging: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<Placed> {
    match std::fs::hard_link(staging, target) {
        Ok(()) => return Ok(Placed::Created(CreateMechanism::HardLink)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Placed::Exists),
        Err(e) if unsupported(&e) => {
            tracing::debug!(error = %e, "no hard links here; trying rename without replace")
        }
        Err(e) => return Err(e),
    }
    match rename_noreplace(staging, target) {
        Ok(()) => return Ok(Placed::Created(CreateMechanism::RenameNoReplace)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Placed::Exists),
        Err(e) if unsupported(&e) => {
            tracing::debug!(error = %e, "no rename without replace here; creating exclusively")
        }
        Err(e) => return Err(e),
    }
    let mut file = match OpenOptions::new().write(true).create_new(true).open(target) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Placed::Exists),
        Err(e) => return Err(e),
    };
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(Placed::Created(CreateMechanism::ExclusiveCreate))
}

/// One file of a folder listing.
#[derive(Debug)]
pub struct Entry {
    /// Relative to the folder, `/`-separated.
    pub key: String,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// Whether object_store can name this file (it refuses control characters, and hides its own
/// staging files `<name>#<digits>`), as a reason to leave it out, or `None`.
fn unnamable(name: &str) -> Option<&'static str> {
    if name.chars().any(|c| c.is_ascii_control()) {
        return Some("a control character in its name");
    }
    None
}

fn is_staging(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every file under `root/prefix` (a folder, `""` for all) whose key sorts after `offset`,
/// walked here rather than by object_store, whose listing ends at the first name it cannot
/// represent: such names are returned apart (`skipped`, one line each) and the walk goes on.
pub fn list(
    root: &Path,
    prefix: &str,
    offset: Option<&str>,
) -> std::io::Result<(Vec<Entry>, Vec<String>)> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let start = prefix.trim_end_matches('/');
    let mut folders = vec![start.to_string()];
    while let Some(folder) = folders.pop() {
        let dir = if folder.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&folder)
        };
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for item in read {
            let item = item?;
            let Some(name) = item.file_name().to_str().map(str::to_string) else {
                skipped.push(format!(
                    "{}/{} (a name that is not UTF-8)",
                    folder,
                    item.file_name().to_string_lossy()
                ));
                continue;
            };
            let key = if folder.is_empty() {
                name.clone()
            } else {
                format!("{folder}/{name}")
            };
            if let Some(why) = unnamable(&name) {
                skipped.push(format!("{} ({why})", key.escape_debug()));
                continue;
            }
            let meta = match std::fs::metadata(item.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                folders.push(key);
            } else if !is_staging(&name) && offset.is_none_or(|o| key.as_str() > o) {
                out.push(Entry {
                    key,
                    size: meta.len(),
                    modified: meta.modified()?,
                });
            }
        }
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_only_and_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a/b/c.json");
        assert_eq!(
            create(&target, b"1").expect("create"),
            Placed::Created(CreateMechanism::HardLink)
        );
        assert_eq!(create(&target, b"2").expect("again"), Placed::Exists);
        assert_eq!(std::fs::read(&target).expect("read"), b"1");
        overwrite(&target, b"3").expect("overwrite");
        assert_eq!(std::fs::read(&target).expect("read"), b"3");
        let left: Vec<_> = std::fs::read_dir(target.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["c.json"], "no staging file is left behind");
    }

    #[test]
    fn listing_goes_past_names_object_store_cannot_represent() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "a/x.json",
            "a/b/y.json",
            "a/t\tab.json",
            "a/z.json#12",
            "c.json",
        ] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, b"1").expect("write");
        }
        let (found, skipped) = list(dir.path(), "a/", None).expect("list");
        let mut keys: Vec<String> = found.into_iter().map(|e| e.key).collect();
        keys.sort();
        assert_eq!(keys, ["a/b/y.json", "a/x.json"]);
        assert_eq!(skipped, ["a/t\\tab.json (a control character in its name)"]);
        let (after, _) = list(dir.path(), "", Some("a/x.json")).expect("list");
        let keys: Vec<String> = after.into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["c.json"]);
    }

    #[test]
    fn rename_without_replace_refuses_an_existing_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").expect("a");
        std::fs::write(&b, b"b").expect("b");
        let e = rename_noreplace(&a, &b).expect_err("b exists");
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).expect("b"), b"b");
    }
}
