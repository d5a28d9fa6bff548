//! Placing one entry in a [`Tree`]: the rules by which two entries at one
//! path merge (directories, the same file twice) or conflict (named), and
//! the parent directories made on the way, never through a file or a
//! symbolic link.

use super::*;

impl Tree {
    pub(super) fn insert(&mut self, path: Vec<u8>, entry: Entry) -> Result<()> {
        // A `.wh.` name is an OCI whiteout: it would delete a lower layer's
        // file when the image is unpacked, not add this one.
        if path.split(|b| *b == b'/').any(|c| c.starts_with(b".wh.")) {
            return Err(Error::Whiteout {
                path: String::from_utf8_lossy(&path).into_owned(),
                source_path: entry.origin.clone(),
            });
        }
        self.ensure_parents(&path, &entry.origin)?;
        let Some(existing) = self.entries.get_mut(&path) else {
            self.entries.insert(path, entry);
            return Ok(());
        };
        let conflict = |what: &'static str, existing: &Entry| {
            if existing.origin == entry.origin {
                Error::Invalid(format!(
                    "/{}: {} is placed here twice with different {what} (listed twice, or listed and also in the closure)",
                    String::from_utf8_lossy(&path),
                    entry.origin.display()
                ))
            } else {
                Error::Conflict {
                    path: String::from_utf8_lossy(&path).into_owned(),
                    first: existing.describe(),
                    second: entry.describe(),
                    what,
                }
            }
        };
        match (&existing.kind, &entry.kind) {
            (Kind::Dir, Kind::Dir) => {
                // Directories merge; a declared one (`directories`) sets
                // the metadata, else the first explicit one.
                if existing.declared && entry.declared {
                    if (existing.mode, existing.uid, existing.gid)
                        != (entry.mode, entry.uid, entry.gid)
                    {
                        return Err(conflict("modes or owners", existing));
                    }
                } else if existing.implicit || (entry.declared && !existing.declared) {
                    *existing = entry;
                }
                Ok(())
            }
            (Kind::Symlink(a), Kind::Symlink(b)) if a != b => {
                Err(conflict("symlink targets", existing))
            }
            (Kind::File { .. }, Kind::File { .. }) if existing.origin != entry.origin => {
                if !same_content(
                    (&existing.origin, existing.inline.as_deref()),
                    (&entry.origin, entry.inline.as_deref()),
                )? {
                    Err(conflict("content", existing))
                } else if (existing.mode, existing.uid, existing.gid)
                    != (entry.mode, entry.uid, entry.gid)
                {
                    Err(conflict("modes or owners", existing))
                } else {
                    Ok(())
                }
            }
            (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => Err(conflict(
                "kinds of file (file, directory, symlink)",
                existing,
            )),
            _ if (existing.mode, existing.uid, existing.gid)
                != (entry.mode, entry.uid, entry.gid) =>
            {
                Err(conflict("modes or owners", existing))
            }
            _ => Ok(()),
        }
    }

    /// Create missing parents of `path` as implicit directories; refuse a
    /// parent that is a file or a symlink.
    pub(super) fn ensure_parents(&mut self, path: &[u8], origin: &Path) -> Result<()> {
        for (i, _) in path.iter().enumerate().filter(|(_, b)| **b == b'/') {
            let parent = &path[..i];
            match self.entries.get(parent) {
                None => {
                    self.entries.insert(
                        parent.to_vec(),
                        Entry {
                            kind: Kind::Dir,
                            mode: PARENT_MODE,
                            uid: 0,
                            gid: 0,
                            origin: origin.to_owned(),
                            implicit: true,
                            removes: None,
                            inline: None,
                            declared: false,
                        },
                    );
                }
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                Some(
                    e @ Entry {
                        kind: Kind::Symlink(_),
                        ..
                    },
                ) => {
                    return Err(Error::ThroughSymlink {
                        path: String::from_utf8_lossy(path).into_owned(),
                        source_desc: origin.display().to_string(),
                        parent: String::from_utf8_lossy(parent).into_owned(),
                        link_source: e.describe(),
                    })
                }
                Some(e) => {
                    return Err(Error::Conflict {
                        path: String::from_utf8_lossy(parent).into_owned(),
                        first: e.describe(),
                        second: origin.display().to_string(),
                        what: "kinds of file (a file, and a directory holding other entries)",
                    })
                }
            }
        }
        Ok(())
    }
}
