//! How a command reports its result on standard output.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

/// A command's result on standard output: JSON with `--json`, the `text`
/// line otherwise, nothing with `--quiet`.
pub fn emit<T: serde::Serialize>(
    json: bool,
    quiet: bool,
    value: &T,
    text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
    } else if !quiet {
        text(&mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}
