//! The one rule for OCI whiteouts (image-spec `layer.md`, "Whiteouts"),
//! which every reader of layers applies: `unpack` (and so `sbom`), the
//! base tree of `fromImage` (and the layer of each store path `sbom`
//! reports), `verify` and `diff`.
//!
//! - What is one: an entry whose last name starts with `.wh.`, whatever
//!   its type. `.wh..wh..opq` hides what the layers below put in its
//!   directory; `.wh.NAME` hides `NAME` and all under it. `.wh.`, `.wh..`
//!   and `.wh...` name no entry of their directory and are refused.
//! - What it hides: only what the layers below put there, never what its
//!   own layer put, before or after it in the layer. A path the layer put,
//!   and every parent of one (made for it, named or not), stays; anything
//!   else at or under the whiteout's path goes, whole. This is umoci's
//!   rule (its `upperPaths`), and so what a runtime that reads layers
//!   with umoci's library sees.
//! - Where: a whiteout whose directory is missing, or is not a directory,
//!   hides nothing (as in umoci); one whose directory is reached through
//!   a symbolic link is refused, as any entry written through a link is
//!   ([`super::shape`], which every reader applies).

use std::collections::HashSet;

/// The name of an opaque whiteout.
pub const OPAQUE: &[u8] = b".wh..wh..opq";

/// The name prefix of a whiteout.
pub const PREFIX: &[u8] = b".wh.";

/// A whiteout entry, by the normalised path (`a/b`, no leading `/`) it
/// applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Whiteout {
    /// `.wh..wh..opq`: hides what is under `dir` (the directory stays).
    Opaque { dir: Vec<u8> },
    /// `.wh.NAME`: hides `path` and what is under it.
    Hide { path: Vec<u8> },
}

/// Why a `.wh.` name is refused.
pub const BAD_NAME: &str = "a whiteout must name an entry of its directory";

impl Whiteout {
    /// The whiteout the entry at `path` is, if it is one (`Ok(None)` when
    /// it is not); `Err` says why it is refused. Empty and `.` components
    /// of `path` are skipped.
    pub fn of(path: &[u8]) -> Result<Option<Whiteout>, &'static str> {
        let comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        let Some((last, parents)) = comps.split_last() else {
            return Ok(None);
        };
        let dir = parents.join(&b'/');
        if *last == OPAQUE {
            return Ok(Some(Whiteout::Opaque { dir }));
        }
        let Some(name) = last.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        if name.is_empty() || name == b"." || name == b".." {
            return Err(BAD_NAME);
        }
        Ok(Some(Whiteout::Hide {
            path: join(&dir, name),
        }))
    }

    /// Where what it hides starts: the opaque directory (whose content it
    /// hides), or the hidden path.
    pub fn top(&self) -> &[u8] {
        match self {
            Whiteout::Opaque { dir } => dir,
            Whiteout::Hide { path } => path,
        }
    }

    /// Whether it hides `path` (normalised), given what its own layer put
    /// so far. When it does not hide a directory at or under [`Self::top`],
    /// it may still hide entries inside it: a reader walks down from the
    /// top and removes each path this says, whole.
    pub fn hides(&self, path: &[u8], own: &OwnPaths) -> bool {
        let covered = match self {
            Whiteout::Opaque { dir } => strictly_under(path, dir),
            Whiteout::Hide { path: p } => path == p.as_slice() || strictly_under(path, p),
        };
        covered && !own.contains(path)
    }
}

/// The paths one layer put so far, with every parent of each: what the
/// layer's whiteouts leave alone.
#[derive(Clone, Debug, Default)]
pub struct OwnPaths(HashSet<Vec<u8>>);

impl OwnPaths {
    /// A new layer starts.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The layer put an entry at `path` (normalised; its parents with it).
    pub fn put(&mut self, path: &[u8]) {
        let mut end = path.len();
        while end > 0 && self.0.insert(path[..end].to_vec()) {
            end = path[..end].iter().rposition(|&b| b == b'/').unwrap_or(0);
        }
    }

    /// Whether the layer put `path`, or something under it.
    pub fn contains(&self, path: &[u8]) -> bool {
        self.0.contains(path)
    }
}

/// Whether `path` lies under the directory `dir` (everything does under
/// the root, `""`), not at it.
fn strictly_under(path: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        return !path.is_empty();
    }
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Whiteout::of(b"a/b"), Ok(None));
        assert_eq!(
            Whiteout::of(b"./a/.wh..wh..opq"),
            Ok(Some(Whiteout::Opaque { dir: b"a".to_vec() }))
        );
        assert_eq!(
            Whiteout::of(b".wh..wh..opq"),
            Ok(Some(Whiteout::Opaque { dir: Vec::new() }))
        );
        assert_eq!(
            Whiteout::of(b"a//b/.wh.c"),
            Ok(Some(Whiteout::Hide {
                path: b"a/b/c".to_vec()
            }))
        );
        for bad in [&b"a/.wh."[..], b".wh..", b"x/.wh..."] {
            assert_eq!(Whiteout::of(bad), Err(BAD_NAME), "{bad:?}");
        }
    }

    #[test]
    fn own_paths_are_kept_with_their_parents() {
        let mut own = OwnPaths::default();
        own.put(b"a/b/c");
        assert!(own.contains(b"a") && own.contains(b"a/b") && own.contains(b"a/b/c"));
        assert!(!own.contains(b"a/b/d"));
        let opq = Whiteout::Opaque { dir: b"a".to_vec() };
        assert!(!opq.hides(b"a", &own));
        assert!(!opq.hides(b"a/b", &own));
        assert!(opq.hides(b"a/b/d", &own));
        assert!(opq.hides(b"a/x", &own));
        assert!(!opq.hides(b"ab", &own));
        let hide = Whiteout::Hide {
            path: b"a/b".to_vec(),
        };
        assert!(!hide.hides(b"a/b", &own));
        assert!(hide.hides(b"a/b/d", &own));
        assert!(!hide.hides(b"a/bc", &own));
        let root = Whiteout::Opaque { dir: Vec::new() };
        assert!(root.hides(b"z", &own) && !root.hides(b"", &own));
    }
}
