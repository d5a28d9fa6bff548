//! Entries a layer spec declares rather than copies: inline files (`files`
//! entries with `text`), the `directories` list and the `symlinks` list.

use super::*;

/// Inline files: 0444 unless a mode is given.
const TEXT_MODE: u32 = 0o444;

/// Declared directories: 0755 unless a mode is given.
const DIRECTORY_MODE: u32 = 0o755;

/// A destination that names one entry: absolute, not the root, not ending
/// in `/` (there is no source name to put inside a directory).
fn entry_destination(dest: &str, what: &str) -> Result<Vec<u8>> {
    let (rel, trailing) = parse_destination(dest)?;
    if rel.is_empty() || trailing {
        return Err(Error::Destination {
            destination: dest.to_owned(),
            reason: format!("{what} needs the full path of the entry, not ending in /"),
        });
    }
    Ok(rel.into_bytes())
}

impl Tree {
    /// Add a file whose bytes are `text` at `place.destination` (required,
    /// a full path). `label` names the spec entry in conflicts.
    pub fn add_text(&mut self, text: &str, place: &Placement, label: &str) -> Result<()> {
        let dest = place.destination.ok_or_else(|| {
            Error::Invalid(
                "\"text\" needs a \"destination\", the path of the file in the image".into(),
            )
        })?;
        if place.link {
            return Err(Error::Invalid(
                "\"link\" is for a source in the Nix store, not for \"text\"".into(),
            ));
        }
        let path = entry_destination(dest, "an inline file (\"text\")")?;
        let bytes: Arc<[u8]> = Arc::from(text.as_bytes());
        let entry = Entry {
            kind: Kind::File {
                size: bytes.len() as u64,
                link_key: None,
            },
            mode: place.mode.unwrap_or(TEXT_MODE),
            uid: place.uid.unwrap_or(0).into(),
            gid: place.gid.unwrap_or(0).into(),
            origin: PathBuf::from(format!("{label} (inline text)")),
            implicit: false,
            removes: None,
            inline: Some(bytes),
            declared: false,
        };
        self.insert(path, entry)
    }

    /// Add a declared directory at `path` with `mode` (default 0755, taken
    /// as given: setuid, setgid and sticky bits kept) and owner (default
    /// 0:0). Its mode and owner win over a parent made for another entry
    /// and over a directory a source places; two declared directories at
    /// one path must agree. `label` names the spec entry in messages.
    pub fn add_directory(
        &mut self,
        path: &str,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        label: &str,
    ) -> Result<()> {
        let rel = entry_destination(path, "a directory")?;
        let entry = Entry {
            kind: Kind::Dir,
            mode: mode.unwrap_or(DIRECTORY_MODE),
            uid: uid.unwrap_or(0).into(),
            gid: gid.unwrap_or(0).into(),
            origin: PathBuf::from(label),
            implicit: false,
            removes: None,
            inline: None,
            declared: true,
        };
        self.insert(rel, entry)
    }

    /// Add a symbolic link at `path` to `target` (kept byte for byte; a
    /// relative target as written). Returns the store path a target in the
    /// store points into (`STORE/hash-name` of `STORE/hash-name/bin/env`),
    /// which the caller places at its own path. `label` names the spec
    /// entry in messages and conflicts.
    pub fn add_symlink(
        &mut self,
        path: &str,
        target: &str,
        label: &str,
    ) -> Result<Option<PathBuf>> {
        let rel = entry_destination(path, "a symbolic link")?;
        if target.is_empty() || target.contains('\0') {
            return Err(Error::Invalid(format!(
                "the target of {path} is empty or holds a NUL byte; give the path it points to"
            )));
        }
        let entry = Entry {
            kind: Kind::Symlink(target.as_bytes().to_vec()),
            mode: 0o777,
            uid: 0,
            gid: 0,
            origin: PathBuf::from(label),
            implicit: false,
            removes: None,
            inline: None,
            declared: false,
        };
        self.insert(rel, entry)?;
        Ok(self.store_path_of(Path::new(target)))
    }

    /// The store path (`STORE/hash-name`) `path` is in or is, if it is in
    /// the store.
    pub fn store_path_of(&self, path: &Path) -> Option<PathBuf> {
        let first = path
            .strip_prefix(&self.store_dir)
            .ok()?
            .components()
            .next()?;
        match first {
            std::path::Component::Normal(name) => Some(self.store_dir.join(name)),
            _ => None,
        }
    }
}
