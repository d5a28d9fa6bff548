//! The link check: every relative link and image of every page names a
//! file that exists and, with `#anchor`, a heading (or an HTML id) of that
//! page; every heading's id is the same on GitHub and in mdBook; every page
//! of `docs/` is in `docs/SUMMARY.md`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::markdown::{heading_ids, links, summary_entries};

/// Whether `dest` leaves the pages (a URL with a scheme, or `//host`).
fn is_external(dest: &str) -> bool {
    if dest.starts_with("//") {
        return true;
    }
    match dest.find(':') {
        Some(i) => {
            let scheme = &dest[..i];
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !dest[..i].contains('/')
        }
        None => false,
    }
}

/// `path` with `.` and `..` resolved lexically (the file need not exist).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Decode `%XX` escapes of a link's path (`my%20page.md`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// For a link from `page` to a missing `file`: the page of `pages` it
/// likely means (the one whose path ends as `file` does without its
/// leading `../`), written relative to `page`.
fn hint(page: &Path, file: &str, pages: &[PathBuf]) -> String {
    let wanted = Path::new(file.trim_start_matches("../").trim_start_matches("./"));
    let Some(found) = pages.iter().find(|p| p.ends_with(wanted)) else {
        return String::new();
    };
    let from: Vec<_> = page
        .parent()
        .unwrap_or(Path::new(""))
        .components()
        .collect();
    let to: Vec<_> = found.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    rel.extend(&to[common..]);
    format!(" (did you mean `{}`?)", rel.display())
}

/// Every broken link of `pages` (paths relative to `root`), each as
/// `PAGE:LINE: what is wrong`, and the headings whose ids differ between
/// GitHub and mdBook; empty when all is well.
pub fn check(root: &Path, pages: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids: HashMap<PathBuf, Option<HashSet<String>>> = HashMap::new();
    // A page's ids, read once (its headings whose ids differ between GitHub
    // and mdBook reported then); None when it cannot be read.
    let mut ids_of = |page: &Path, problems: &mut Vec<String>| -> Option<HashSet<String>> {
        ids.entry(page.to_owned())
            .or_insert_with(|| {
                let text = fs::read_to_string(root.join(page)).ok()?;
                let (ids, differ) = heading_ids(&text);
                for (line, what) in differ {
                    problems.push(format!("{}:{line}: {what}", page.display()));
                }
                Some(ids)
            })
            .clone()
    };
    for page in pages {
        let text = match fs::read_to_string(root.join(page)) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: cannot read it: {e}", page.display()));
                continue;
            }
        };
        ids_of(page, &mut problems);
        for link in links(&text) {
            if link.dest.is_empty() || is_external(&link.dest) {
                continue;
            }
            let (file, anchor) = match link.dest.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.dest.as_str(), None),
            };
            let file = file.split('?').next().unwrap_or("");
            let target = if file.is_empty() {
                page.clone()
            } else if file.starts_with('/') {
                problems.push(format!(
                    "{}:{}: link `{}` is absolute: write it relative to the page",
                    page.display(),
                    link.line,
                    link.dest
                ));
                continue;
            } else {
                normalise(
                    &page
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(percent_decode(file)),
                )
            };
            if target.starts_with("..") || !root.join(&target).exists() {
                problems.push(format!(
                    "{}:{}: link `{}` leads to {}, which does not exist{}",
                    page.display(),
                    link.line,
                    link.dest,
                    target.display(),
                    hint(page, file, pages)
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_none_or(|e| e != "md") {
                continue;
            }
            if let Some(ids) = ids_of(&target, &mut problems) {
                if !ids.contains(&percent_decode(anchor)) {
                    problems.push(format!(
                        "{}:{}: link `{}`: {} has no heading with the id `{anchor}`",
                        page.display(),
                        link.line,
                        link.dest,
                        target.display()
                    ));
                }
            }
        }
    }
    problems
}

/// The pages under `docs` (relative to `root`) that `docs/SUMMARY.md`
/// does not list, each as a problem.
pub fn unlisted(root: &Path, docs: &Path) -> Vec<String> {
    let summary = docs.join("SUMMARY.md");
    let text = match fs::read_to_string(root.join(&summary)) {
        Ok(t) => t,
        Err(e) => return vec![format!("{}: cannot read it: {e}", summary.display())],
    };
    let listed: BTreeSet<PathBuf> = summary_entries(&text)
        .into_iter()
        .map(|(_, dest)| normalise(&docs.join(percent_decode(&dest))))
        .collect();
    let mut problems = Vec::new();
    for page in crate::pages_under(root, docs) {
        if page != summary && !listed.contains(&page) {
            problems.push(format!(
                "{}: not in {}: add it there, or mdBook never builds it",
                page.display(),
                summary.display()
            ));
        }
    }
    problems
}
