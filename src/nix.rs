//! What Nix hands a builder: closure files in the two forms Nix writes them.
//!
//! - `exportReferencesGraph = [ "graph" drv ]` (plain): for each path, the
//!   lines `path`, `deriver` (may be empty), `N`, then N reference lines.
//! - With `__structuredAttrs = true`, `.attrs.json` holds the attribute as a
//!   list of `{path, references, narSize, narHash, closureSize}` objects.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, IoContext, Result};

/// The store directory: `$NIX_STORE` when Nix sets it, else `/nix/store`.
pub fn store_dir() -> PathBuf {
    std::env::var_os("NIX_STORE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/nix/store"))
}

/// Read the store paths listed in a closure file (either form; a file whose
/// first non-blank character is `{` is taken as `.attrs.json`).
pub fn read_closure_file(path: &Path, attr: Option<&str>) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path).at(path)?;
    let paths = if text.trim_start().starts_with('{') {
        parse_attrs_json(&text, attr.unwrap_or("closure"))
    } else if let Some(a) = attr {
        Err(format!(
            "\"attr\": {a:?} given, but this is not a JSON (.attrs.json) file"
        ))
    } else {
        parse_references_graph(&text)
    }
    .map_err(|m| Error::spec(path, m))?;
    for p in &paths {
        if !p.is_absolute() {
            return Err(Error::spec(
                path,
                format!("closure path {} is not absolute", p.display()),
            ));
        }
    }
    Ok(paths)
}

fn parse_attrs_json(text: &str, attr: &str) -> Result<Vec<PathBuf>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let list = doc
        .get(attr)
        .ok_or_else(|| {
            format!("no attribute {attr:?}; set \"attr\" to the exportReferencesGraph key")
        })?
        .as_array()
        .ok_or_else(|| format!("attribute {attr:?} is not a list"))?;
    list.iter()
        .map(|item| match item {
            Value::String(s) => Ok(PathBuf::from(s)),
            Value::Object(o) => o
                .get("path")
                .and_then(Value::as_str)
                .map(PathBuf::from)
                .ok_or_else(|| format!("an entry of {attr:?} has no \"path\" string")),
            _ => Err(format!(
                "an entry of {attr:?} is neither a path nor an object"
            )),
        })
        .collect()
}

fn parse_references_graph(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut lines = text.lines().enumerate();
    let mut paths = Vec::new();
    while let Some((n, path)) = lines.next() {
        if path.is_empty() {
            // Tolerate trailing blank lines only.
            if lines.clone().all(|(_, l)| l.is_empty()) {
                break;
            }
            return Err(format!(
                "line {}: expected a store path, found a blank line",
                n + 1
            ));
        }
        let eof = |what: &str| format!("line {}: file ends before the {what} of {path}", n + 1);
        lines.next().ok_or_else(|| eof("deriver"))?;
        let (cn, count) = lines.next().ok_or_else(|| eof("reference count"))?;
        let count: usize = count.trim().parse().map_err(|_| {
            format!(
                "line {}: expected a reference count, found {count:?}",
                cn + 1
            )
        })?;
        for _ in 0..count {
            lines.next().ok_or_else(|| eof("references"))?;
        }
        paths.push(PathBuf::from(path));
    }
    Ok(paths)
}

/// The `.attrs.json` of the running Nix build (`__structuredAttrs = true`):
/// `$NIX_ATTRS_JSON_FILE` where it exists (newer Nix), else
/// `$NIX_BUILD_TOP/.attrs.json` (Nix 2.8 sets the variable to a path outside
/// the sandbox), else `./.attrs.json`.
pub fn attrs_path() -> Result<PathBuf> {
    let candidates = [
        std::env::var_os("NIX_ATTRS_JSON_FILE").map(PathBuf::from),
        std::env::var_os("NIX_BUILD_TOP").map(|t| PathBuf::from(t).join(".attrs.json")),
        Some(PathBuf::from(".attrs.json")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Invalid(
                "no .attrs.json found: `nixoci nix-builder` runs as the builder of a derivation \
                 with __structuredAttrs = true (see nix/)"
                    .into(),
            )
        })
}

