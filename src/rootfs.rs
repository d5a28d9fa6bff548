//! An unpacked image's root filesystem, read as a container sees it.
//!
//! An image tree is foreign: its symbolic links were written by whoever
//! made the image, and a link such as `/nix/store -> /nix/store`, or
//! `../../../../nix/store`, names a path of the machine nixoci runs on
//! when the kernel resolves it. Every read of an unpacked tree goes
//! through this module, which resolves paths as a container runtime
//! does (as `openat2(2)` with `RESOLVE_IN_ROOT` does):
//!
//! - an absolute link target starts again at the image's root;
//! - `..` goes up one directory, and stays at the root when there;
//! - at most [`MAX_LINKS`] links are followed in one resolution (Linux's
//!   40), after which it fails as `ELOOP` does;
//! - nothing outside the root is ever opened.
//!
//! How: a walk, one component at a time, from a descriptor of the root.
//! Each step opens a single name relative to the directory already
//! reached, with `O_NOFOLLOW`; a link is read with `readlinkat` and its
//! target's components are walked in its place; `..` is never handed to
//! the kernel: the walk keeps the directories it went through and pops
//! one. The kernel therefore never follows a link nor goes up a
//! directory on our behalf, so no name in the image, nor a change of the
//! tree during the walk, can lead out of it. Chosen over `openat2` with
//! `RESOLVE_IN_ROOT` itself because that call is missing before Linux 5.6
//! and refused by the seccomp profiles of some container runtimes (where
//! nixoci runs in CI), and one code path should serve every machine; and
//! because the walk knows the path inside the image where it ended (the
//! SBOM names the layer that holds it). The tests check the walk against
//! `openat2(RESOLVE_IN_ROOT)`, on crafted trees.
//!
//! [`Dir`] reads what a resolution found without following anything
//! again: entries by name, links as links, files opened `O_NOFOLLOW`.
//! The Nix archive of a store path ([`crate::nar`]) is read this way.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// The most symbolic links followed in one resolution (Linux's
/// `MAXSYMLINKS`).
pub const MAX_LINKS: usize = 40;

fn io_err(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// What an entry is, read without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A device, fifo or socket.
    Other,
}

impl Kind {
    fn of(t: FileType) -> Kind {
        match t {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// An entry's kind, permission bits and size, as `lstat` gives them.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub kind: Kind,
    pub mode: u32,
    pub size: u64,
}

/// An open directory of a tree, and how messages name it. Everything read
/// through it is read by name, relative to it, without following a link.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    shown: PathBuf,
}

impl Dir {
    /// Open the directory at `path` of this machine (a path the user gave,
    /// or a temporary directory nixoci made): the one read that follows
    /// links, since the path is not the image's.
    pub fn open_host(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(path, io_err(e)))?;
        Ok(Dir {
            fd,
            shown: path.to_owned(),
        })
    }

    /// How messages name it.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// The names it holds (`.` and `..` left out), in byte order.
    pub fn names(&self) -> Result<Vec<OsString>> {
        let err = |e: Errno| Error::io(&self.shown, io_err(e));
        let mut dir = rustix::fs::Dir::read_from(&self.fd).map_err(err)?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    /// What `name` is, not following a link.
    pub fn meta(&self, name: &OsStr) -> Result<Meta> {
        let st = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io(self.shown.join(name), io_err(e)))?;
        Ok(Meta {
            kind: Kind::of(FileType::from_raw_mode(st.st_mode)),
            mode: st.st_mode & 0o7777,
            size: st.st_size as u64,
        })
    }

    /// The target of the link `name`.
    pub fn read_link(&self, name: &OsStr) -> Result<Vec<u8>> {
        let target = rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .map_err(|e| Error::io(self.shown.join(name), io_err(e)))?;
        Ok(target.into_bytes())
    }

