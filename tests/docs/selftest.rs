//! The checks of tests/docs.rs checked on pages these tests write: each
//! kind of page the runner or the link check must refuse is refused, with
//! a message that names the page, the line and what to do.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use libtest_mimic::{Failed, Trial};

use crate::links;
use crate::session::{run_page, Counts, Shared};

/// Ok when `result` failed with a message holding every one of `needles`.
fn fails_with<T: std::fmt::Debug>(
    result: Result<T, String>,
    needles: &[&str],
) -> Result<(), Failed> {
    match result {
        Ok(v) => Err(format!("expected a failure, got {v:?}").into()),
        Err(msg) => match needles.iter().find(|n| !msg.contains(*n)) {
            Some(n) => Err(format!("no {n:?} in the message:\n{msg}").into()),
            None => Ok(()),
        },
    }
}

fn expect(cond: bool, what: String) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// The page ran `examples` examples and wrote `files` files.
fn ran(counts: Counts, examples: usize, files: usize) -> Result<(), Failed> {
    expect(
        counts == Counts { examples, files },
        format!("counted {counts:?}, not {examples} examples and {files} files"),
    )
}

type Check = fn(&Shared) -> Result<(), Failed>;

/// The tests of the checks.
pub fn trials(shared: Arc<Shared>) -> Vec<Trial> {
    let checks: [(&str, Check); 12] = [
        ("runner::refuses_a_language_it_cannot_run", unknown_language),
        ("runner::refuses_an_unknown_attribute", unknown_attribute),
        (
            "runner::shows_the_failing_block_and_its_output",
            failing_block,
        ),
        (
            "runner::keeps_files_between_blocks_and_gives_a_registry",
            session_gives,
        ),
        (
            "runner::refuses_a_nix_example_that_is_not_a_function_of_pkgs",
            nix_not_pkgs,
        ),
        ("runner::builds_a_nix_example_as_result", nix_result),
        (
            "runner::runs_nix_and_nix_build_against_the_standin",
            nix_commands,
        ),
        (
            "runner::fails_a_guide_page_without_an_example",
            guide_without_example,
        ),
        (
            "links::reports_every_broken_link_with_its_line",
            broken_links,
        ),
        (
            "links::reports_a_page_missing_from_the_summary",
            unlisted_page,
        ),
        ("book::check_fails_on_a_warning", book_warning),
        ("book::heading_ids_are_the_ones_mdbook_writes", book_ids),
    ];
    checks
        .into_iter()
        .map(|(name, check)| {
            let shared = shared.clone();
            Trial::test(name, move || check(&shared))
        })
        .collect()
}

fn unknown_language(shared: &Shared) -> Result<(), Failed> {
    let page = "Intro.\n\n```python example\nprint(1)\n```\n";
    fails_with(
        run_page(shared, "docs/x.md", page),
        &[
            "docs/x.md:3:",
            "cannot run a `python example` block",
            "python file=NAME",
        ],
    )
}

fn unknown_attribute(shared: &Shared) -> Result<(), Failed> {
    let page = "```sh example\ntrue\n```\n\n```sh example ignore\ntrue\n```\n";
    fails_with(
        run_page(shared, "docs/x.md", page),
        &["docs/x.md:5:", "unknown attribute `ignore`", "`file=NAME`"],
    )
}

fn failing_block(shared: &Shared) -> Result<(), Failed> {
    let page = "# A page\n\n```sh example\necho first\n```\n\nText.\n\n- a list item:\n\n  ```sh example\n  echo to-stdout\n  echo to-stderr >&2\n  nixoci verify no-such-layout\n  echo never\n  ```\n";
    let result = run_page(shared, "docs/x.md", page);
    fails_with(
        result.clone(),
        &[
            "docs/x.md:11: the block failed",
            "```sh example\necho to-stdout\necho to-stderr >&2\nnixoci verify no-such-layout\necho never\n```",
            "stdout:\nto-stdout\n",
            "to-stderr\n",
            "no-such-layout",
        ],
    )?;
    expect(
        !result.unwrap_err().contains("never\n\n"),
        "the block ran on after its failing command".into(),
    )
}

fn session_gives(shared: &Shared) -> Result<(), Failed> {
    let page = "```json file=conf/spec.json\n{\"a\": 1}\n```\n\n```sh example\n\
test -f examples/hello/image.json\n\
grep -q '\"a\": 1' conf/spec.json\n\
X=1\n\
nixoci build examples/hello/image.json -o hello-image --quiet\n\
nixoci push hello-image $REGISTRY/hello:1 --quiet\n\
crane digest $REGISTRY/hello:1\n\
cargo run --release -- verify hello-image\n\
test \"$HOME\" != \"$(getent passwd \"$(id -un)\" | cut -d: -f6)\"\n\
```\n\n```sh example\ntest -z \"${X-}\"\ntest -d hello-image\n```\n";
    ran(run_page(shared, "docs/x.md", page)?, 2, 1)?;
    // $REGISTRY named only in a script that a later block runs.
    let page =
        "```sh file=list.sh\ncrane catalog $REGISTRY\n```\n\n```sh example\nbash list.sh\n```\n";
    run_page(shared, "docs/x.md", page)?;
    Ok(())
}

