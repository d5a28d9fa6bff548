//! Following the symbolic links of a base image's tree ([`BaseTree`]):
//! where a path placed through them lands (`"symlinks": "follow"`), which
//! links it crosses, and whether a link leads to a directory.

use super::tree::{join, split, BaseTree, Node};

/// The most symbolic links followed in one path (as Linux's 40).
const MAX_LINKS: usize = 40;

impl BaseTree {
    /// `path` with every symbolic link of the base on the way followed
    /// (a relative target from its directory, an absolute one from the
    /// image's root, `..` stopping at the root); the last component too
    /// when `whole`. `None` past `MAX_LINKS` links (a loop).
    pub fn follow(&self, path: &[u8], whole: bool) -> Option<Vec<u8>> {
        self.follow_through(path, whole).map(|(to, _)| to)
    }

    /// [`BaseTree::follow`], with the paths of the links followed on the
    /// way, in order.
    pub fn follow_through(&self, path: &[u8], whole: bool) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
        let mut crossed = Vec::new();
        let mut todo: Vec<Vec<u8>> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty())
            .map(<[u8]>::to_vec)
            .rev()
            .collect();
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            match part.as_slice() {
                b"." => continue,
                b".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let here = join(&done.join(&b'/'), &part);
            let last = todo.is_empty();
            match self.get(&here) {
                Some(Node::Symlink(target)) if !last || whole => {
                    links += 1;
                    if links > MAX_LINKS {
                        return None;
                    }
                    crossed.push(here);
                    if target.starts_with(b"/") {
                        done.clear();
                    }
                    todo.extend(
                        target
                            .split(|&b| b == b'/')
                            .filter(|p| !p.is_empty())
                            .map(<[u8]>::to_vec)
                            .rev(),
                    );
                }
                _ => done.push(part),
            }
        }
        Some((done.join(&b'/'), crossed))
    }

    /// The first symbolic link of the base among the parents of `path`,
    /// and what it is.
    pub fn link_on_the_way(&self, path: &[u8]) -> Option<(Vec<u8>, &Node)> {
        let mut at = Vec::new();
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            at = join(&at, part);
            if let Some(n @ Node::Symlink(_)) = self.get(&at) {
                return Some((at, n));
            }
        }
        None
    }

    /// The directory the base's link at `path` leads to (through every
    /// link on the way), if it leads to one.
    pub(super) fn leads_to_directory(&self, path: &[u8]) -> Option<Vec<u8>> {
        self.follow(path, true)
            .filter(|to| self.get(to) == Some(&Node::Dir))
    }

    /// Whether `node`, put at `path`, is a link that leads where the
    /// base's link there does (`/bin -> /usr/bin` over `/bin -> usr/bin`).
    pub(super) fn same_directory(&self, path: &[u8], node: &Node) -> bool {
        let Node::Symlink(target) = node else {
            return false;
        };
        let from = if target.starts_with(b"/") {
            target.clone()
        } else {
            join(split(path).0, target)
        };
        // Resolved in the base, the new target must not go through the
        // link it replaces: `/bin -> /bin` (or `./bin`, `../bin`) would
        // resolve through the old `/bin -> usr/bin` here, yet in the image
        // it is a loop, and `/bin/sh` is gone.
        let path = path.strip_prefix(b"/").unwrap_or(path);
        match self.follow_through(&from, true) {
            Some((to, crossed)) => {
                !crossed.iter().any(|c| c.as_slice() == path)
                    && Some(to) == self.leads_to_directory(path)
            }
            None => false,
        }
    }
}
