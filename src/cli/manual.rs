//! `nixoci completions` and `nixoci manpages`: the shell completion
//! scripts (`clap_complete`) and the man pages (`clap_mangen`), both
//! generated from the clap definitions that also give `--help`, so that
//! neither drifts from the commands. The man pages carry each command's
//! examples (`examples`) and name related pages under SEE ALSO.
//!
//! The command tree is handed in by the caller (`cli`), which owns it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Command};
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;
use serde::Serialize;

use super::examples;
use super::output::OutputArgs;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `nixoci completions SHELL`: the script on standard output.
pub fn completions(a: &CompletionsArgs, mut cmd: Command) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "nixoci", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// The directory to write nixoci.1 and a page per command into,
    /// nixoci-COMMAND.1 (it must not exist unless --force).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Replace the directory if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    print: OutputArgs,
}

/// What `nixoci manpages` wrote.
#[derive(Debug, Serialize)]
struct Report {
    /// The directory.
    directory: PathBuf,
    /// The file names of the pages, in the order of the command tree.
    pages: Vec<String>,
}

/// `nixoci manpages -o DIR`: every page written into a temporary sibling
/// of DIR, renamed into place once all are there.
pub fn manpages(a: &ManpagesArgs, cmd: Command) -> Result<ExitCode> {
    let pages = pages(cmd)?;
    let staging = crate::layout::Staging::empty(&a.output, a.force, &[])?;
    for (name, bytes) in &pages {
        staging.write_file(name, bytes)?;
    }
    staging.commit()?;
    let report = Report {
        directory: a.output.clone(),
        pages: pages.into_iter().map(|(name, _)| name).collect(),
    };
    a.print.mode().report(&report, |out| {
        writeln!(
            out,
            "{}: {} man pages ({}, ...)",
            report.directory.display(),
            report.pages.len(),
            report.pages.first().map_or("", String::as_str)
        )
    })
}

/// Every page, by file name: `nixoci.1`, then one per command below it
/// (`nixoci-push.1`, `nixoci-artifact-push.1`), the help command aside.
fn pages(cmd: Command) -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut names = Vec::new();
    collect_names(&cmd, &mut names);
    let mut pages = Vec::new();
    render_tree(&cmd, &mut Vec::new(), None, &names, &mut pages)?;
    Ok(pages)
}

/// The page names (`nixoci-push`) of the command tree.
fn collect_names(cmd: &Command, names: &mut Vec<String>) {
    names.push(page_name(cmd).to_owned());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect_names(sub, names);
    }
}

/// The page name of a built command: its display name (`nixoci-push`).
fn page_name(cmd: &Command) -> &str {
    cmd.get_display_name().unwrap_or(cmd.get_name())
}

fn render_tree(
    cmd: &Command,
    path: &mut Vec<String>,
    parent: Option<&str>,
    names: &[String],
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<()> {
    let path_strs: Vec<&str> = path.iter().map(String::as_str).collect();
    let page = render(cmd, &path_strs, parent, names)
        .with_context(|| format!("cannot render the man page of {}", page_name(cmd)))?;
    pages.push((format!("{}.1", page_name(cmd)), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        path.push(sub.get_name().to_owned());
        render_tree(sub, path, Some(page_name(cmd)), names, pages)?;
        path.pop();
    }
    Ok(())
}

/// One page: clap_mangen's sections, then EXAMPLES, VERSION and SEE ALSO.
fn render(cmd: &Command, path: &[&str], parent: Option<&str>, names: &[String]) -> Result<Vec<u8>> {
    // No date: the pages are a function of the definitions alone.
    let man = Man::new(cmd.clone())
        .source(concat!("nixoci ", env!("CARGO_PKG_VERSION")))
        .manual("nixoci manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    let examples = examples::of(path);
    if !examples.is_empty() {
        let mut roff = Roff::new();
        roff.control("SH", ["EXAMPLES"]);
        for e in examples {
            roff.control("PP", []);
            roff.text([roman(format!("{}:", e.what))]);
            roff.control("RS", ["4"]);
            roff.control("nf", []);
            roff.text([bold(format!("$ {}", e.line))]);
            roff.control("fi", []);
            roff.control("RE", []);
        }
        roff.to_writer(&mut page)?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(&mut page)?;
    }
    let see_also = see_also(cmd, examples, parent, names);
    if !see_also.is_empty() {
        let mut roff = Roff::new();
        roff.control("SH", ["SEE ALSO"]);
        // Page names are not hyphenated at a line's end.
        roff.control("nh", []);
        let mut line = Vec::new();
        for (i, name) in see_also.iter().enumerate() {
            if i > 0 {
                line.push(roman(", "));
            }
            line.push(bold(name.as_str()));
            line.push(roman("(1)"));
        }
        roff.text(line);
        roff.to_writer(&mut page)?;
    }
    Ok(page)
}

/// The pages a page points to: its parent, its subcommands, and the
/// commands its examples name (`nixoci diff` in the example of layout).
fn see_also(
    cmd: &Command,
    examples: &[examples::Example],
    parent: Option<&str>,
    names: &[String],
) -> Vec<String> {
    let own = page_name(cmd);
    let mut out: Vec<String> = parent.map(str::to_owned).into_iter().collect();
    out.extend(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| page_name(s).to_owned()),
    );
    for e in examples {
        for text in [e.what, e.line] {
            for (i, _) in text.match_indices("nixoci ") {
                let words: Vec<&str> = text[i..]
                    .split(|c: char| c.is_whitespace() || c == '`')
                    .take(3)
                    .collect();
                // The longest page the words name: nixoci-artifact-push
                // before nixoci-artifact.
                let found = (2..=words.len())
                    .rev()
                    .map(|k| words[..k].join("-"))
                    .find(|n| names.contains(n));
                if let Some(n) = found {
                    if n != own && !out.contains(&n) {
                        out.push(n);
                    }
                }
            }
        }
    }
    out
}
