//! Temporary siblings of outputs, and scratch directories
//! ([`crate::layout::scratch`]): their names, which say which run on which
//! machine made them, and the removal of those whose run died (SIGKILL, a
//! power cut) by the next run writing the same output or making scratch
//! space in the same directory, and by the signal handler of an
//! interrupted run ([`remove_unfinished`]); and the renames that put a finished output
//! in place without replacing one written meanwhile (`renameat2`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Temporary outputs and scratch directories of this process not yet
/// committed or removed, for [`remove_unfinished`].
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

pub(super) fn unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remove every output this process has started and not committed (and the
/// parents it created for them), every temporary file it has not renamed
/// into place and every scratch directory it has not removed yet. For a
/// signal handler that is about to exit: an interrupted run leaves nothing
/// behind.
pub fn remove_unfinished() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let paths: Vec<PathBuf> = unfinished().drain(..).collect();
    // The interrupted work goes on in other threads until the process
    // exits, and may make a directory again just after it was removed
    // (`create_dir_all` of a path inside it): a second look after a
    // moment removes that too. What is left even then bears the name of
    // a dead run, which the next run removes.
    for pass in 0..3 {
        for p in &paths {
            remove_tree(p);
        }
        if pass < 2 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Set once [`remove_unfinished`] has begun.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`remove_unfinished`] has begun: the process is being
/// interrupted, and its signal handler is about to exit. The work it
/// interrupted may fail meanwhile (its files vanish); that failure is not
/// the command's result, and must not be reported as such.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// A temporary file or directory (not a [`crate::layout::Staging`]
/// directory, which keeps its own entry) that
/// [`remove_unfinished`] removes if the process is interrupted while this
/// guard lives.
pub struct UnfinishedFile(PathBuf);

impl UnfinishedFile {
    /// Track `path` until this guard is dropped.
    pub fn track(path: &Path) -> Self {
        unfinished().push(path.to_owned());
        UnfinishedFile(path.to_owned())
    }
}

impl Drop for UnfinishedFile {
    fn drop(&mut self) {
        unfinished().retain(|p| *p != self.0);
    }
}

/// The start of the name of a temporary sibling of output `name`:
/// `.NAME.tmp-PID-HOST-`, so that a later run can tell it from an output
/// (it is hidden, and no output is named so) and tell whether the run that
/// made it is still alive ([`remove_stale_temporaries`]). HOST is
/// `machine_tag`: a PID means something only on the machine (and in the
/// PID namespace) that gave it.
pub fn temporary_prefix(name: &std::ffi::OsStr) -> String {
    format!(
        ".{}.tmp-{}-{}-",
        name.to_string_lossy(),
        std::process::id(),
        machine_tag()
    )
}

/// 8 hex digits naming this machine and PID namespace: of the host name
/// and the namespace's identity. Two containers sharing a directory, or
/// two machines sharing a network file system, get different tags, so
/// neither removes the other's temporaries.
fn machine_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        use sha2::Digest as _;
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let ns = fs::read_link("/proc/self/ns/pid").unwrap_or_default();
        let digest = sha2::Sha256::digest(format!("{}\n{}", host.trim(), ns.display()));
        hex::encode(&digest[..4])
    })
}

/// Remove the temporary siblings of output `name` in `parent` that a run
/// killed before it could clean up left behind (SIGKILL, a power cut):
/// those made on this machine (the tag in the name, `machine_tag`) by a
/// process (the PID in the name) that no longer exists. Those of live
/// processes, of other machines, and names of any other form are left
/// alone. Best effort: what cannot be removed stays.
pub fn remove_stale_temporaries(parent: &Path, name: &std::ffi::OsStr) {
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let mut parts = rest.splitn(3, '-');
        let (Some(pid), Some(tag)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(pid) = pid.parse::<libc::pid_t>().ok().filter(|p| *p > 0) else {
            continue;
        };
        if tag != machine_tag() {
            continue;
        }
        if pid as u32 == std::process::id() || process_alive(pid) {
            continue;
        }
        remove_tree(&e.path());
    }
}

/// Remove the file or directory tree at `path`, if it is there, best
/// effort: read-only directories in it (an unpacked image has some, and
/// even root's `remove_dir_all` stops at none of them but their owner's
/// does) are made writable first, and a removal that fails because a
/// thread of this process is still writing into the tree (a signal
/// handler removing what the interrupted work is making) is tried again.
pub fn remove_tree(path: &Path) {
    for attempt in 0..5 {
        let removed = match fs::symlink_metadata(path) {
            Err(_) => return,
            Ok(m) if m.is_dir() => {
                make_writable(path);
                fs::remove_dir_all(path)
            }
            Ok(_) => fs::remove_file(path),
        };
        match removed.map_err(|e| e.raw_os_error()) {
            // Not ours to remove, or never removable: no second try.
            Ok(()) | Err(Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::EBUSY)) => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5 << attempt)),
        }
    }
}

/// Give the owner write and search permission on every directory under
/// `root` (links are not followed), so that what they hold can be removed.
fn make_writable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(root).into_iter().flatten() {
        if e.file_type().is_dir() {
            if let Ok(m) = e.metadata() {
                let mode = m.permissions().mode();
                if mode & 0o700 != 0o700 {
                    let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(mode | 0o700));
                }
            }
        }
    }
}

/// Whether process `pid` exists (it may belong to another user).
fn process_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn c_path(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))
}

/// `renameat2` with `flags`.
fn rename_with(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let (f, t) = (c_path(from)?, c_path(to)?);
    // SAFETY: both are NUL-terminated paths, relative to the working
    // directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Rename `from` to `to`, failing (EEXIST) if `to` exists. Where the file
/// system cannot (EINVAL, ENOSYS), a plain rename, which fails over a
/// non-empty directory anyway.
pub(super) fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match rename_with(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            fs::rename(from, to)
        }
        r => r,
    }
}

/// Swap `a` and `b` in one step.
pub(super) fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    rename_with(a, b, libc::RENAME_EXCHANGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Staging;

    #[test]
    fn temporaries_of_dead_runs_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A PID no process has: above the largest the kernel hands out.
        let tag = machine_tag();
        let dead = format!(".out.tmp-2147483646-{tag}-abc");
        let alive = format!(".out.tmp-{}-{tag}-def", std::os::unix::process::parent_id());
        let other = format!(".other.tmp-2147483646-{tag}-abc");
        let elsewhere = ".out.tmp-2147483646-0badc0de-abc".to_owned();
        let odd = ".out.tmp-xyz".to_owned();
        for n in [&dead, &alive, &other, &elsewhere, &odd] {
            fs::create_dir(dir.path().join(n)).unwrap();
            fs::write(dir.path().join(n).join("blob"), b"x").unwrap();
        }
        fs::write(
            dir.path().join(format!(".out.tmp-2147483645-{tag}-f")),
            b"x",
        )
        .unwrap();
        let s = Staging::new(&dir.path().join("out"), false, &[]).unwrap();
        s.commit().unwrap();
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec![alive, other, elsewhere, odd, "out".into()];
        want.sort();
        assert_eq!(left, want);
    }
}
