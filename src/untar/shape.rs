//! The shape of the tree an image's layers make (each path and what it
//! is, nothing of content), built entry by entry with the refusals of
//! `unpack`: every reader that applies layers in order replays them here
//! (`unpack` before it touches the disk, `verify` for each manifest, the
//! base tree of `fromImage`), so that what one refuses, all refuse, with
//! the same words. An entry is refused when:
//!
//! - its path could leave the root (a NUL, a leading `/`, `..`) or has a
//!   name over 255 bytes;
//! - it is the root (`./`) and not a directory (umoci refuses to change
//!   the root's type too);
//! - a parent on its way is a symbolic link (it would be written through
//!   it), or, for anything but a whiteout, is not a directory;
//! - a whiteout names no entry of its directory; a whiteout whose
//!   directory is missing, or is not a directory, hides nothing (as
//!   umoci);
//! - a symbolic link has no target; a hard link's target is outside the
//!   root, the root, a directory, not (or no longer, once whited out)
//!   in the tree, or under the link's own path (which the link replaces).
//!
//! Whiteouts hide by the rule of [`super::whiteout`].

use std::collections::BTreeMap;

use super::whiteout::{OwnPaths, Whiteout};

/// What a path of the tree is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link, and its target.
    Symlink(Vec<u8>),
    /// A device, fifo or socket.
    Other,
}

impl Node {
    /// The node in words: "a directory", "a symbolic link to usr/bin".
    pub fn noun(&self) -> String {
        match self {
            Node::Dir => "a directory".into(),
            Node::File => "a file".into(),
            Node::Symlink(t) => format!("a symbolic link to {}", String::from_utf8_lossy(t)),
            Node::Other => "a special file".into(),
        }
    }
}

/// The components of an entry path (empty and `.` ones skipped); `Err`
/// says why the path is refused.
pub fn components(raw: &[u8]) -> Result<Vec<&[u8]>, String> {
    if raw.contains(&0) {
        return Err("its name contains a NUL byte".into());
    }
    if raw.starts_with(b"/") {
        return Err("absolute paths are not allowed in a layer".into());
    }
    let comps: Vec<&[u8]> = raw
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if comps.iter().any(|c| *c == b"..") {
        return Err("'..' would leave the root".into());
    }
    if comps.iter().any(|c| c.len() > 255) {
        return Err("a name component is longer than 255 bytes".into());
    }
    Ok(comps)
}

fn show(comps: &[&[u8]]) -> String {
    String::from_utf8_lossy(&comps.join(&b'/')).into_owned()
}

/// The tree layers make so far: each normalised path (`a/b`), what it is,
/// and what the reader keeps with it (`T`).
#[derive(Clone, Debug)]
pub struct Shape<T> {
    nodes: BTreeMap<Vec<u8>, (Node, T)>,
    /// What the current layer put so far: what its whiteouts keep.
    own: OwnPaths,
}

impl<T> Default for Shape<T> {
    fn default() -> Self {
        Shape {
            nodes: BTreeMap::new(),
            own: OwnPaths::default(),
        }
    }
}

impl<T: Clone> Shape<T> {
    /// A new layer starts (its whiteouts hide what came before it).
    pub fn layer(&mut self) {
        self.own.clear();
    }