/// What the Nix functions put into a derivation's structured attrs.
#[derive(serde::Deserialize)]
pub struct BuilderAttrs {
    /// The building block to make.
    pub command: BuilderCommand,
    /// The spec of that command (for `archive` and `verify`: `{"layout":
    /// PATH, ...}`).
    pub spec: Value,
    pub outputs: std::collections::BTreeMap<String, PathBuf>,
}

/// The building blocks `nixoci nix-builder` makes, named in the attrs as
/// the Nix functions write them (`"layer"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum BuilderCommand {
    Layer,
    Config,
    Manifest,
    Layout,
    Archive,
    Verify,
}

impl BuilderCommand {
    /// Every command, in the order an error message lists them.
    pub const ALL: [BuilderCommand; 6] = [
        BuilderCommand::Layer,
        BuilderCommand::Config,
        BuilderCommand::Manifest,
        BuilderCommand::Layout,
        BuilderCommand::Archive,
        BuilderCommand::Verify,
    ];

    /// The name the attrs give it.
    pub fn name(self) -> &'static str {
        match self {
            BuilderCommand::Layer => "layer",
            BuilderCommand::Config => "config",
            BuilderCommand::Manifest => "manifest",
            BuilderCommand::Layout => "layout",
            BuilderCommand::Archive => "archive",
            BuilderCommand::Verify => "verify",
        }
    }
}

impl std::fmt::Display for BuilderCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for BuilderCommand {
    type Error = String;

    /// Any other name is refused with a message that lists the commands (the
    /// attrs file is named by whoever reads it).
    fn try_from(name: String) -> std::result::Result<Self, String> {
        if let Some(c) = Self::ALL.into_iter().find(|c| c.name() == name) {
            return Ok(c);
        }
        Err(format!(
            "unknown command {name:?}: expected layer, config, manifest, layout, archive or verify"
        ))
    }
}

/// Read the builder attrs of the running Nix build.
pub fn builder_attrs() -> Result<(PathBuf, BuilderAttrs)> {
    let path = attrs_path()?;
    let attrs: BuilderAttrs = crate::oci::json::read_json(&path)?;
    Ok((path, attrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_graph() {
        let text = "/nix/store/a-x\n\n1\n/nix/store/b-y\n/nix/store/b-y\n/nix/store/q.drv\n0\n";
        assert_eq!(
            parse_references_graph(text).unwrap(),
            vec![
                PathBuf::from("/nix/store/a-x"),
                PathBuf::from("/nix/store/b-y")
            ]
        );
        assert!(parse_references_graph("/nix/store/a\n\n2\n/nix/store/a\n").is_err());
        assert!(parse_references_graph("/nix/store/a\n\nx\n").is_err());
    }

    #[test]
    fn attrs_json() {
        let text = r#"{"closure":[{"path":"/nix/store/a","references":[]},"/nix/store/b"],"x":1}"#;
        assert_eq!(parse_attrs_json(text, "closure").unwrap().len(), 2);
        assert!(parse_attrs_json(text, "other")
            .unwrap_err()
            .contains("no attribute"));
        assert!(parse_attrs_json(text, "x")
            .unwrap_err()
            .contains("not a list"));
    }

    #[test]
    fn builder_command_names() {
        for c in BuilderCommand::ALL {
            assert_eq!(BuilderCommand::try_from(c.to_string()), Ok(c));
        }
        let err = BuilderCommand::try_from("image".to_owned()).unwrap_err();
        assert!(
            err.starts_with("unknown command \"image\": expected "),
            "{err}"
        );
        for c in BuilderCommand::ALL {
            assert!(err.contains(c.name()), "{err} lacks {c}");
        }
    }
}
