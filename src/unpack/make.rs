//! The entries of a layer made on disk, one kind each (directory, file,
//! symlink, hard link, device, fifo), with their owner and mode: the
//! checks of paths and parents are done before (`Extract::entry`).

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{cstring, refused, Extract};
use crate::error::{Error, IoContext, Result};
use crate::untar::EntryMeta;

impl Extract<'_> {
    /// A directory: kept if one is there (its mode is applied at the end).
    pub(super) fn make_dir(
        &mut self,
        path: &Path,
        rel: &[u8],
        mode: u32,
        meta: &EntryMeta,
    ) -> Result<()> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                self.clear(path)?;
                fs::create_dir(path).at(path)?;
            }
            Err(_) => fs::create_dir(path).at(path)?,
        }
        // The owner now, the mode at the end (which chown cannot clear).
        self.own(path, meta.uid, meta.gid)?;
        self.modes.insert(rel.to_vec(), mode);
        Ok(())
    }

    /// A regular file, created new (never opened through a symlink) and
    /// filled from the entry.
    pub(super) fn make_file<R: Read>(
        &self,
        index: usize,
        raw: &[u8],
        path: &Path,
        mode: u32,
        meta: &EntryMeta,
        entry: &mut tar::Entry<R>,
    ) -> Result<()> {
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
        };
        // Created new; what a lower layer (or an earlier entry) put there
        // is removed first, only when there is something.
        let mut out = match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(path)?;
                create()
            }
            r => r,
        }
        .at(path)?;
        meta.copy_content(entry, Some(&mut out))
            .map_err(|why| refused(index, raw, why))?;
        // Owner, then mode (a change of owner drops set-id bits), on the
        // open file.
        if self.as_root {
            use std::os::fd::AsRawFd as _;
            let (uid, gid) = (meta.uid as libc::uid_t, meta.gid as libc::gid_t);
            // SAFETY: fchown reads only its integer arguments, and the
            // descriptor is `out`'s, open for the whole call.
            if unsafe { libc::fchown(out.as_raw_fd(), uid, gid) } != 0 {
                return Err(Error::io(path, io::Error::last_os_error()));
            }
        }
        out.set_permissions(fs::Permissions::from_mode(mode))
            .at(path)?;
        Ok(())
    }

    pub(super) fn make_symlink(
        &self,
        index: usize,
        raw: &[u8],
        path: &Path,
        meta: &EntryMeta,
    ) -> Result<()> {
        let target = meta
            .link
            .clone()
            .ok_or_else(|| refused(index, raw, "a symlink without a target"))?;
        if target.contains(&0) || target.is_empty() {
            return Err(refused(
                index,
                raw,
                "its symlink target is empty or holds a NUL byte",
            ));
        }
        self.clear(path)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), path).at(path)?;
        self.own(path, meta.uid, meta.gid)?;
        Ok(())
    }

    /// A hard link: its target must be an entry already inside the tree,
    /// reached without going through a symlink, and not a directory.
    pub(super) fn make_hard_link(
        &self,
        index: usize,
        raw: &[u8],
        path: &Path,
        meta: &EntryMeta,
    ) -> Result<()> {
        let target = meta
            .link
            .clone()
            .ok_or_else(|| refused(index, raw, "a hard link without a target"))?;
        let tcomps = Self::components(index, &target).map_err(|_| {
            refused(
                index,
                raw,
                format!(
                    "its hard link target {:?} is outside the root",
                    String::from_utf8_lossy(&target)
                ),
            )
        })?;
        if tcomps.is_empty() {
            return Err(refused(index, raw, "a hard link to the root"));
        }
        let tdir = self.parents(index, raw, &tcomps, false)?.ok_or_else(|| {
            refused(
                index,
                raw,
                format!(
                    "its hard link target {:?} does not exist (yet)",
                    String::from_utf8_lossy(&target)
                ),
            )
        })?;
        let tpath = tdir.join(OsStr::from_bytes(tcomps[tcomps.len() - 1]));
        match fs::symlink_metadata(&tpath) {
            Ok(m) if m.is_dir() => return Err(refused(index, raw, "a hard link to a directory")),
            Ok(_) => {}
            Err(_) => {
                return Err(refused(
                    index,
                    raw,
                    format!(
                        "its hard link target {:?} does not exist (yet)",
                        String::from_utf8_lossy(&target)
                    ),
                ))
            }
        }
        if tpath != path {
            self.clear(path)?;
            fs::hard_link(&tpath, path).at(path)?;
        }
        Ok(())
    }

    /// A character or block device: refused unless `--allow-devices`.
    pub(super) fn make_device(
        &self,
        index: usize,
        raw: &[u8],
        path: &Path,
        mode: u32,
        meta: &EntryMeta,
        header: &tar::Header,
    ) -> Result<()> {
        if !self.opts.allow_devices {
            return Err(refused(
                index,
                raw,
                "device nodes are refused (--allow-devices creates them)",
            ));
        }
        let dev = libc::makedev(
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        let kind_bits = if meta.kind == tar::EntryType::Char {
            libc::S_IFCHR
        } else {
            libc::S_IFBLK
        };
        self.clear(path)?;
        let c = cstring(path)?;
        // SAFETY: `c` is a NUL-terminated path that lives through the call,
        // which only reads it.
        if unsafe { libc::mknod(c.as_ptr(), kind_bits | mode, dev) } != 0 {
            return Err(Error::io(path, io::Error::last_os_error()));
        }
        self.own(path, meta.uid, meta.gid)?;
        Ok(())
    }

    pub(super) fn make_fifo(&self, path: &Path, mode: u32, meta: &EntryMeta) -> Result<()> {
        self.clear(path)?;
        let c = cstring(path)?;
        // SAFETY: `c` is a NUL-terminated path that lives through the call,
        // which only reads it.
        if unsafe { libc::mkfifo(c.as_ptr(), mode) } != 0 {
            return Err(Error::io(path, io::Error::last_os_error()));
        }
        self.own(path, meta.uid, meta.gid)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).at(path)?;
        Ok(())
    }

    /// Owners as in the layer when running as root (as umoci does); left
    /// to the current user otherwise.
    pub(super) fn own(&self, path: &Path, uid: u64, gid: u64) -> Result<()> {
        if !self.as_root {
            return Ok(());
        }
        let c = cstring(path)?;
        // SAFETY: `c` is a NUL-terminated path that lives through the call,
        // which only reads it.
        if unsafe { libc::lchown(c.as_ptr(), uid as libc::uid_t, gid as libc::gid_t) } != 0 {
            return Err(Error::io(path, io::Error::last_os_error()));
        }
        Ok(())
    }
}
