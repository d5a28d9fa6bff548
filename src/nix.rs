//! What Nix hands a builder: closure files in the two forms Nix writes them.
//!
//! - `exportReferencesGraph = [ "graph" drv ]` (plain): for each path, the
//!   lines `path`, `deriver` (may be empty), `N`, then N reference lines.
//! - With `__structuredAttrs = true`, `.attrs.json` holds the attribute as a
//!   list of `{path, references, narSize, narHash, closureSize}` objects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// The store directory: `$NIX_STORE_DIR` (Nix's own setting), else
/// `$NIX_STORE` (what Nix gives a builder), else `/nix/store`: the same
/// order as the rule that nothing is written in the store
/// (`layout::outputs`).
pub fn store_dir() -> PathBuf {
    ["NIX_STORE_DIR", "NIX_STORE"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/nix/store"))
}

use crate::layer::tree::{BASE32, HASH_LEN};

/// `Err` with the reason when `path` is not a store path in `store`, as
/// Nix makes them: `STORE/HASH-NAME`, `HASH` 32 characters of Nix's
/// base-32 alphabet, `NAME` 1 to 211 of `A-Z a-z 0-9 + - . _ ? =`, not
/// starting with `.`. The message quotes the path (cut when long, control
/// characters escaped) and says what was expected.
pub fn check_store_path(path: &str, store: &Path) -> std::result::Result<(), String> {
    let store_text = store.to_string_lossy();
    let store_text = store_text.trim_end_matches('/');
    let reason = match path
        .strip_prefix(store_text)
        .and_then(|r| r.strip_prefix('/'))
    {
        None => format!("not under {store_text}"),
        Some(base) if base.contains('/') => "a path inside a store path, not a store path".into(),
        Some(base) => {
            let b = base.as_bytes();
            let name = base.get(HASH_LEN + 1..).unwrap_or("");
            if b.len() < HASH_LEN || !b[..HASH_LEN].iter().all(|c| BASE32.contains(c)) {
                "no hash part of 32 base-32 characters".into()
            } else if b.get(HASH_LEN) != Some(&b'-') || name.is_empty() {
                "no name after the hash part".into()
            } else if name.len() > 211 {
                "a name longer than 211 characters".into()
            } else if name.starts_with('.') {
                "a name starting with '.'".into()
            } else if let Some(c) = name
                .chars()
                .find(|c| !c.is_ascii_alphanumeric() && !"+-._?=".contains(*c))
            {
                format!("{c:?} in its name")
            } else {
                return Ok(());
            }
        }
    };
    Err(format!(
        "{} is not a store path ({reason}): expected {store_text}/<32 base-32 characters>-<name>",
        quoted(path)
    ))
}

/// `text` quoted for a message: control characters escaped, and cut after
/// 80 characters (a file's whole content is no name).
pub fn quoted(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &text[..end], text.len()),
    }
}

/// Write `path` as a JSON string literal (quotes included) that every JSON
/// reader reads as `path`, but whose bytes do not hold the hash part of the
/// store path it names, so that Nix does not record that path as a
/// reference of the output holding it.
///
/// This is how the building blocks write `storePaths` (a decision): Nix
/// scans a build's output for the 32-character hash part of every store
/// path among the build's inputs, and records each one it finds as a
/// runtime reference. A layer's `layer.json` lists every store path the
/// layer packs; written plainly, the layer output (and every config,
/// manifest or layout output that copies that list) would keep the whole
/// uncompressed closure alive and `nix copy` would carry it, although the
/// layer blob already holds those bytes. So the last character of each
/// hash part is written as a `\u00XX` escape
/// (`"/nix/store/0c2k…z\u0037-app"` for `…z7-app`). serde, jq and Nix's
/// `builtins.fromJSON` read the same path; the bytes hold at most 31
/// base-32 characters in a row, between `/` and `\`, which the scanner
/// cannot match. It is the last character because an escape ends with the
/// hex digits of the character: escaping the first character of a hash
/// starting with a digit (`0` is `\u0030`) would leave the whole hash in
/// the bytes.
///
/// Any component of `path` that starts with 32 base-32 characters followed
/// by `-` or nothing is taken as a hash part, whatever the store directory
/// (`$NIX_STORE`) is; everything else is written as `serde_json` writes it.
pub fn write_unscanned_path(path: &str, out: &mut Vec<u8>) {
    let plain = |s: &str, out: &mut Vec<u8>| {
        let literal = serde_json::to_vec(s).expect("a string serialises");
        out.extend(&literal[1..literal.len() - 1]);
    };
    out.push(b'"');
    for (i, component) in path.split('/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        let bytes = component.as_bytes();
        let is_hash = bytes.len() >= HASH_LEN
            && bytes[..HASH_LEN].iter().all(|c| BASE32.contains(c))
            && bytes.get(HASH_LEN).is_none_or(|c| *c == b'-');
        if is_hash {
            plain(&component[..HASH_LEN - 1], out);
            out.extend(format!("\\u{:04x}", bytes[HASH_LEN - 1]).as_bytes());
            plain(&component[HASH_LEN..], out);
        } else {
            plain(component, out);
        }
    }
    out.push(b'"');
}