fn nix_not_pkgs(shared: &Shared) -> Result<(), Failed> {
    let page = "```nix example\n{ pkgs, app }: app\n```\n";
    fails_with(
        run_page(shared, "docs/x.md", page),
        &[
            "docs/x.md:1: the nix example did not build",
            "takes app without a default",
            "nix file=NAME.nix",
        ],
    )?;
    fails_with(
        run_page(
            shared,
            "docs/x.md",
            "```nix example\npkgs: pkgs.hello\n```\n",
        ),
        &["must be a function of { pkgs }"],
    )
}

fn nix_result(shared: &Shared) -> Result<(), Failed> {
    let page = "```nix file=service.nix\n{ pkgs, app }:\npkgs.ociImage {\n  name = \"svc\";\n  contents = [ pkgs.busybox app ];\n  \
symlinks = [ { path = \"/usr/bin/env\"; target = \"${pkgs.coreutils}/bin/env\"; } ];\n}\n```\n\n\
```nix example\n{ pkgs }: import ./service.nix { inherit pkgs; app = pkgs.hello; }\n```\n\n\
```sh example\nnixoci verify result\nnixoci unpack result rootfs\n\
test -x rootfs/bin/sh && test -x rootfs/bin/hello\n\
readlink rootfs/usr/bin/env | grep -q -- '-coreutils/bin/env$'\n```\n";
    ran(run_page(shared, "docs/x.md", page)?, 2, 1)
}

/// `nix build .#image` of a flake whose inputs name remote nixpkgs and
/// nixoci builds against the stand-in and this project; `nix-build`'s
/// `<nixpkgs>` is the stand-in with nixoci's overlay; both offline.
fn nix_commands(shared: &Shared) -> Result<(), Failed> {
    let page = "```nix file=flake.nix\n{\n  inputs.nixpkgs.url = \"github:NixOS/nixpkgs/nixos-unstable\";\n  \
inputs.nixoci.url = \"git+https://example.org/nixoci.git\";\n  inputs.nixoci.inputs.nixpkgs.follows = \"nixpkgs\";\n  \
outputs = { nixpkgs, nixoci, ... }: {\n    packages.x86_64-linux.image = nixoci.lib.x86_64-linux.ociImage {\n      \
name = \"flaky\";\n      contents = [ nixpkgs.legacyPackages.x86_64-linux.jq ];\n    };\n  };\n}\n```\n\n\
```sh example\nnix build .#image\nnixoci verify result\nreadlink result | grep -q -- -flaky$\n```\n\n\
```sh example\nrm result\nnix-build -E 'with import <nixpkgs> { }; ociImage { name = \"classic\"; contents = [ curl ]; }'\n\
readlink result | grep -q -- -classic$\nnixoci verify result\n```\n";
    ran(run_page(shared, "docs/x.md", page)?, 2, 1)
}

fn guide_without_example(shared: &Shared) -> Result<(), Failed> {
    let page =
        "# Guide page\n\n```json file=spec.json\n{}\n```\n\n```sh\nnixoci build spec.json\n```\n";
    fails_with(
        crate::page_verdict(shared, "docs/x.md", page, true),
        &[
            "docs/x.md is a guide page",
            "has no example",
            "`sh example`",
        ],
    )?;
    crate::page_verdict(shared, "docs/x.md", page, false)?;
    Ok(())
}

/// A tree of pages for the link checks.
fn write_pages(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = t.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    t
}

fn broken_links(_: &Shared) -> Result<(), Failed> {
    let t = write_pages(&[
        (
            "README.md",
            "# nixoci\n\n[ok](docs/a.md#the-x-command) [ok](docs/a.md#the-x-command-1)\n[gone](docs/gone.md)\n\n![logo](docs/logo.png) [web](https://example.org/x.md)\n",
        ),
        (
            "docs/a.md",
            "# The `x` command\n\n## The x command!\n\n[self](#no-such-heading)\n[up](../README.md#nixoci) [out](../../x.md)\n\n## Caf\u{e9}\u{301}\n[b](../b.md#b)\n",
        ),
        ("docs/b.md", "# B\n"),
    ]);
    let pages: Vec<PathBuf> = ["README.md", "docs/a.md", "docs/b.md"]
        .iter()
        .map(PathBuf::from)
        .collect();
    let problems = links::check(t.path(), &pages).join("\n");
    for needle in [
        "README.md:4: link `docs/gone.md` leads to docs/gone.md, which does not exist",
        "README.md:6: link `docs/logo.png` leads to docs/logo.png, which does not exist",
        "docs/a.md:5: link `#no-such-heading`: docs/a.md has no heading with the id `no-such-heading`",
        "docs/a.md:6: link `../../x.md` leads to ../x.md, which does not exist\n",
        "docs/a.md:9: link `../b.md#b` leads to b.md, which does not exist (did you mean `b.md`?)",
        "docs/a.md:8: heading `Caf\u{e9}\u{301}` gets the id `caf\u{e9}\u{301}` on GitHub but `caf\u{e9}` in mdBook",
    ] {
        expect(problems.contains(needle), format!("no {needle:?} in:\n{problems}"))?;
    }
    expect(
        problems.lines().count() == 6,
        format!("expected 6 problems, got:\n{problems}"),
    )
}

