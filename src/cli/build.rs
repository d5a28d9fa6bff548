//! The building-block subcommands (build, layer, config, manifest, layout)
//! and `nix-builder`, which makes the same blocks as a Nix derivation's
//! builder; progress bars while layers are written; the text line of each
//! block's result.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result};
use clap::Args;

use crate::build::{ConfigInfo, LayerInfo, LayoutReport, ManifestInfo, Options};
use crate::inspect::human_size;
use crate::progress::Progress;
use crate::verify::short;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::{count, Output, OutputArgs};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The JSON spec (relative paths in it are relative to its directory).
    spec: PathBuf,
    /// The directory to write; it must not exist unless --force.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
    /// Compression threads [default: the cores available, or
    /// $NIX_BUILD_CORES in a Nix build]. The bytes do not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Compression level for layers whose spec sets none [gzip 1-9, default
    /// 6; zstd 1-19, default 3]. Outside 1-19 it is a usage error; a level
    /// the layer's compression does not have is an error naming the layer.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=19))]
    level: Option<u32>,
    #[command(flatten)]
    print: OutputArgs,
}

impl BuildArgs {
    fn options<'a>(&self, progress: &'a Bars) -> Options<'a> {
        Options {
            force: self.force,
            threads: self.threads.map_or(0, usize::from),
            level: self.level,
            in_place: false,
            progress,
        }
    }
}

