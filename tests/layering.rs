//! The layering of the code, as the README's "How the code is laid out"
//! gives it: every module imports only modules of its own layer or the
//! layers below, and no two modules import each other, directly or round a
//! loop. Read from the source: outside a comment, a `crate::` path, a
//! `super::` path (the parent module) and a `use` of a child module by its
//! name are imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first: the first path component of a module.
const LAYERS: &[&[&str]] = &[
    &["error", "progress", "oci"],
    &["layer"],
    &["spec", "nix", "nar", "rootfs", "plan"],
    &["documents"],
    &["layout"],
    &[
        "build",
        "base",
        "untar",
        "artifact",
        "verify",
        "inspect",
        "archive",
        "unpack",
        "diff",
        "sbom",
        "referrers",
        "fuzz",
    ],
    &["remote"],
];

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| {
            panic!("module {module} is in no layer: add it to LAYERS and the README")
        })
}

/// `src/a/b.rs` -> `a::b`; `src/a/mod.rs` -> `a`.
fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts.join("::")
}

/// Every library module and the modules it imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "rs")
            && !path.starts_with(src.join("cli"))
            && path != src.join("main.rs")
            && path != src.join("lib.rs")
        {
            files.insert(
                module_of(path, &src),
                std::fs::read_to_string(path).unwrap(),
            );
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut out = BTreeMap::new();
    for (module, text) in &files {
        // Unit tests may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let mut deps = BTreeSet::new();
        // `super::` is the parent module, written out.
        let parent = module
            .rsplit_once("::")
            .map_or("crate::".to_owned(), |(p, _)| format!("crate::{p}::"));
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let line = line.replace("super::", &parent);
            // A child module used by its own name (`use child::x;`).
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed
                .strip_prefix("pub use ")
                .or_else(|| trimmed.strip_prefix("use "))
            {
                if let Some((first, _)) = rest.split_once("::") {
                    let child = format!("{module}::{first}");
                    if modules.contains(&child) {
                        deps.insert(child);
                    }
                }
            }
            for (i, _) in line.match_indices("crate::") {
                let path: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
                // The longest prefix that is a module.
                if let Some(dep) = (1..=parts.len())
                    .rev()
                    .map(|k| parts[..k].join("::"))
                    .find(|m| modules.contains(m))
                {
                    if dep != *module {
                        deps.insert(dep);
                    }
                }
            }
        }
        out.insert(module.clone(), deps);
    }
    out
}

#[test]
fn no_module_imports_a_higher_layer() {
    let mut wrong = Vec::new();
    for (module, deps) in imports() {
        for dep in deps {
            if layer_of(&dep) > layer_of(&module) {
                wrong.push(format!("{module} imports {dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_loop() {
    let graph = imports();
    // Depth-first search; a module met again while on the stack closes a loop.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_owned());
        for d in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("import loop: {}", cycle.join(" -> "));
        }
    }
}

/// The check reads what it means to: a module the layering forbids is
/// found, and so is a loop.
#[test]
fn the_reader_sees_imports() {
    let graph = imports();
    assert!(graph["layout::reader"].contains("oci::descriptor"));
    assert!(
        graph["remote::push"].contains("layout::reader")
            || graph["remote::push"].contains("layout")
    );
    assert!(!graph["oci::digest"].iter().any(|d| !d.starts_with("oci")));
}