    /// Open the regular file `name` to read (never through a link), with
    /// its permission bits and size as the open file has them.
    pub fn open_file(&self, name: &OsStr) -> Result<(File, Meta)> {
        let shown = self.shown.join(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| Error::io(&shown, io_err(e)))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io(&shown, io_err(e)))?;
        let meta = Meta {
            kind: Kind::of(FileType::from_raw_mode(st.st_mode)),
            mode: st.st_mode & 0o7777,
            size: st.st_size as u64,
        };
        if meta.kind != Kind::File {
            return Err(Error::Invalid(format!(
                "{}: not a regular file",
                shown.display()
            )));
        }
        Ok((File::from(fd), meta))
    }

    /// Open the directory `name` (never through a link).
    pub fn open_dir(&self, name: &OsStr) -> Result<Dir> {
        let shown = self.shown.join(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(&shown, io_err(e)))?;
        Ok(Dir { fd, shown })
    }

    /// Set the permission bits of the directory `name` (opened without
    /// following a link, then changed through its descriptor).
    pub fn set_dir_mode(&self, name: &OsStr, mode: u32) -> Result<()> {
        let dir = self.open_dir(name)?;
        rustix::fs::fchmod(&dir.fd, Mode::from_raw_mode(mode))
            .map_err(|e| Error::io(&dir.shown, io_err(e)))
    }

    /// Set the access and modification times of `name` itself (of a link,
    /// not of what it names).
    pub fn set_times(&self, name: &OsStr, seconds: i64, nanoseconds: u32) -> Result<()> {
        let t = rustix::fs::Timespec {
            tv_sec: seconds as _,
            tv_nsec: nanoseconds as _,
        };
        let times = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(&self.fd, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io(self.shown.join(name), io_err(e)))
    }

    /// A descriptor of the same directory that only serves to look up
    /// names in it (`O_PATH`: search permission is enough).
    fn path_handle(&self, name: &OsStr, shown: PathBuf) -> std::result::Result<Dir, Errno> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir { fd, shown })
    }
}

/// The root of an unpacked image.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
    /// How messages name the tree (`the image`).
    what: String,
}

/// Where a resolution ended.
#[derive(Debug)]
pub enum Resolved {
    /// Something is there: `path` is where it is in the image (relative
    /// to the root, `/`-separated, no link left in it; empty for the root
    /// itself), `parent` the directory holding it, `name` its name there.
    Found {
        path: Vec<u8>,
        parent: Dir,
        name: OsString,
        meta: Meta,
    },
    /// Nothing is there (a container would get `ENOENT` or `ENOTDIR`):
    /// `path` is where the walk stopped (read by the unit tests, which
    /// check where a walk stops).
    Missing {
        #[cfg_attr(not(test), allow(dead_code))]
        path: Vec<u8>,
    },
}

impl Root {
    /// The image tree at `dir`, a directory nixoci made (`what` names it
    /// in messages).
    pub fn open(dir: &Path, what: &str) -> Result<Root> {
        Ok(Root {
            dir: Dir::open_host(dir)?,
            what: what.to_owned(),
        })
    }