fn unlisted_page(_: &Shared) -> Result<(), Failed> {
    let t = write_pages(&[
        (
            "docs/SUMMARY.md",
            "# Summary\n\n[Intro](intro.md)\n\n# Guide\n\n- [A](a/a.md)\n",
        ),
        ("docs/intro.md", "# Intro\n"),
        ("docs/a/a.md", "# A\n"),
        ("docs/a/b.md", "# B\n"),
    ]);
    let problems = links::unlisted(t.path(), Path::new("docs"));
    expect(
        problems
            == ["docs/a/b.md: not in docs/SUMMARY.md: add it there, or mdBook never builds it"],
        format!("{problems:?}"),
    )
}

fn mdbook() -> PathBuf {
    let mdbook = crate::repo().join(".tools/bin/mdbook");
    assert!(
        mdbook.is_file(),
        "this test needs mdBook ({}): run `bash .ci/install-deps`",
        mdbook.display()
    );
    mdbook
}

/// The ids the link check gives the headings of every page of docs/ are
/// the ones mdBook writes into the page's HTML, in order.
fn book_ids(_: &Shared) -> Result<(), Failed> {
    let out = tempfile::tempdir().unwrap();
    crate::common::run(
        Command::new(mdbook())
            .arg("build")
            .arg(crate::repo().join("docs"))
            .arg("-d")
            .arg(out.path()),
    );
    let mut problems = Vec::new();
    for page in crate::pages_under(crate::repo(), Path::new("docs")) {
        let rel = page.strip_prefix("docs").unwrap();
        if rel == Path::new("SUMMARY.md") {
            continue;
        }
        let text = fs::read_to_string(crate::repo().join(&page)).unwrap();
        let mut used = std::collections::HashSet::new();
        let ours: Vec<String> = crate::markdown::headings(&text)
            .into_iter()
            .map(|h| {
                h.explicit_id.unwrap_or_else(|| {
                    crate::markdown::unique(crate::markdown::mdbook_id(&h.text), &mut used)
                })
            })
            .collect();
        let html = fs::read_to_string(out.path().join(rel.with_extension("html")))
            .map_err(|e| format!("no HTML for {}: {e}", page.display()))?;
        let theirs: Vec<String> = html
            .split("<h")
            .skip(1)
            .filter(|s| s.chars().next().is_some_and(|c| ('1'..='6').contains(&c)))
            .filter_map(|s| s[1..].strip_prefix(" id=\""))
            .filter_map(|s| s.split('"').next())
            .map(str::to_owned)
            .collect();
        if ours != theirs {
            problems.push(format!(
                "{}: ours {ours:?}, mdBook's {theirs:?}",
                page.display()
            ));
        }
    }
    expect(problems.is_empty(), problems.join("\n"))
}

/// `.ci/book DIR` fails on a page mdBook warns about (an HTML tag left
/// open), and passes on the same book without it.
fn book_warning(_: &Shared) -> Result<(), Failed> {
    mdbook();
    let t = write_pages(&[
        ("docs/book.toml", "[book]\ntitle = \"t\"\nsrc = \".\"\n\n[build]\nbuild-dir = \"../out\"\ncreate-missing = false\n"),
        ("docs/SUMMARY.md", "# Summary\n\n[Intro](intro.md)\n"),
        ("docs/intro.md", "# Intro\n\nA digest, sha256:<hex>, here.\n"),
    ]);
    let book = |dir: &Path| {
        Command::new("bash")
            .arg(crate::repo().join(".ci/book"))
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = book(&t.path().join("docs"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    expect(
        !out.status.success()
            && stderr.contains("unclosed HTML tag `<hex>`")
            && stderr.contains("book: mdBook warned"),
        format!("{}:\n{stderr}", out.status),
    )?;
    fs::write(
        t.path().join("docs/intro.md"),
        "# Intro\n\nA digest, `sha256:<hex>`, here.\n",
    )
    .unwrap();
    let out = book(&t.path().join("docs"));
    expect(
        out.status.success() && t.path().join("out/intro.html").is_file(),
        format!("{}:\n{}", out.status, String::from_utf8_lossy(&out.stderr)),
    )
}
