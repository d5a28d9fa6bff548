//! The documentation the command line carries: the shell completions
//! (`nixoci completions`), the man pages (`nixoci manpages`) and the
//! examples at the end of `--help`, checked with the real shells, groff and
//! man, and the examples run as written against the bundled example and a
//! registry 2.8 (issue 26: a renamed flag fails these tests, not the user).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{Registry, Setup};
use common::*;
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn nixoci_version_prints_the_crate_version_0_2_0() {
    let cargo =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert_eq!(version, "0.2.0");
    let out = run(nixoci().arg("--version"));
    assert_eq!(text(&out.stdout), format!("nixoci {version}\n"));
}

/// The commands `nixoci [PARENT] --help` lists (the help command aside).
fn commands_of(parent: &[&str]) -> Vec<String> {
    let help = text(&run(nixoci().args(parent).arg("--help")).stdout);
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command, as its path below `nixoci` (`["artifact", "push"]`).
fn all_commands() -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for name in commands_of(&[]) {
        let subs = commands_of(&[&name]);
        all.push(vec![name.clone()]);
        all.extend(subs.into_iter().map(|s| vec![name.clone(), s]));
    }
    assert!(all.len() > 25, "too few commands read from --help: {all:?}");
    all
}

/// The example command lines at the end of `nixoci PATH --help`.
fn help_examples(path: &[String]) -> Vec<String> {
    let help = text(&run(nixoci().args(path).arg("--help")).stdout);
    help.lines()
        .skip_while(|l| *l != "Examples:")
        .filter_map(|l| l.trim_start().strip_prefix("$ "))
        .map(str::to_owned)
        .collect()
}

fn completion_script(shell: &str, dir: &Path) -> PathBuf {
    let out = run(nixoci().args(["completions", shell]));
    assert!(!out.stdout.is_empty(), "empty {shell} completion script");
    let file = dir.join(format!("nixoci.{shell}"));
    fs::write(&file, &out.stdout).unwrap();
    file
}

/// What bash's completion function of `script` offers for the words
/// typed, the last being completed (a scripted session: COMP_WORDS and
/// COMP_CWORD set as readline sets them, then the function `complete`
/// registered for nixoci called; it fills COMPREPLY with compgen).
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let session = format!(
        r#"source "$1"
func=$(complete -p nixoci | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[ -n "$func" ] || {{ echo "no completion function registered for nixoci" >&2; exit 1; }}
COMP_WORDS=({line}); COMP_CWORD={cword}; COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}
"$func" nixoci "{cur}" "{prev}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        cword = words.len() - 1,
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = run(Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &session, "bash"])
        .arg(script));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completion_parses_and_completes_commands_and_options() {
    require("bash");
    let t = tempfile::tempdir().unwrap();
    let script = completion_script("bash", t.path());
    run(Command::new("bash").arg("-n").arg(&script));

    let offered = bash_complete(&script, &["nixoci", "pu"]);
    assert_eq!(offered, ["push", "pull"], "nixoci pu<TAB>");
    let offered = bash_complete(&script, &["nixoci", "verify-s"]);
    assert_eq!(offered, ["verify-signature"], "nixoci verify-s<TAB>");
    let offered = bash_complete(&script, &["nixoci", "push", "--sig"]);
    assert_eq!(offered, ["--sign-key"], "nixoci push --sig<TAB>");
    // A nested command and an option of it.
    let offered = bash_complete(&script, &["nixoci", "artifact", "pu"]);
    assert_eq!(offered, ["push", "pull"], "nixoci artifact pu<TAB>");
    let offered = bash_complete(&script, &["nixoci", "artifact", "pull", "--over"]);
    assert_eq!(offered, ["--overwrite"], "nixoci artifact pull --over<TAB>");
    // Every command is offered after `nixoci `.
    let offered: BTreeSet<String> = bash_complete(&script, &["nixoci", "''"])
        .into_iter()
        .collect();
    for name in commands_of(&[]) {
        assert!(offered.contains(&name), "{name} not offered: {offered:?}");
    }
}

