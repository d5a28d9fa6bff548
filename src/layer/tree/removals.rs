//! The part of [`Tree`] a layer over a base image uses: placing every
//! entry through the base's symbolic links (`remap`), and the base paths a
//! layer removes (whiteouts), checked against what it places.

use super::*;

impl Tree {
    /// Move every entry to the path `to(path, is_directory)` gives (or fail
    /// with the message it gives): how a layer is placed through a base
    /// image's symbolic links. Entries that meet at one path merge as if
    /// placed there (or conflict, named), and parent directories are made
    /// anew where they are needed.
    pub fn remap(
        &mut self,
        to: impl Fn(&[u8], bool) -> std::result::Result<Vec<u8>, String>,
    ) -> Result<()> {
        let old = std::mem::take(&mut self.entries);
        for (path, entry) in old {
            if entry.implicit {
                continue;
            }
            let dir = entry.kind == Kind::Dir;
            let new = to(&path, dir).map_err(|why| {
                Error::Invalid(format!("{} ({}): {why}", display(&path), entry.describe()))
            })?;
            if new.is_empty() {
                // The root itself: nothing to place.
                continue;
            }
            if entry.removes.is_some() {
                self.ensure_parents(&new, &entry.origin)?;
                self.entries.insert(new, entry);
                continue;
            }
            self.insert(new, entry)?;
        }
        Ok(())
    }

    /// Delete `dest` (an absolute path) from the layers below, with an OCI
    /// whiteout: an empty file `.wh.NAME` in its directory. The layer may
    /// not also put something at `dest` or under it ([`Tree::check_removals`]).
    pub fn add_whiteout(&mut self, dest: &str) -> Result<()> {
        let (rel, _) = parse_destination(dest)?;
        let (parent, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", rel.as_str()),
        };
        if name.is_empty() {
            return Err(Error::Destination {
                destination: dest.to_owned(),
                reason: "the root cannot be removed".into(),
            });
        }
        let path = join(parent.as_bytes(), format!("{WHITEOUT}{name}").as_bytes());
        self.ensure_parents(&path, Path::new(dest))?;
        self.entries.insert(path, whiteout_entry(dest));
        self.removed.push(rel.into_bytes());
        Ok(())
    }

    /// A removed path may not also be placed, nor anything under it:
    /// checked where the entries finally are, so after [`Tree::remap`]
    /// too (`remove = ["/bin/x"]` and `/usr/bin/x` meet there when `/bin`
    /// leads to `/usr/bin`).
    pub fn check_removals(&self) -> Result<()> {
        for (path, whiteout) in &self.entries {
            let Some(dest) = &whiteout.removes else {
                continue;
            };
            let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => (&b""[..], &path[..]),
            };
            let r = join(
                parent,
                name.strip_prefix(WHITEOUT.as_bytes()).unwrap_or(name),
            );
            let under = join(&r, b"");
            if let Some((p, e)) = self
                .entries
                .iter()
                .find(|(p, _)| **p == r || p.starts_with(&under))
            {
                let moved = parse_destination(dest).is_ok_and(|(rel, _)| rel.as_bytes() != r);
                let removed = if !moved {
                    dest.clone()
                } else {
                    format!(
                        "{dest} (at {} through the base's symbolic links)",
                        display(&r)
                    )
                };
                return Err(Error::Invalid(format!(
                    "{removed} is removed (remove) and also placed ({} at {}): do one or the other",
                    e.describe(),
                    display(p)
                )));
            }
        }
        Ok(())
    }

    /// The paths [`Tree::add_whiteout`] removes.
    pub fn removed(&self) -> &[Vec<u8>] {
        &self.removed
    }
}
