//! How a command reports: one output mode, chosen once from `--json` and
//! `--quiet`, decides whether the result is printed as text, as JSON or not
//! at all, and whether progress bars may be drawn.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// The output mode of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The result as text for a person (the default).
    Text,
    /// The result as a JSON report (`--json`).
    Json,
    /// Nothing on success, and no progress bars (`--quiet`).
    Quiet,
}

impl Output {
    /// The mode the flags ask for (clap refuses `--json` with `--quiet`).
    pub fn from_flags(json: bool, quiet: bool) -> Self {
        if json {
            Output::Json
        } else if quiet {
            Output::Quiet
        } else {
            Output::Text
        }
    }

    /// Whether progress bars may be drawn: not quiet, and standard error is
    /// a terminal (with `--json` the report goes to standard output, so bars
    /// do not disturb it).
    pub fn shows_progress(self) -> bool {
        self != Output::Quiet && std::io::stderr().is_terminal()
    }

    /// Print a result on standard output: `value` as pretty JSON, the
    /// `text` written by the command, or nothing.
    pub fn print<T: serde::Serialize>(
        self,
        value: &T,
        text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut out = std::io::stdout().lock();
        match self {
            Output::Json => {
                serde_json::to_writer_pretty(&mut out, value)?;
                writeln!(out)?;
            }
            Output::Text => text(&mut out)?,
            Output::Quiet => {}
        }
        Ok(())
    }

    /// [`Output::print`] the result of a command that succeeded.
    pub fn report<T: serde::Serialize>(
        self,
        value: &T,
        text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<ExitCode> {
        self.print(value, text)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `--json` and `--quiet` of every command that draws no transfer progress
/// bars (those that do take [`TransferOutputArgs`]).
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,
}

impl OutputArgs {
    pub fn mode(&self) -> Output {
        Output::from_flags(self.json, self.quiet)
    }
}

/// `--json` and `--quiet` of the registry commands, whose help says that
/// quiet also means no progress bars.
#[derive(Debug, Args)]
pub struct TransferOutputArgs {
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
    /// Print nothing on success (and draw no progress bars).
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,
}

impl TransferOutputArgs {
    pub fn mode(&self) -> Output {
        Output::from_flags(self.json, self.quiet)
    }
}

/// `reference@digest`, or the reference alone when it names that digest
/// already (`nixoci sign REPO@sha256:…`, and what `push --sign-key` signs).
pub(super) fn signed_name(reference: &str, digest: &impl std::fmt::Display) -> String {
    let digest = digest.to_string();
    if reference.ends_with(&format!("@{digest}")) {
        reference.to_owned()
    } else {
        format!("{reference}@{digest}")
    }
}

/// "1 signature", "2 bundle signatures": a count of `kind` signatures.
pub(super) fn signatures(n: usize, kind: &str) -> String {
    count(n, &format!("{kind}signature"))
}

/// "1 layer", "2 layers", "1 entry", "0 entries": `n` of `noun`, in the
/// number `n` takes.
pub(super) fn count(n: impl TryInto<u64>, noun: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    if n == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {noun}s")
    }
}