    /// Resolve `path` (relative to the root; a leading `/` means the
    /// same) inside the image, following every link as a container would
    /// (the last component too), within [`MAX_LINKS`] links.
    pub fn resolve(&self, path: &[u8]) -> Result<Resolved> {
        let shown_path = String::from_utf8_lossy(path).into_owned();
        let loop_error = || {
            Error::Invalid(format!(
                "{}: /{}: more than {MAX_LINKS} symbolic links followed in resolving it inside the \
                 image (a loop, such as a link to itself), so a container could not open it \
                 either: make the link name a directory of the image",
                self.what,
                shown_path.trim_start_matches('/')
            ))
        };
        // The directories walked through, the root first, and their names.
        let mut stack: Vec<(Dir, Vec<u8>)> = Vec::new();
        let root = |r: &Root| -> Result<Dir> {
            r.dir
                .path_handle(OsStr::new("."), r.dir.shown.clone())
                .map_err(|e| Error::io(&r.dir.shown, io_err(e)))
        };
        stack.push((root(self)?, Vec::new()));
        // Components still to walk, the next one last.
        let mut todo: Vec<Vec<u8>> = components(path);
        let mut links = 0usize;
        let here = |stack: &[(Dir, Vec<u8>)]| -> Vec<u8> {
            stack[1..]
                .iter()
                .map(|(_, n)| n.as_slice())
                .collect::<Vec<_>>()
                .join(&b'/')
        };
        while let Some(name) = todo.pop() {
            if name == b"." {
                continue;
            }
            if name == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let (dir, _) = stack.last().expect("the root stays");
            let os = OsStr::from_bytes(&name);
            let at = |stack: &[(Dir, Vec<u8>)]| {
                let mut p = here(stack);
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(&name);
                p
            };
            let meta = match dir.meta(os) {
                Ok(m) => m,
                Err(Error::Io { source, .. })
                    if matches!(source.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) =>
                {
                    return Ok(Resolved::Missing { path: at(&stack) });
                }
                Err(e) => return Err(e),
            };
            match meta.kind {
                Kind::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(loop_error());
                    }
                    let target = dir.read_link(os)?;
                    if target.starts_with(b"/") {
                        stack.truncate(1);
                    }
                    todo.extend(components(&target));
                }
                Kind::Dir if !todo.is_empty() => {
                    let shown = dir.shown.join(os);
                    let next = dir
                        .path_handle(os, shown.clone())
                        .map_err(|e| Error::io(&shown, io_err(e)))?;
                    stack.push((next, name));
                }
                _ if !todo.is_empty() => {
                    // A file in the middle of the path: ENOTDIR.
                    return Ok(Resolved::Missing { path: at(&stack) });
                }
                _ => {
                    let path = at(&stack);
                    let (parent, _) = stack.pop().expect("the root stays");
                    return Ok(Resolved::Found {
                        path,
                        parent,
                        name: os.to_owned(),
                        meta,
                    });
                }
            }
        }
        // The path ended on a directory already entered (or the root).
        let path = here(&stack);
        let (dir, name) = stack.pop().expect("the root stays");
        let name = if name.is_empty() {
            OsString::from(".")
        } else {
            OsString::from_vec(name)
        };
        let parent = match stack.last() {
            Some((p, _)) => p
                .path_handle(OsStr::new("."), p.shown.clone())
                .map_err(|e| Error::io(&p.shown, io_err(e)))?,
            None => dir,
        };
        let meta = parent.meta(&name)?;
        Ok(Resolved::Found {
            path,
            parent,
            name,
            meta,
        })
    }

    /// The entry at exactly `path` (relative to the root), reached without
    /// following any link: the directory holding it and its name. `None`
    /// when a component on the way is missing, or is not a directory (a
    /// link included): the path no longer names what was made there.
    /// (`unpack` sets what it made through this, at its end.)
    pub fn exact(&self, path: &[u8]) -> Result<Option<(Dir, OsString)>> {
        let mut parts = components(path);
        let Some(last) = parts.first().cloned() else {
            return Ok(None);
        };
        parts.remove(0);
        if parts.iter().chain([&last]).any(|c| c == b".." || c == b".") {
            return Ok(None);
        }
        let mut dir = self
            .dir
            .path_handle(OsStr::new("."), self.dir.shown.clone())
            .map_err(|e| Error::io(&self.dir.shown, io_err(e)))?;
        while let Some(name) = parts.pop() {
            let os = OsStr::from_bytes(&name);
            let shown = dir.shown.join(os);
            dir = match dir.path_handle(os, shown.clone()) {
                Ok(d) => d,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
                Err(e) => return Err(Error::io(&shown, io_err(e))),
            };
        }
        Ok(Some((dir, OsString::from_vec(last))))
    }

    /// The directory `path` resolves to inside the image, and where it is
    /// there; `None` when nothing, or something else than a directory, is
    /// there.
    pub fn open_dir(&self, path: &[u8]) -> Result<Option<(Dir, Vec<u8>)>> {
        match self.resolve(path)? {
            Resolved::Found {
                path: at,
                parent,
                name,
                meta,
            } if meta.kind == Kind::Dir => {
                let mut dir = parent.open_dir(&name)?;
                // Messages name it as the image does, not by the scratch
                // directory it lies in.
                dir.shown = PathBuf::from(format!("/{}", String::from_utf8_lossy(&at)));
                Ok(Some((dir, at)))
            }
            _ => Ok(None),
        }
    }
}

