//! Temporary siblings of outputs: their names, which say which run on
//! which machine made them, and the removal of those whose run died
//! (SIGKILL, a power cut) by the next run writing the same output; and the
//! renames that put a finished output in place without replacing one
//! written meanwhile (`renameat2`).

use std::fs;
use std::io;
use std::path::Path;

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
        let p = e.path();
        let _ = match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
            Ok(_) => fs::remove_file(&p),
            Err(_) => Ok(()),
        };
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