/// `nixoci build`: a whole image layout from an image spec.
pub fn image(a: &BuildArgs) -> Result<ExitCode> {
    let mode = a.print.mode();
    let bars = Bars::new(mode);
    let report = crate::build::build(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
    mode.report(&report, |out| print_layout(out, &report))
}

/// `nixoci layer`.
pub fn layer(a: &BuildArgs) -> Result<ExitCode> {
    let mode = a.print.mode();
    let bars = Bars::new(mode);
    let info = crate::build::layer(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
    mode.report(&info, |out| print_layer(out, &a.output, &info))
}

/// `nixoci layers`.
pub fn layers(a: &BuildArgs) -> Result<ExitCode> {
    let mode = a.print.mode();
    let bars = Bars::new(mode);
    let info = crate::build::layers(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
    mode.report(&info, |out| {
        for (i, l) in info.layers.iter().enumerate() {
            writeln!(
                out,
                "{}: layer {i}: {} ({}, {})",
                a.output.display(),
                l.digest,
                human_size(l.size),
                count(l.store_paths.len(), "store path")
            )?;
        }
        Ok(())
    })
}

/// `nixoci config`.
pub fn config(a: &BuildArgs) -> Result<ExitCode> {
    let mode = a.print.mode();
    let bars = Bars::new(mode);
    let info = crate::build::config(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
    mode.report(&info, |out| print_config(out, &a.output, &info))
}

/// `nixoci manifest`.
pub fn manifest(a: &BuildArgs) -> Result<ExitCode> {
    let mode = a.print.mode();
    let bars = Bars::new(mode);
    let info = crate::build::manifest(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
    mode.report(&info, |out| print_manifest(out, &a.output, &info))
}

/// `nixoci layout`.
pub fn layout(a: &BuildArgs) -> Result<ExitCode> {
    let mode = a.print.mode();
    let bars = Bars::new(mode);
    let report = crate::build::layout(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
    mode.report(&report, |out| print_layout(out, &report))
}

/// Progress bars on standard error, drawn only when the output mode shows
/// progress (a terminal, and not `--quiet`).
struct Bars {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn new(mode: Output) -> Self {
        Bars {
            enabled: mode.shows_progress(),
            bar: Mutex::new(None),
        }
    }

    fn with(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            f(bar)
        }
    }
}

impl Progress for Bars {
    fn layer_start(&self, index: usize, content_bytes: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(content_bytes), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            )
            .with_prefix(format!("layer {}", index + 1));
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn advance(&self, n: u64) {
        self.with(|b| b.inc(n));
    }

    fn layer_done(&self, digest: &str, size: u64) {
        self.with(|b| {
            b.finish_and_clear();
            eprintln!("{:>8} {} {}", "layer", short(digest), human_size(size));
        });
    }
}

fn print_layer(out: &mut dyn Write, dir: &Path, info: &LayerInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: layer {} ({}, {}), {}",
        dir.display(),
        info.digest,
        human_size(info.size),
        info.media_type
            .as_str()
            .rsplit('.')
            .next()
            .unwrap_or_default(),
        count(info.store_paths.len(), "store path")
    )
}

fn print_config(out: &mut dyn Write, dir: &Path, info: &ConfigInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: config {} ({}), {}",
        dir.display(),
        info.digest,
        info.platform,
        count(info.layers.len(), "layer")
    )
}

fn print_manifest(out: &mut dyn Write, dir: &Path, info: &ManifestInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: manifest {} ({}), {}, {}",
        dir.display(),
        info.digest,
        info.platform,
        count(info.layers.len(), "layer"),
        human_size(info.layers.iter().map(|l| l.size).sum())
    )
}

fn print_layout(out: &mut dyn Write, r: &LayoutReport) -> std::io::Result<()> {
    let layers: usize = r.manifests.iter().map(|m| m.layers.len()).sum();
    let size: u64 = r
        .manifests
        .iter()
        .flat_map(|m| &m.layers)
        .map(|l| l.size)
        .sum();
    let platforms: Vec<String> = r.manifests.iter().map(|m| m.platform.to_string()).collect();
    writeln!(
        out,
        "{}: {} {} ({}), {}, {}; tags: {}",
        r.layout.display(),
        if r.manifests.len() == 1 {
            "manifest"
        } else {
            "index"
        },
        r.descriptor.digest,
        platforms.join(", "),
        count(layers, "layer"),
        human_size(size),
        r.tags.join(", ")
    )
}

/// `nixoci nix-builder`: one building block, as a Nix derivation's builder.
pub fn nix_builder() -> Result<ExitCode> {
    use crate::nix::BuilderCommand as C;
    let (path, attrs) = crate::nix::builder_attrs()?;
    let out = attrs
        .outputs
        .get("out")
        .context("the structured attrs have no outputs.out")?
        .clone();
    let opts = Options {
        force: false,
        threads: 0, // NIX_BUILD_CORES
        level: None,
        in_place: true,
        progress: &crate::progress::Silent,
    };
    let mut stdout = std::io::stdout().lock();
    match attrs.command {
        C::Layer => {
            let info = crate::build::layer(&builder_spec(&attrs, &path)?, &path, &out, &opts)?;
            print_layer(&mut stdout, &out, &info)?
        }
        C::Layers => {
            let info = crate::build::layers(&builder_spec(&attrs, &path)?, &path, &out, &opts)?;
            writeln!(
                stdout,
                "{}: {}",
                out.display(),
                count(info.layers.len(), "layer")
            )?
        }
        C::Config => {
            let info = crate::build::config(&builder_spec(&attrs, &path)?, &path, &out, &opts)?;
            print_config(&mut stdout, &out, &info)?
        }
        C::Manifest => {
            let info = crate::build::manifest(&builder_spec(&attrs, &path)?, &path, &out, &opts)?;
            print_manifest(&mut stdout, &out, &info)?
        }
        C::Layout => print_layout(
            &mut stdout,
            &crate::build::layout(&builder_spec(&attrs, &path)?, &path, &out, &opts)?,
        )?,
        C::Archive => builder_archive(builder_spec(&attrs, &path)?, &out, &mut stdout)?,
        C::Verify => builder_verify(builder_spec(&attrs, &path)?, &out, &mut stdout)?,
        C::Script => builder_script(builder_spec(&attrs, &path)?, &out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The spec of the `script` builder command: a program for `nix run`
/// (`copyToRegistry`, ...), whose text the Nix functions write.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptSpec {
    name: String,
    text: String,
}

/// `script` as a builder: `$out/bin/NAME`, executable, holding the text.
fn builder_script(s: ScriptSpec, out: &Path) -> Result<()> {
    if s.name.is_empty() || s.name.contains('/') || s.name.starts_with('.') {
        anyhow::bail!("script name {:?} is not a file name", s.name);
    }
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let file = bin.join(&s.name);
    std::fs::write(&file, s.text).with_context(|| format!("cannot write {}", file.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o555))
        .with_context(|| format!("cannot make {} executable", file.display()))?;
    Ok(())
}

/// The spec of the `archive` builder command.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveSpec {
    layout: PathBuf,
    #[serde(default)]
    tag: Option<String>,
    format: crate::archive::Format,
    #[serde(default)]
    name: Option<String>,
}

/// `archive` as a builder: the archive file is `$out`.
fn builder_archive(a: ArchiveSpec, out: &Path, stdout: &mut dyn Write) -> Result<()> {
    let report = crate::archive::archive(
        &a.layout,
        a.tag.as_deref(),
        out,
        a.format,
        a.name.as_deref(),
        None,
        crate::layout::WriteMode::InPlace,
    )?;
    writeln!(
        stdout,
        "{}: {} archive of {} as {}",
        out.display(),
        report.format,
        report.digest,
        report.name
    )?;
    Ok(())
}

/// The spec of the `verify` builder command.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifySpec {
    layout: PathBuf,
}

/// `verify` as a builder: a valid layout's report is `$out`; a layout with
/// problems fails the build, listing them.
fn builder_verify(v: VerifySpec, out: &Path, stdout: &mut dyn Write) -> Result<()> {
    let report = crate::verify::verify(&v.layout);
    if !report.ok {
        anyhow::bail!(
            "{} is not a valid layout:\n  {}",
            v.layout.display(),
            report.problems.join("\n  ")
        );
    }
    std::fs::write(out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| out.display().to_string())?;
    writeln!(stdout, "{}: ok", v.layout.display())?;
    Ok(())
}

/// The spec of a builder command.
fn builder_spec<T: serde::de::DeserializeOwned>(
    attrs: &crate::nix::BuilderAttrs,
    path: &Path,
) -> Result<T> {
    serde_json::from_value(attrs.spec.clone())
        .with_context(|| format!("invalid {} spec in {}", attrs.command, path.display()))
}

/// Load a spec file (`-`: standard input).
fn load<T: for<'de> serde::Deserialize<'de>>(path: &Path) -> Result<T> {
    Ok(crate::spec::load(path)?)
}