    /// Apply one entry of the current layer: `raw` its path as the tar
    /// gives it, `kind` and `link` its type and link target, `data` what
    /// to keep with it, `made` what to keep with a parent directory the
    /// layer does not name. `Err` says why `unpack` refuses the entry.
    pub fn entry(
        &mut self,
        raw: &[u8],
        kind: tar::EntryType,
        link: Option<&[u8]>,
        data: T,
        made: &T,
    ) -> Result<(), String> {
        let comps = components(raw)?;
        if comps.is_empty() {
            if kind == tar::EntryType::Directory {
                return Ok(());
            }
            return Err(format!(
                "it is the image's root, which must be a directory, not {}",
                kind_noun(kind)
            ));
        }
        let rel = comps.join(&b'/');
        if let Some(w) = Whiteout::of(&rel)? {
            // A whiteout makes no directory on its way: where one is
            // missing or is not a directory, there is nothing to hide.
            if self.parents(&comps, None)? {
                self.hide(&w);
            }
            return Ok(());
        }
        self.parents(&comps, Some(made))?;
        let node = match kind {
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => Node::File,
            tar::EntryType::Symlink => match link {
                None => return Err("a symlink without a target".into()),
                Some(t) if t.is_empty() || t.contains(&0) => {
                    return Err("its symlink target is empty or holds a NUL byte".into())
                }
                Some(t) => Node::Symlink(t.to_vec()),
            },
            tar::EntryType::Link => {
                let (to, node) = self.hard_link_target(link)?;
                if to.len() > rel.len() && to.starts_with(&rel) && to[rel.len()] == b'/' {
                    return Err(format!(
                        "its hard link target {:?} is under the entry, which replaces it",
                        String::from_utf8_lossy(&to)
                    ));
                }
                node
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => Node::Other,
            other => return Err(format!("unsupported entry type {other:?}")),
        };
        if node != Node::Dir {
            self.remove_under(&rel);
        }
        self.own.put(&rel);
        self.nodes.insert(rel, (node, data));
        Ok(())
    }

    /// Check the parents of `comps`: never a symbolic link. A missing one
    /// is made (with `made`) when given, else `false`; so is one that is
    /// not a directory, which is refused when `made` is given.
    fn parents(&mut self, comps: &[&[u8]], made: Option<&T>) -> Result<bool, String> {
        let mut p: Vec<u8> = Vec::new();
        for (i, c) in comps[..comps.len().saturating_sub(1)].iter().enumerate() {
            if i > 0 {
                p.push(b'/');
            }
            p.extend_from_slice(c);
            match (self.nodes.get(&p), made) {
                (Some((Node::Dir, _)), _) => {}
                (Some((Node::Symlink(_), _)), _) => {
                    return Err(format!(
                        "it would be written through the symlink {:?}",
                        show(&comps[..=i])
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "its parent {:?} is not a directory",
                        show(&comps[..=i])
                    ))
                }
                (None, Some(t)) => {
                    self.nodes.insert(p.clone(), (Node::Dir, t.clone()));
                }
                (_, None) => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Where a hard link to `link` leads (normalised) and what it is:
    /// what is there now, which must not be a directory.
    fn hard_link_target(&mut self, link: Option<&[u8]>) -> Result<(Vec<u8>, Node), String> {
        let target = link.ok_or("a hard link without a target")?;
        let shown = String::from_utf8_lossy(target);
        let tcomps = components(target)
            .map_err(|_| format!("its hard link target {shown:?} is outside the root"))?;
        if tcomps.is_empty() {
            return Err("a hard link to the root".into());
        }
        let missing = || format!("its hard link target {shown:?} does not exist (yet)");
        if !self.parents(&tcomps, None)? {
            return Err(missing());
        }
        let to = tcomps.join(&b'/');
        match self.nodes.get(&to) {
            Some((Node::Dir, _)) => Err("a hard link to a directory".into()),
            Some((n, _)) => Ok((to, n.clone())),
            None => Err(missing()),
        }
    }

    /// Remove what the whiteout `w` hides.
    fn hide(&mut self, w: &Whiteout) {
        let top = w.top();
        let doomed: Vec<Vec<u8>> = self
            .nodes
            .range(top.to_vec()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(top))
            .filter(|k| w.hides(k, &self.own))
            .cloned()
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Remove every path under the directory `dir` (not empty).
    fn remove_under(&mut self, dir: &[u8]) {
        let prefix = [dir, b"/"].concat();
        let doomed: Vec<Vec<u8>> = self
            .nodes
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// What is at `path` (normalised), and its data.
    pub fn get(&self, path: &[u8]) -> Option<&(Node, T)> {
        self.nodes.get(path)
    }

    /// Every path, sorted, with what it is and its data.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &(Node, T))> {
        self.nodes.iter()
    }
}

fn kind_noun(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Regular | tar::EntryType::Continuous => "a file",
        _ => "a special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::EntryType as K;

    fn apply(s: &mut Shape<()>, entries: &[(&str, K, Option<&str>)]) -> Result<(), String> {
        s.layer();
        for (p, k, l) in entries {
            s.entry(p.as_bytes(), *k, l.map(str::as_bytes), (), &())?;
        }
        Ok(())
    }

    #[test]
    fn refusals() {
        let mut s = Shape::default();
        let base = [
            ("r/", K::Directory, None),
            ("r/f", K::Regular, None),
            ("l", K::Symlink, Some("r")),
            ("d", K::Regular, None),
        ];
        apply(&mut s, &base).unwrap();
        let refused = |e: &[(&str, K, Option<&str>)]| apply(&mut s.clone(), e).unwrap_err();
        assert_eq!(
            refused(&[("l/.wh..wh..opq", K::Regular, None)]),
            "it would be written through the symlink \"l\""
        );
        assert_eq!(
            refused(&[("l/x", K::Regular, None)]),
            "it would be written through the symlink \"l\""
        );
        assert_eq!(
            refused(&[("d/x", K::Regular, None)]),
            "its parent \"d\" is not a directory"
        );
        assert_eq!(
            refused(&[(".wh.d", K::Regular, None), ("g", K::Link, Some("d"))]),
            "its hard link target \"d\" does not exist (yet)"
        );
        assert_eq!(
            refused(&[("./", K::Symlink, Some("/etc"))]),
            "it is the image's root, which must be a directory, not a symbolic link"
        );
        assert_eq!(
            refused(&[("/x", K::Regular, None)]),
            "absolute paths are not allowed in a layer"
        );
        // A whiteout under a file, or under nothing, hides nothing.
        let mut t = s.clone();
        apply(
            &mut t,
            &[
                ("d/.wh.a", K::Regular, None),
                ("n/.wh.a", K::Regular, None),
                ("./", K::Directory, None),
            ],
        )
        .unwrap();
        assert_eq!(t.get(b"d").map(|n| &n.0), Some(&Node::File));
        assert_eq!(t.get(b"n"), None);
    }
}