/// One store path of a closure file, and its references when the file
/// gives them (both of Nix's forms do; a bare list of paths does not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosureEntry {
    pub path: PathBuf,
    pub references: Option<Vec<PathBuf>>,
}

/// Read the store paths listed in a closure file (either form; a file whose
/// first non-blank character is `{` is taken as `.attrs.json`).
pub fn read_closure_file(path: &Path, attr: Option<&str>) -> Result<Vec<ClosureEntry>> {
    let text = String::from_utf8(crate::oci::json::read_regular(path)?).map_err(|_| {
        Error::Invalid(format!(
            "{}: not UTF-8 text, as a closure file is",
            path.display()
        ))
    })?;
    let entries = if text.trim_start().starts_with('{') {
        parse_attrs_json(&text, attr.unwrap_or("closure"))
    } else if let Some(a) = attr {
        Err(format!(
            "\"attr\": {a:?} given, but this is not a JSON (.attrs.json) file"
        ))
    } else {
        parse_references_graph(&text)
    }
    .map_err(|m| Error::spec(path, m))?;
    for e in &entries {
        if !e.path.is_absolute() {
            return Err(Error::spec(
                path,
                format!("closure path {} is not absolute", e.path.display()),
            ));
        }
    }
    Ok(entries)
}

/// The store paths of `copied` that the image needs no copy of at their
/// own path: sources whose files a layer copies to a destination (not
/// linked, not at their own path), which refer neither to themselves nor
/// are referred to by another path of the closure. The copies carry what
/// such a path refers to, so its references stay; the path itself would
/// be its files a second time. When an entry of the closure has no
/// references (a bare list of paths), nothing is left out.
pub fn copied_only(entries: &[ClosureEntry], copied: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let mut left_out = BTreeSet::new();
    if copied.is_empty() || entries.iter().any(|e| e.references.is_none()) {
        return left_out;
    }
    let mut referred = BTreeSet::new();
    for e in entries {
        for r in e.references.iter().flatten() {
            // A path referring to itself counts: its files name its own
            // store path, which the copies then name too.
            referred.insert(r.as_path());
        }
    }
    for e in entries {
        if copied.contains(&e.path) && !referred.contains(e.path.as_path()) {
            left_out.insert(e.path.clone());
        }
    }
    left_out
}

pub(crate) fn parse_attrs_json(text: &str, attr: &str) -> Result<Vec<ClosureEntry>, String> {
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
            Value::String(s) => Ok(ClosureEntry {
                path: PathBuf::from(s),
                references: None,
            }),
            Value::Object(o) => {
                let path = o
                    .get("path")
                    .and_then(Value::as_str)
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("an entry of {attr:?} has no \"path\" string"))?;
                let references = match o.get("references") {
                    None => None,
                    Some(Value::Array(refs)) => Some(
                        refs.iter()
                            .map(|r| r.as_str().map(PathBuf::from))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| {
                                format!(
                                    "the references of {} in {attr:?} are not all strings",
                                    path.display()
                                )
                            })?,
                    ),
                    Some(_) => {
                        return Err(format!(
                            "the references of {} in {attr:?} are not a list",
                            path.display()
                        ))
                    }
                };
                Ok(ClosureEntry { path, references })
            }
            _ => Err(format!(
                "an entry of {attr:?} is neither a path nor an object"
            )),
        })
        .collect()
}

pub(crate) fn parse_references_graph(text: &str) -> Result<Vec<ClosureEntry>, String> {
    let mut lines = text.lines().enumerate();
    let mut entries = Vec::new();
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
        let mut references = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let (_, r) = lines.next().ok_or_else(|| eof("references"))?;
            references.push(PathBuf::from(r));
        }
        entries.push(ClosureEntry {
            path: PathBuf::from(path),
            references: Some(references),
        });
    }
    Ok(entries)
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
    Layers,
    Config,
    Manifest,
    Layout,
    Archive,
    Verify,
    Script,
}

