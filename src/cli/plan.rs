//! `nixoci plan`: the layering plan of a closure graph, as JSON (the only
//! form: the plan is an input to a build, and people read it with `jq`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::plan::{check_budget, plan, read_exclude, Graph, Strategy};

use super::output::OutputArgs;

#[derive(Debug, Args)]
#[command(
    mut_arg("json", |a| a.help("Print a JSON report of what -o wrote on standard output")),
    mut_arg("quiet", |a| a.help(
        "Print nothing on success (a plan without -o is still printed: it is the result)"
    ))
)]
pub struct PlanArgs {
    /// The closure graph Nix writes for `exportReferencesGraph` with
    /// structured attrs: a JSON list of {path, narSize, references}, or a
    /// .attrs.json holding one (see --attr).
    graph: PathBuf,
    /// In a .attrs.json, the attribute that holds the graph [default:
    /// closure].
    #[arg(long, value_name = "NAME")]
    attr: Option<String>,
    /// The layers these store paths may take, 1 to 127 (overlay
    /// filesystems refuse more).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = parse_budget)]
    max_layers: usize,
    /// `stable`: the roots and big paths alone, the rest in buckets by
    /// name, so that an update moves few layers; `popularity`:
    /// dockerTools' grouping.
    #[arg(long, value_enum, default_value_t = StrategyArg::Stable)]
    strategy: StrategyArg,
    /// Store paths already in other layers (base or explicit layers), one
    /// per line or a JSON list; they, and only they, are left out. May be
    /// given more than once.
    #[arg(long, value_name = "FILE")]
    exclude: Vec<PathBuf>,
    /// Write the plan here instead of standard output (it must not exist
    /// unless --force).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the -o FILE if it exists (never an input).
    #[arg(long, requires = "output")]
    force: bool,
    // A report of what -o wrote; without it, the plan itself is printed,
    // whatever the output mode.
    #[command(flatten)]
    print: OutputArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StrategyArg {
    Stable,
    Popularity,
}

fn parse_budget(s: &str) -> std::result::Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of layers"))?;
    check_budget(n)?;
    Ok(n)
}

/// `nixoci plan`.
pub fn run(a: &PlanArgs) -> Result<ExitCode> {
    let graph = Graph::read(&a.graph, a.attr.as_deref())?;
    let mut exclude = BTreeSet::new();
    for file in &a.exclude {
        exclude.extend(read_exclude(file)?);
    }
    let strategy = match a.strategy {
        StrategyArg::Stable => Strategy::Stable,
        StrategyArg::Popularity => Strategy::Popularity,
    };
    let plan = plan(&graph, strategy, a.max_layers, &exclude)?;
    let bytes = plan.to_bytes();
    match &a.output {
        None => std::io::stdout().lock().write_all(&bytes)?,
        Some(out) => {
            let mut inputs = vec![a.graph.clone()];
            inputs.extend(a.exclude.iter().cloned());
            let mode = crate::layout::WriteMode::forced(a.force);
            let file = crate::layout::OutputFile::new(out, mode, &inputs)?;
            file.file()?
                .write_all(&bytes)
                .map_err(|e| crate::Error::io(out, e))?;
            file.commit()?;
            let report = serde_json::json!({
                "output": out,
                "strategy": plan.strategy,
                "maxLayers": plan.max_layers,
                "layers": plan.layers.len(),
            });
            // As `cp`, the text says nothing.
            return a.print.mode().report(&report, |_| Ok(()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
