//! The guide's examples and links (docs/tests.md, "Examples in the
//! guide"). One test per page, `examples::PAGE`, runs the page's marked
//! blocks in a session of its own (tests/docs/session.rs) and says how many
//! it ran; a guide page (under `# Guide` in docs/SUMMARY.md) without an
//! example fails. `links` checks every relative link and image of every
//! page, and `summary` that docs/SUMMARY.md lists every page of docs/.
//! The `runner::` and `links::` tests check the checks on pages they write.
//! Pages are README.md, ARCHITECTURE.md, CHANGELOG.md and docs/**/*.md.
//!
//! `cargo test --test docs -- registries` runs one page.

mod common;
#[path = "docs/links.rs"]
mod links;
#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/selftest.rs"]
mod selftest;
#[path = "docs/session.rs"]
mod session;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, Trial};
use session::{run_page, Counts, Shared};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files under `dir` (relative to `root`), as paths relative
/// to `root`, sorted; hidden directories are left out.
pub fn pages_under(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root.join(dir))
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "md"))
        .map(|e| e.path().strip_prefix(root).unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// Every page: README.md, ARCHITECTURE.md, CHANGELOG.md (those present)
/// and docs/**/*.md.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| root.join(p).is_file())
        .collect();
    out.extend(pages_under(root, Path::new("docs")));
    out
}

/// The pages listed under `# Guide` in `docs/SUMMARY.md` (relative to
/// `root`).
fn guide_pages(root: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string(root.join("docs/SUMMARY.md")).unwrap_or_default();
    markdown::summary_entries(&text)
        .into_iter()
        .filter(|(part, _)| part.trim() == "Guide")
        .map(|(_, dest)| Path::new("docs").join(dest))
        .collect()
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The page test's verdict: the session's counts, and a guide page must
/// have run at least one example.
pub fn page_verdict(
    shared: &Shared,
    page: &str,
    text: &str,
    guide: bool,
) -> Result<Counts, String> {
    let counts = run_page(shared, page, text)?;
    if guide && counts.examples == 0 {
        return Err(format!(
            "{page} is a guide page (listed under # Guide in docs/SUMMARY.md) but has no example: mark at least one block `sh example` or `nix example` (docs/tests.md, \"Examples in the guide\")"
        ));
    }
    Ok(counts)
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let root = repo();
    let shared = Arc::new(Shared::new());
    let ran: Arc<Mutex<BTreeMap<String, Counts>>> = Arc::default();
    let guide = guide_pages(root);
    let all = pages(root);
    let mut trials = Vec::new();
    for page in &all {
        let name = page.display().to_string();
        let is_guide = guide.contains(page);
        let (shared, ran, path) = (shared.clone(), ran.clone(), root.join(page));
        trials.push(Trial::test(format!("examples::{name}"), move || {
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let counts = page_verdict(&shared, &name, &text, is_guide)?;
            println!(
                "{name}: ran {} and wrote {}",
                plural(counts.examples, "example"),
                plural(counts.files, "file")
            );
            ran.lock().unwrap().insert(name, counts);
            Ok(())
        }));
    }
    let pages_for_links = all.clone();
    trials.push(Trial::test("links", move || {
        let problems = links::check(repo(), &pages_for_links);
        failed_if(problems, "broken links")
    }));
    trials.push(Trial::test("summary", || {
        failed_if(
            links::unlisted(repo(), Path::new("docs")),
            "pages missing from docs/SUMMARY.md",
        )
    }));
    trials.extend(selftest::trials(shared.clone()));
    let conclusion = libtest_mimic::run(&args, trials);
    let ran = ran.lock().unwrap();
    if !ran.is_empty() {
        let examples: usize = ran.values().map(|c| c.examples).sum();
        let files: usize = ran.values().map(|c| c.files).sum();
        println!(
            "docs: ran {} and wrote {} on {}",
            plural(examples, "example"),
            plural(files, "file"),
            plural(ran.len(), "page")
        );
    }
    drop(ran);
    drop(shared);
    conclusion.exit_code()
}

/// Ok when `problems` is empty, else a failure listing them all.
fn failed_if(problems: Vec<String>, what: &str) -> Result<(), Failed> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} {what}:\n{}", problems.len(), problems.join("\n")).into())
    }
}
