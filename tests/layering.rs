//! The layering of the code, as ARCHITECTURE.md's code map gives it:
//! every module, of the library (the command line, `cli/`, included) and
//! of the binary (`main.rs`), imports only modules of its own layer or the
//! layers below, and no two modules import each other, directly or round a
//! loop. Read from the source: outside a comment, a `crate::` path, a
//! `super::` path (the parent module), a `use` of a child module by its
//! name and, in the binary, a `nixoci::` path (the library) are imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first: the first path component of a module.
const LAYERS: &[&[&str]] = &[
    &["error", "progress", "oci"],
    &["layer"],
    &["spec", "nix", "nar", "nixdb", "accounts", "rootfs", "plan"],
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
        "sign",
        "fuzz",
    ],
    &["remote"],
    // The command line (`cli/`, a private module of the library but for
    // its one entry), and the binary, `main.rs`, which only calls it.
    &["cli", "main"],
];

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| {
            panic!("module {module} is in no layer: add it to LAYERS here and to the code map of ARCHITECTURE.md")
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

/// The source files of the library (`lib`) or of the binary (`main.rs`),
/// by module name; the binary's root is `main`.
fn sources(binary: bool) -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") || path == src.join("lib.rs") {
            continue;
        }
        let in_binary = path == src.join("main.rs");
        if in_binary == binary {
            let module = if path == src.join("main.rs") {
                "main".to_owned()
            } else {
                module_of(path, &src)
            };
            files.insert(module, std::fs::read_to_string(path).unwrap());
        }
    }
    files
}

/// The longest prefix of `path` (`a::b::C`) that is one of `modules`.
fn module_in(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .map(|k| parts[..k].join("::"))
        .find(|m| modules.contains(m))
}

/// Each path that follows `prefix` (`crate::`, `nixoci::`) on `line`.
fn paths_after<'a>(line: &'a str, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    line.match_indices(prefix)
        // `nixoci::` only where a path starts, not inside `other_nixoci::`.
        .filter(|(i, _)| {
            !line[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        })
        .map(move |(i, _)| {
            line[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect()
        })
}

/// Every module of the library and of the binary, and the modules it
/// imports: the library's modules import each other through `crate::`, and
/// the binary imports the library's through `nixoci::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let library = sources(false);
    let binary = sources(true);
    let library_modules: BTreeSet<String> = library.keys().cloned().collect();
    let binary_modules: BTreeSet<String> = binary.keys().cloned().collect();
    assert!(
        library_modules.is_disjoint(&binary_modules),
        "a binary module has a library module's name"
    );
    let mut out = BTreeMap::new();
    for (files, own, is_binary) in [
        (&library, &library_modules, false),
        (&binary, &binary_modules, true),
    ] {
        for (module, text) in files {
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
                        if own.contains(&child) {
                            deps.insert(child);
                        }
                    }
                }
                for path in paths_after(&line, "crate::") {
                    if let Some(dep) = module_in(&path, own) {
                        if dep != *module {
                            deps.insert(dep);
                        }
                    }
                }
                if is_binary {
                    for path in paths_after(&line, "nixoci::") {
                        if let Some(dep) = module_in(&path, &library_modules) {
                            deps.insert(dep);
                        }
                    }
                }
            }
            out.insert(module.clone(), deps);
        }
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

/// A loop of imports in `graph`, as the modules round it, if there is one.
fn find_loop(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
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
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_loop() {
    if let Some(cycle) = find_loop(&imports()) {
        panic!("import loop: {}", cycle.join(" -> "));
    }
}

/// The check reads what it means to: a module the layering forbids is
/// found, and so is a loop, in the library and from the binary (the
/// command line's `cli::local` and `cli::remote` once imported each other,
/// unseen).
#[test]
fn the_reader_sees_imports() {
    let graph = imports();
    assert!(graph["layout::reader"].contains("oci::descriptor"));
    assert!(
        graph["remote::push"].contains("layout::reader")
            || graph["remote::push"].contains("layout")
    );
    assert!(!graph["oci::digest"].iter().any(|d| !d.starts_with("oci")));
    // The command line's modules, among themselves and into the rest of
    // the library; the binary into the library.
    assert!(graph["cli::diff"].contains("cli::args"));
    assert!(graph["cli::local"].contains("inspect"));
    assert!(graph["cli::remote"].contains("remote"));
    assert!(graph["main"].contains("cli"));
    let mut looped = graph.clone();
    looped
        .get_mut("cli::args")
        .unwrap()
        .insert("cli::diff".to_owned());
    assert_eq!(
        find_loop(&looped),
        Some(vec![
            "cli::args".to_owned(),
            "cli::diff".to_owned(),
            "cli::args".to_owned()
        ])
    );
}
