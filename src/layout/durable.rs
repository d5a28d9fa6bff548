//! Durable commits: what nixoci renames into place is on the disk before
//! its name is. A rename alone is atomic, not durable: after a power cut
//! the new name can survive while the data written under the temporary
//! name did not, and `blobs/sha256/<digest>` is then an empty file whose
//! name lies about its content. So every commit (a blob, `index.json`, a
//! file output such as an archive, an SBOM or a plan, a staged output
//! directory, the blob-location cache) goes through here: the file is
//! synced before its rename ([`persist`], [`sync_file`]), a staged
//! directory's whole tree before its rename ([`sync_tree`]), and the
//! directory holding the new name after it ([`sync_dir`]). A blob is
//! handed to the disk while it is written ([`Writeback`]), so that its
//! sync has less left to wait for.
//!
//! Both syncs are skipped ([`wanted`]) for the output of the Nix build this
//! process runs in: there Nix owns durability (it registers the output
//! only once the builder has exited, and discards one it has not
//! registered). That output is recognised by its path, not by the
//! environment alone: `$NIX_BUILD_TOP` is also set in `nix-shell` and
//! `nix develop`, whose outputs are the user's own. And `NIXOCI_SYNC=0`
//! turns them off for any output whose loss does not matter (a tmpfs
//! scratch directory, a CI disk that is thrown away).

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::layout::outputs::{own_nix_output, store_dirs};
use crate::layout::scratch;

/// The variable that turns syncing off (`0`) or on (`1`, the default).
pub const SYNC_VAR: &str = "NIXOCI_SYNC";

/// Whether a commit at `dest` (the final path of an output, or a file
/// inside one) is synced: unless [`SYNC_VAR`] is `0`, or `dest` lies in
/// the Nix store, or, in a Nix build (`$NIX_BUILD_TOP` set), in one of the
/// build's outputs (`$out`, ... as `$outputs` names them, for an output
/// path outside the store directory as the builder sees it), or in a
/// scratch directory of this run ([`scratch::holds`]), which is removed
/// when the work ends. Only a Nix build writes in the store: every other
/// output there is refused ([`crate::layout::check_output`]).
pub fn wanted(dest: &Path) -> Result<bool> {
    if !sync_allowed()? {
        return Ok(false);
    }
    let Ok(dest) = std::path::absolute(dest) else {
        return Ok(true);
    };
    let in_store = store_dirs().iter().any(|s| dest.starts_with(s));
    Ok(!in_store && !dest.ancestors().any(own_nix_output) && !scratch::holds(&dest))
}

/// [`SYNC_VAR`], read once: `Ok(false)` for `0`, an error for a value
/// other than `0` and `1`.
fn sync_allowed() -> Result<bool> {
    static ALLOWED: std::sync::OnceLock<std::result::Result<bool, String>> =
        std::sync::OnceLock::new();
    ALLOWED
        .get_or_init(|| match std::env::var_os(SYNC_VAR) {
            None => Ok(true),
            Some(v) if v == "1" => Ok(true),
            Some(v) if v == "0" => Ok(false),
            Some(v) => Err(format!(
                "{SYNC_VAR}={v:?} is not 0 or 1: set it to 0 to write outputs without syncing them to the disk, or unset it"
            )),
        })
        .clone()
        .map_err(Error::Invalid)
}

/// Sync `file` (at `path`, for the error) to the disk: before it is
/// renamed to a name that is to be trusted.
pub fn sync_file(file: &File, path: &Path) -> Result<()> {
    file.sync_all().at(path)
}

/// Sync the directory `dir`, so that the names added to or removed from it
/// are on the disk: after a rename into it.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    open_no_follow(dir, libc::O_DIRECTORY)
        .and_then(|d| d.sync_all())
        .at(dir)
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Sync everything under the directory `root` (a staged output about to
/// be renamed into place). A tree of a few entries (a layout: its blobs,
/// already synced one by one, `index.json`, `oci-layout` and three
/// directories) is synced entry by entry, each directory after what it
/// holds. A larger one (an unpacked image), or one holding what this
/// process cannot open (a file of mode 0 unpacked as a user), is synced
/// by one `syncfs` of its file system, which writes back everything
/// dirty there at once: entry by entry, an unpacked tree of 2,000 small
/// files took 6 s to sync where `syncfs` took under 1 s. The price is
/// that `syncfs` also writes back what other programs wrote on that file
/// system.
pub fn sync_tree(root: &Path) -> Result<()> {
    /// Above this many files and directories, one `syncfs`.
    const ONE_BY_ONE: usize = 256;
    let mut entries = Vec::new();
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.io_error().is_some_and(is_denied) => return sync_file_system(root),
            Err(e) => {
                let path = e.path().unwrap_or(root).to_owned();
                return Err(Error::io(path, io::Error::other(e)));
            }
        };
        let flags = if entry.file_type().is_dir() {
            libc::O_DIRECTORY
        } else if entry.file_type().is_file() {
            // Never wait on what replaced the file meanwhile.
            libc::O_NONBLOCK
        } else {
            // Links and special files: their inodes are metadata, which
            // the directory's sync commits with it.
            continue;
        };
        if entries.len() == ONE_BY_ONE {
            return sync_file_system(root);
        }
        entries.push((entry.into_path(), flags));
    }
    for (path, flags) in entries {
        match open_no_follow(&path, flags) {
            Ok(f) => f.sync_all().at(&path)?,
            Err(e) if is_denied(&e) => return sync_file_system(root),
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(())
}

/// `syncfs` of the file system holding the directory `root`.
fn sync_file_system(root: &Path) -> Result<()> {
    let dir = open_no_follow(root, libc::O_DIRECTORY).at(root)?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::io(root, e.into()))
}