impl BuilderCommand {
    /// Every command, in the order an error message lists them.
    pub const ALL: [BuilderCommand; 8] = [
        BuilderCommand::Layer,
        BuilderCommand::Layers,
        BuilderCommand::Config,
        BuilderCommand::Manifest,
        BuilderCommand::Layout,
        BuilderCommand::Archive,
        BuilderCommand::Verify,
        BuilderCommand::Script,
    ];

    /// The name the attrs give it.
    pub fn name(self) -> &'static str {
        match self {
            BuilderCommand::Layer => "layer",
            BuilderCommand::Layers => "layers",
            BuilderCommand::Config => "config",
            BuilderCommand::Manifest => "manifest",
            BuilderCommand::Layout => "layout",
            BuilderCommand::Archive => "archive",
            BuilderCommand::Verify => "verify",
            BuilderCommand::Script => "script",
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
            "unknown command {name:?}: expected layer, layers, config, manifest, layout, archive, verify or script"
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

    /// The longest run of base-32 characters in `bytes`: Nix's reference
    /// scanner matches runs of 32.
    fn longest_base32_run(bytes: &[u8]) -> usize {
        bytes
            .split(|b| !BASE32.contains(b))
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn unscanned_paths_read_back_and_hold_no_hash() {
        let paths = [
            // A hash starting with a digit: `\u0030` ends in `0`.
            "/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162zl-app",
            "/nix/store/yhkq1r9p9bl3hrww5wi8g4w6qqyf5j1m-app-1.0",
            "/nix/store/39w2gs43qymwrwl84mprnh7vrpnffr30",
            "/nix/store/39w2gs43qymwrwl84mprnh7vrpnffr3z-dep/bin/x y\"q\u{e9}",
            // Another store directory.
            "/gnu/store/8hzbz17vcmw97w1wpqpadxhfkj7crcps-busybox",
        ];
        for p in paths {
            let mut out = Vec::new();
            write_unscanned_path(p, &mut out);
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), p);
            assert!(
                longest_base32_run(&out) < HASH_LEN,
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
        let mut out = Vec::new();
        write_unscanned_path("/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162zl-app", &mut out);
        assert_eq!(
            out,
            br#""/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162z\u006c-app""#
        );
        // Not a hash part (too short, an `e`, no `-` after it): as serde_json
        // writes it.
        for p in [
            "/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162z-app",
            "/nix/store/ec2kvl9a1jfnv7krcvsj5gj3i95162zl-app",
            "/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162zlx",
            "relative/\"path\"",
            "",
        ] {
            let mut out = Vec::new();
            write_unscanned_path(p, &mut out);
            assert_eq!(out, serde_json::to_vec(p).unwrap(), "{p}");
        }
    }

    #[test]
    fn references_graph() {
        let text = "/nix/store/a-x\n\n1\n/nix/store/b-y\n/nix/store/b-y\n/nix/store/q.drv\n0\n";
        let paths: Vec<PathBuf> = parse_references_graph(text)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            vec![
                PathBuf::from("/nix/store/a-x"),
                PathBuf::from("/nix/store/b-y")
            ]
        );
        let e = parse_references_graph("/nix/store/a\n\n2\n/nix/store/a\n").unwrap_err();
        assert_eq!(e, "line 1: file ends before the references of /nix/store/a");
        let e = parse_references_graph("/nix/store/a\n\nx\n").unwrap_err();
        assert_eq!(e, "line 3: expected a reference count, found \"x\"");
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

    /// A store path whose files are copied elsewhere is left out unless it
    /// or another path of the closure refers to it; its references stay.
    #[test]
    fn copied_only_keeps_references_and_what_is_referred_to() {
        let e = |p: &str, refs: &[&str]| ClosureEntry {
            path: PathBuf::from(p),
            references: Some(refs.iter().map(PathBuf::from).collect()),
        };
        let graph = [
            e("/s/app", &["/s/dep"]),
            e("/s/dep", &[]),
            e("/s/self", &["/s/self"]),
            e("/s/lib", &[]),
            e("/s/user", &["/s/lib"]),
        ];
        let copied: BTreeSet<PathBuf> = ["/s/app", "/s/self", "/s/lib", "/s/dep"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            copied_only(&graph, &copied),
            BTreeSet::from([PathBuf::from("/s/app")])
        );
        let mut bare = graph.to_vec();
        bare[1].references = None;
        assert!(copied_only(&bare, &copied).is_empty());
        let text = r#"{"c":[{"path":"/s/app","references":["/s/dep"]},{"path":"/s/dep","references":[]}]}"#;
        let read = parse_attrs_json(text, "c").unwrap();
        assert_eq!(read, graph[..2].to_vec());
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
