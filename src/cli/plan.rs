//! `nixoci plan`: the layering plan of a closure graph, as JSON (the only
//! form: the plan is an input to a build, and people read it with `jq`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use nixoci::plan::{check_budget, plan, read_exclude, Graph, Strategy};

#[derive(Debug, Args)]
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
    /// Write the plan here (replaced if it exists) instead of standard
    /// output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
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
    let bytes = plan(&graph, strategy, a.max_layers, &exclude)?.to_bytes();
    match &a.output {
        None => std::io::stdout().lock().write_all(&bytes)?,
        Some(out) => {
            let mut inputs = vec![a.graph.clone()];
            inputs.extend(a.exclude.iter().cloned());
            nixoci::layout::check_not_an_input(out, &inputs)?;
            let file = nixoci::layout::OutputFile::new(out, false)?;
            file.file()?
                .write_all(&bytes)
                .map_err(|e| nixoci::Error::io(out, e))?;
            file.commit()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