/// The components of `path`, the first one last (so that `pop` walks
/// them in order).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// What the kernel's `RESOLVE_IN_ROOT` finds for `path` under `root`:
    /// the (device, inode) of the result, or the errno.
    fn kernel(root: &Path, path: &str) -> std::result::Result<(u64, u64), Errno> {
        let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let fd = rustix::fs::openat2(
            &dir,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
        )?;
        let st = rustix::fs::fstat(&fd).unwrap();
        Ok((st.st_dev, st.st_ino))
    }

    /// What [`Root::resolve`] finds, in the same terms.
    fn ours(root: &Root, path: &str) -> std::result::Result<(u64, u64), String> {
        match root.resolve(path.as_bytes()) {
            Ok(Resolved::Found { parent, name, .. }) => {
                let st = rustix::fs::statat(&parent.fd, &*name, AtFlags::SYMLINK_NOFOLLOW).unwrap();
                Ok((st.st_dev, st.st_ino))
            }
            Ok(Resolved::Missing { path }) => {
                Err(format!("missing {}", String::from_utf8_lossy(&path)))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The walk finds what the kernel's `RESOLVE_IN_ROOT` finds, on links
    /// that would leave the root on the host (absolute, `..` past the
    /// top), chains, loops and dangling links, and never anything outside.
    #[test]
    fn resolves_as_the_kernel_does_in_root() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(outside.join("store")).unwrap();
        let r = t.path().join("root");
        for d in ["nix/store/aaa", "real/store/bbb", "usr/bin", "data"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("usr/bin/sh"), b"sh").unwrap();
        std::fs::write(r.join("file"), b"f").unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("/real", r.join("data/abs")).unwrap();
        symlink("../../../../../../../../real/store", r.join("data/up")).unwrap();
        symlink(outside.join("store"), r.join("data/host")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        symlink("/nowhere/at/all", r.join("dangling")).unwrap();
        symlink("../file/x", r.join("data/through-file")).unwrap();
        // A chain of exactly MAX_LINKS links, and one of MAX_LINKS + 1.
        for i in 0..=MAX_LINKS {
            let next = if i == 0 {
                "/usr".to_owned()
            } else {
                format!("c{}", i - 1)
            };
            symlink(next, r.join(format!("c{i}"))).unwrap();
        }
        let root = Root::open(&r, "the image").unwrap();
        let cases = [
            "nix/store",
            "/nix/store/aaa",
            "bin/sh",
            "/bin/../bin/sh",
            "../../../../nix/store",
            "data/abs/store/bbb",
            "data/up",
            "data/up/bbb/..",
            "data/host",
            "data/host/../..",
            "loop",
            "dangling",
            "data/through-file",
            "file/x",
            "c39/bin/sh",
            "c40/bin/sh",
            ".",
            "/",
            "..",
        ];
        for case in cases {
            let k = kernel(&r, case);
            let o = ours(&root, case);
            match (&k, &o) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{case:?}"),
                (Err(Errno::NOENT | Errno::NOTDIR), Err(m)) => {
                    assert!(m.starts_with("missing"), "{case:?}: {m}")
                }
                (Err(Errno::LOOP), Err(m)) => {
                    assert!(m.contains("more than 40 symbolic links"), "{case:?}: {m}")
                }
                _ => panic!("{case:?}: the kernel gives {k:?}, the walk {o:?}"),
            }
        }
        // Where it ended, inside the image.
        match root.resolve(b"data/up/bbb").unwrap() {
            Resolved::Found { path, .. } => assert_eq!(path, b"real/store/bbb"),
            other => panic!("{other:?}"),
        }
        // The absolute host path is looked for from the image's root.
        let first = outside.components().nth(1).unwrap();
        match root.resolve(b"data/host").unwrap() {
            Resolved::Missing { path } => assert_eq!(path, first.as_os_str().as_bytes()),
            other => panic!("the host's directory was reached: {other:?}"),
        }
        let (store, at) = root.open_dir(b"data/abs/store").unwrap().unwrap();
        assert_eq!(at, b"real/store");
        assert_eq!(store.names().unwrap(), [OsString::from("bbb")]);
        assert_eq!(store.shown(), Path::new("/real/store"));
        assert!(root.open_dir(b"file").unwrap().is_none());
        // `exact` follows no link at all, not even to a path inside.
        let (dir, name) = root.exact(b"usr/bin/sh").unwrap().unwrap();
        assert_eq!(
            (dir.shown(), name.as_os_str()),
            (r.join("usr/bin").as_path(), OsStr::new("sh"))
        );
        for through_a_link in [
            "bin/sh",
            "data/abs/store",
            "data/host/x",
            "file/x",
            "missing/x",
        ] {
            assert!(
                root.exact(through_a_link.as_bytes()).unwrap().is_none(),
                "{through_a_link}"
            );
        }
        let (_, name) = root.exact(b"bin").unwrap().unwrap();
        assert_eq!(name, "bin", "the link itself");
    }
}