#[test]
fn zsh_and_fish_completions_parse_and_name_every_command() {
    require("zsh");
    require("fish");
    let t = tempfile::tempdir().unwrap();
    let zsh = completion_script("zsh", t.path());
    run(Command::new("zsh").arg("-n").arg(&zsh));
    let fish = completion_script("fish", t.path());
    run(Command::new("fish").arg("-n").arg(&fish));
    let zsh_text = fs::read_to_string(&zsh).unwrap();
    let fish_text = fs::read_to_string(&fish).unwrap();
    assert!(zsh_text.starts_with("#compdef nixoci"), "{zsh_text:.200}");
    for path in all_commands() {
        let name = path.last().unwrap();
        assert!(zsh_text.contains(&format!("'{name}:")), "zsh: no {path:?}");
        assert!(
            fish_text.contains(&format!("-a \"{name}\"")),
            "fish: no {path:?}"
        );
    }
    // fish completes from the script as it would at a prompt.
    let complete = |line: &str| {
        let out = run(Command::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg(format!("source {}; complete -C '{line}'", fish.display())));
        text(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(complete("nixoci pu"), ["pull", "push"]);
    assert_eq!(complete("nixoci push --sig"), ["--sign-key"]);
    assert_eq!(complete("nixoci artifact pu"), ["pull", "push"]);
    // elvish and powershell come with clap_complete.
    for shell in ["elvish", "powershell"] {
        let script = text(&run(nixoci().args(["completions", shell])).stdout);
        assert!(
            script.contains("verify-signature"),
            "{shell}: {script:.200}"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error_naming_the_shells() {
    let out = nixoci().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid value 'tcsh'")
            && err.contains("[possible values: bash, elvish, fish, powershell, zsh]"),
        "{err}"
    );
}

/// `man -l PAGE` as text (no pager: standard output is a pipe), with
/// groff's warnings on, and its standard error.
fn man(page: &Path) -> (String, String) {
    let out = Command::new("man")
        .args(["--warnings=w", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

/// The lines of a section of a page rendered by man, dedented, each run
/// of spaces (a justified line's) made one.
fn section(page: &str, name: &str) -> Vec<String> {
    page.lines()
        .skip_while(|l| *l != name)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn every_command_has_a_man_page_that_renders_without_warnings() {
    require("groff");
    require("man");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("man");
    let out = run(nixoci().args(["manpages", "--json", "-o"]).arg(&dir));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: BTreeSet<String> = report["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let files: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed, files);

    let mut wanted = vec![vec![]];
    wanted.extend(all_commands());
    let mut names = BTreeSet::new();
    for path in &wanted {
        let name = std::iter::once("nixoci".to_owned())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let file = dir.join(format!("{name}.1"));
        assert!(file.is_file(), "no man page for {path:?}: {files:?}");
        names.insert(format!("{name}.1"));

        let groff = Command::new("groff")
            .args(["-ww", "-man", "-Tutf8", "-z"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(groff.status.success());
        assert_eq!(text(&groff.stderr), "", "groff warns about {name}.1");
        let (page, stderr) = man(&file);
        assert_eq!(stderr, "", "man warns about {name}.1");

        // NAME: the page's own name, then what the command does.
        let title = section(&page, "NAME");
        assert!(
            title
                .first()
                .is_some_and(|l| l.starts_with(&format!("{name} - "))),
            "{name}.1 NAME: {title:?}"
        );
        // SEE ALSO names pages that exist: the parent's first.
        let see = section(&page, "SEE ALSO").join(" ");
        if !path.is_empty() {
            let parent = std::iter::once("nixoci")
                .chain(path[..path.len() - 1].iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("-");
            assert!(
                see.starts_with(&format!("{parent}(1)")),
                "{name}.1 SEE ALSO: {see}"
            );
        }
        for cited in see.split(", ").filter(|s| !s.is_empty()) {
            let cited = cited.trim().trim_end_matches("(1)");
            assert!(
                files.contains(&format!("{cited}.1")),
                "{name}.1 cites {cited}(1)"
            );
        }
        // The examples of --help are the page's EXAMPLES.
        let examples = help_examples(path);
        let section = section(&page, "EXAMPLES");
        for e in &examples {
            assert!(
                section.contains(&format!("$ {e}")),
                "{name}.1 EXAMPLES lacks {e}: {section:?}"
            );
        }
        if examples.is_empty() {
            assert!(section.is_empty(), "{name}.1: {section:?}");
        }
    }
    assert_eq!(names, files, "pages for no command");

    let (top, _) = man(&dir.join("nixoci.1"));
    assert!(top.contains("nixoci-push(1)"), "{top}");
    assert_eq!(
        section(&top, "VERSION"),
        [format!("v{}", env!("CARGO_PKG_VERSION"))]
    );
}

#[test]
fn manpages_writes_a_new_directory_or_replaces_one_with_force() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("man");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("mine"), "kept").unwrap();
    let err = run_fail(nixoci().args(["manpages", "-o"]).arg(&dir));
    assert!(
        err.contains(&dir.display().to_string()) && err.contains("--force"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(dir.join("mine")).unwrap(), "kept");
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        1,
        "a temporary was left"
    );

    let out = run(nixoci().args(["manpages", "-q", "--force", "-o"]).arg(&dir));
    assert!(out.stdout.is_empty());
    assert!(!dir.join("mine").exists());
    assert!(dir.join("nixoci-artifact-push.1").is_file());

    let out = run(nixoci()
        .args(["manpages", "-o"])
        .arg(t.path().join("new/man")));
    let said = text(&out.stdout);
    assert!(said.contains("man pages (nixoci.1"), "{said}");
    // The pages depend on the definitions alone: no date, the same bytes.
    for e in fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let again = t.path().join("new/man").join(e.file_name());
        assert_eq!(fs::read(e.path()).unwrap(), fs::read(again).unwrap());
    }
}

/// The commands that take a spec or a reference: each has an example.
const TAKE_A_SPEC_OR_REFERENCE: &[&str] = &[
    "build",
    "layer",
    "layers",
    "config",
    "manifest",
    "layout",
    "verify",
    "inspect",
    "push",
    "pull",
    "prefetch",
    "tag",
    "exists",
    "artifact push",
    "artifact pull",
    "attach",
    "referrers",
    "sign",
    "verify-signature",
    "diff",
    "archive",
    "unpack",
    "plan",
    "sbom",
];

#[test]
fn help_shows_examples_of_every_command_that_takes_a_spec_or_reference() {
    for cmd in TAKE_A_SPEC_OR_REFERENCE {
        let path: Vec<String> = cmd.split(' ').map(str::to_owned).collect();
        for flag in ["--help", "-h"] {
            let help = text(&run(nixoci().args(&path).arg(flag)).stdout);
            assert!(
                help.contains("\nExamples:\n"),
                "nixoci {cmd} {flag}:\n{help}"
            );
        }
        let examples = help_examples(&path);
        assert!(
            examples
                .iter()
                .any(|e| e.starts_with(&format!("nixoci {cmd} "))),
            "nixoci {cmd}: no example of it: {examples:?}"
        );
    }
}

/// The order the examples run in: each uses what those before it made.
const RUN_ORDER: &[&str] = &[
    "generate-key-pair",
    "build",
    "verify",
    "layer",
    "config",
    "manifest",
    "layout",
    "plan",
    "sbom",
    "archive",
    "unpack",
    "push",
    "inspect",
    "tag",
    "exists",
    "pull",
    "prefetch",
    "attach",
    "referrers",
    "artifact push",
    "artifact pull",
    "sign",
    "verify-signature",
    "diff",
    "completions",
    "manpages",
];

/// Examples that cannot run here, and why.
const NOT_RUN: &[(&str, &str)] = &[(
    "layers",
    "its plan names store paths that must be in the Nix store (tests/layers.rs covers it)",
)];

#[test]
fn the_examples_of_the_help_texts_run_as_written() {
    require("bash");
    require("man");
    let registry = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    // A checkout's examples/ (the commands run from the repository's root).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(&repo.join("examples"), &work.join("examples"));

    let bin = Path::new(env!("CARGO_BIN_EXE_nixoci")).parent().unwrap();
    let search_path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut with_examples = BTreeSet::new();
    for path in all_commands() {
        if !help_examples(&path).is_empty() {
            with_examples.insert(path.join(" "));
        }
    }
    let planned: BTreeSet<String> = RUN_ORDER
        .iter()
        .chain(NOT_RUN.iter().map(|(c, _)| c))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(with_examples, planned, "a command's examples are not run");

    let mut ran = 0;
    for cmd in RUN_ORDER {
        let path: Vec<String> = cmd.split(' ').map(str::to_owned).collect();
        for line in help_examples(&path) {
            let line = line.replace("localhost:5000", &format!("localhost:{}", registry.port));
            let mut bash = Command::new("bash");
            // As nixoci_in runs nixoci: no credential or cache of the
            // machine is read.
            let out = private_env(&mut bash, &home)
                .args(["--norc", "--noprofile", "-e", "-o", "pipefail", "-c", &line])
                .current_dir(&work)
                .env("PATH", &search_path)
                .env("COSIGN_PASSWORD", "an example passphrase")
                .env("MANWIDTH", "80")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "the example of nixoci {cmd} failed ({}): {line}\nstdout: {}\nstderr: {}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            );
            ran += 1;
        }
    }
    eprintln!("ran {ran} examples of {} commands", RUN_ORDER.len());
    assert!(ran >= RUN_ORDER.len());

    // What the examples made is what they say.
    let verify = |dir: &str| run(nixoci().arg("verify").arg(work.join(dir)));
    for dir in ["hello", "hello-layout", "hello-pulled"] {
        verify(dir);
    }
    assert_eq!(
        manifest_digest(&work.join("hello")),
        manifest_digest(&work.join("hello-layout")),
        "nixoci layout and nixoci build made different images"
    );
    assert_eq!(
        manifest_digest(&work.join("hello")),
        manifest_digest(&work.join("hello-pulled"))
    );
    assert!(work.join("rootfs/usr/bin/hello").is_file());
    assert!(work.join("files/app/hello.sh").is_file());
    assert!(work.join("hello.tar").is_file());
    assert!(work.join("_nixoci").is_file());
    assert!(work.join("man/nixoci-push.1").is_file());
    for file in ["cosign.key", "cosign.pub", "hello.spdx.json"] {
        assert!(work.join(file).is_file(), "{file}");
    }
}

/// `nixoci --help` points to the examples and to the guide, which exists.
#[test]
fn top_level_help_points_to_the_examples_and_the_guide() {
    let help = text(&run(nixoci().arg("--help")).stdout);
    for needle in ["COMMAND --help", "nixoci manpages", "docs/SUMMARY.md"] {
        assert!(help.contains(needle), "no {needle:?} in:\n{help}");
    }
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/SUMMARY.md")
        .is_file());
}
