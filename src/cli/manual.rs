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
    let mut tree = Vec::new();
    walk(&cmd, &mut Vec::new(), None, &mut tree);
    let names: Vec<String> = tree.iter().map(|p| page_name(p.cmd).to_owned()).collect();
    let mentions: Vec<Vec<String>> = tree
        .iter()
        .map(|p| mentioned(examples::of(&p.path()), &names))
        .collect();
    tree.iter()
        .enumerate()
        .map(|(i, p)| {
            let name = &names[i];
            // Its parent, its commands, the commands its examples name,
            // and those whose examples name it.
            let mut see_also: Vec<String> = p.parent.clone().into_iter().collect();
            see_also.extend(subcommands(p.cmd).map(|s| page_name(s).to_owned()));
            see_also.extend(mentions[i].iter().cloned());
            see_also.extend(
                (0..tree.len())
                    .filter(|&j| mentions[j].contains(name))
                    .map(|j| names[j].clone()),
            );
            let mut seen = std::collections::BTreeSet::from([name.clone()]);
            see_also.retain(|n| seen.insert(n.clone()));
            let page = render(p.cmd, &p.path(), &see_also)
                .with_context(|| format!("cannot render the man page of {name}"))?;
            Ok((format!("{name}.1"), page))
        })
        .collect()
}

/// A command of the tree, with its path of names below `nixoci` and the
/// page name of its parent.
struct Node<'a> {
    cmd: &'a Command,
    path: Vec<String>,
    parent: Option<String>,
}

impl Node<'_> {
    fn path(&self) -> Vec<&str> {
        self.path.iter().map(String::as_str).collect()
    }
}

/// The commands of the tree, each before those below it.
fn walk<'a>(
    cmd: &'a Command,
    path: &mut Vec<String>,
    parent: Option<&str>,
    out: &mut Vec<Node<'a>>,
) {
    out.push(Node {
        cmd,
        path: path.clone(),
        parent: parent.map(str::to_owned),
    });
    for sub in subcommands(cmd) {
        path.push(sub.get_name().to_owned());
        walk(sub, path, Some(page_name(cmd)), out);
        path.pop();
    }
}

fn subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

/// The page name of a built command: its display name (`nixoci-push`).
fn page_name(cmd: &Command) -> &str {
    cmd.get_display_name().unwrap_or(cmd.get_name())
}

/// The pages that examples name (`nixoci diff` in an example of layout),
/// the longest match first: nixoci-artifact-push before nixoci-artifact.
fn mentioned(examples: &[examples::Example], names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for e in examples {
        for text in [e.what, e.line] {
            for (i, _) in text.match_indices("nixoci ") {
                let words: Vec<&str> = text[i..]
                    .split(|c: char| c.is_whitespace() || c == '`')
                    .take(3)
                    .collect();
                let found = (2..=words.len())
                    .rev()
                    .map(|k| words[..k].join("-"))
                    .find(|n| names.contains(n));
                if let Some(n) = found {
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
            }
        }
    }
    out
}

/// One page: clap_mangen's sections, then EXAMPLES, VERSION and SEE ALSO.
fn render(cmd: &Command, path: &[&str], see_also: &[String]) -> Result<Vec<u8>> {
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
    if subcommands(cmd).next().is_some() {
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