/// Before the tree at `tmp` is renamed to `dest` (or what it holds moved
/// into `dest`): [`sync_tree`], when [`wanted`] for `dest`.
pub fn sync_before_rename(tmp: &Path, dest: &Path) -> Result<()> {
    if wanted(dest)? {
        sync_tree(tmp)?;
    }
    Ok(())
}

/// After a rename to `dest`: [`sync_dir`] of the directory holding it, when
/// [`wanted`] for `dest`.
pub fn sync_after_rename(dest: &Path) -> Result<()> {
    if wanted(dest)? {
        sync_dir(&parent_of(dest))?;
    }
    Ok(())
}

/// Put the finished temporary file `tmp` at `dest`, durably (when
/// [`wanted`] says so): synced, renamed (over an existing `dest` only if
/// `replace`; otherwise `AlreadyExists`), and the directory synced. The
/// one rename of a file into place that every writer calls.
pub fn persist(tmp: tempfile::NamedTempFile, dest: &Path, replace: bool) -> Result<()> {
    let sync = wanted(dest)?;
    if sync {
        sync_file(tmp.as_file(), tmp.path())?;
    }
    let renamed = if replace {
        tmp.persist(dest)
    } else {
        tmp.persist_noclobber(dest)
    };
    renamed.map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            Error::OutputExists(dest.to_owned())
        } else {
            Error::io(dest, e.error)
        }
    })?;
    if sync {
        sync_dir(&parent_of(dest))?;
    }
    Ok(())
}

/// [`persist`] for a file inside a staged output directory that is
/// renamed to `output` once complete: the file is synced (when [`wanted`]
/// for `output`) and renamed, over an existing `dest`; its directory is
/// synced with the rest of the tree when the output is committed
/// ([`sync_tree`]), not once per file.
pub fn persist_staged(tmp: tempfile::NamedTempFile, dest: &Path, output: &Path) -> Result<()> {
    if wanted(output)? {
        sync_file(tmp.as_file(), tmp.path())?;
    }
    tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(())
}

/// How many bytes a [`Writeback`] lets pile up in the page cache before it
/// asks the kernel to start writing them to the disk.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A file being written that is to be synced once complete: every
/// [`WRITEBACK_EVERY`] bytes, the kernel is asked to start writing the new
/// bytes to the disk (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`, which
/// does not wait for them), so that the disk works while the rest arrives
/// (from a registry, a compressor) and the sync at the end ([`sync_file`],
/// which stays the only guarantee) has little left to wait for. Left to
/// itself, the kernel starts writing a file back only some 30 s later or
/// under memory pressure: a pull of 211 MB then waited about as long for
/// its syncs as for the network. A failed request is ignored: it is only
/// a hint, and the sync reports any error.
pub struct Writeback<F> {
    file: F,
    /// Whether to ask at all: only for a file that will be synced
    /// ([`wanted`]).
    enabled: bool,
    /// How far writing back was asked for, and how far the file is written.
    asked: u64,
    written: u64,
}

impl<F: std::os::fd::AsFd + io::Write> Writeback<F> {
    /// Write to `file`, asking for early writeback when `enabled`.
    pub fn new(file: F, enabled: bool) -> Self {
        Writeback {
            file,
            enabled,
            asked: 0,
            written: 0,
        }
    }

    /// The file.
    pub fn into_inner(self) -> F {
        self.file
    }
}

impl<F: std::os::fd::AsFd + io::Write> io::Write for Writeback<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.enabled && self.written - self.asked >= WRITEBACK_EVERY {
            use std::os::fd::AsRawFd;
            let fd = self.file.as_fd().as_raw_fd();
            // SAFETY: `fd` is open for as long as `self.file` lives; the call
            // only reads its arguments.
            unsafe {
                libc::sync_file_range(
                    fd,
                    self.asked as libc::off64_t,
                    (self.written - self.asked) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            self.asked = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Open `path` read-only, never through a link at its last component,
/// with `flags` added.
fn open_no_follow(path: &Path, flags: libc::c_int) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | flags)
        .open(path)
}

fn is_denied(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_synced_even_with_an_unreadable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), b"x").unwrap();
        std::fs::write(dir.path().join("a/secret"), b"x").unwrap();
        std::fs::set_permissions(
            dir.path().join("a/secret"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("a/l")).unwrap();
        sync_tree(dir.path()).unwrap();
        sync_dir(dir.path()).unwrap();
        let err = sync_dir(&dir.path().join("a/l")).unwrap_err();
        assert!(err.to_string().contains("a/l"), "{err}");
    }
}
