//! Command-line interface: clap types, and one function per subcommand that
//! calls the library and prints the result (text, or JSON with `--json`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nixoci::build::{self, ConfigInfo, LayerInfo, LayoutReport, ManifestInfo, Options};
use nixoci::inspect::human_size;
use nixoci::progress::Progress;
use nixoci::verify::short;

use crate::cli_remote;

/// Reproducible OCI images from Nix store paths and files.
///
/// Every output is a pure function of its inputs: the same spec gives the
/// same bytes on any machine. Outputs are written to a temporary sibling and
/// renamed into place, so a failed run leaves nothing behind.
#[derive(Debug, Parser)]
#[command(name = "nixoci", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a whole OCI image layout from an image spec.
    Build(BuildArgs),
    /// Build one layer: DIR/blobs/sha256/<layer> and DIR/layer.json.
    Layer(BuildArgs),
    /// Build an image config over layers: DIR/config.json.
    Config(BuildArgs),
    /// Build an image config and manifest over layers: DIR/manifest.json.
    Manifest(BuildArgs),
    /// Assemble an OCI image layout from manifest directories.
    Layout(BuildArgs),
    /// Check every digest, size, diff_id and media type of a layout.
    ///
    /// Reports every problem found and exits with status 1 if there is any.
    /// Each layer is read within the limits unpack applies.
    Verify(VerifyArgs),
    /// Show the tags, platforms and layers of a layout directory
    /// (`LAYOUT[:TAG]`), or of an image in a registry.
    ///
    /// An existing path, or one written as a path (./x, /x), is a layout; a
    /// name starting with a registry host (ghcr.io/..., localhost:5000/...,
    /// docker.io/...) is a reference; a bare name that is neither is an
    /// error.
    Inspect(InspectArgs),
    /// Push an image (or a multi-platform index) from a layout to a registry.
    ///
    /// Blobs the registry has are not sent again; blobs another repository
    /// of the registry has are mounted; the rest are uploaded in chunks, in
    /// parallel, with retries. The manifest goes last.
    Push(cli_remote::PushArgs),
    /// Pull an image from a registry into a new layout, verifying every
    /// digest and size.
    Pull(cli_remote::PullArgs),
    /// Give an image in a registry another tag, moving no blob.
    Tag(cli_remote::TagArgs),
    /// Exit 0 if a registry has the image, 1 if not, 2 if it cannot be told.
    Exists(cli_remote::ExistsArgs),
    /// Write an image as a tarball for `podman load` / `docker load`.
    Archive(ArchiveArgs),
    /// Extract an image's root filesystem into a new directory, safely.
    ///
    /// Layers are applied in order with OCI whiteouts, digests checked while
    /// reading. Entries that would land outside DIR (`..`, absolute paths,
    /// hard links out, writing through a symlink) are refused, as are device
    /// nodes unless --allow-devices; sizes and counts are bounded. On a
    /// refusal nothing is left behind.
    Unpack(UnpackArgs),
    /// Run as the builder of a Nix derivation made by the nix/ functions:
    /// reads the command and spec from the build's structured attrs
    /// (.attrs.json) and writes $out.
    NixBuilder,
}

#[derive(Debug, Args)]
struct BuildArgs {
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
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,
}

#[derive(Debug, Args)]
struct ArchiveArgs {
    /// The image layout, with `:TAG` when it holds several images.
    layout: String,
    /// The archive file to write (replaced if it exists).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// `oci`: the layout as a tar (podman load, skopeo copy oci-archive:);
    /// `docker`: the docker save format (docker load, podman load).
    #[arg(long, value_enum, default_value_t = FormatArg::Oci)]
    format: FormatArg,
    /// The name the loaded image gets, NAME[:TAG] (default: the layout's
    /// directory name, less a Nix store hash, and its tag).
    #[arg(long, value_name = "NAME[:TAG]")]
    tag: Option<String>,
    /// For a multi-platform image: which platform, OS/ARCH[/VARIANT]. The
    /// docker format holds one (default: linux and this machine's
    /// architecture); an OCI archive holds the whole index unless given.
    #[arg(long)]
    platform: Option<String>,
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,
}

/// Bounds on reading layers (unpack: over the whole image; verify: for
/// each layer).
#[derive(Debug, Args)]
struct LimitArgs {
    /// Most entries (files, directories, links).
    #[arg(long, default_value_t = 1_000_000)]
    max_entries: u64,
    /// Largest single file, in bytes (16 GiB).
    #[arg(long, default_value_t = 16 << 30)]
    max_file_size: u64,
    /// Most bytes of file content, and most bytes of uncompressed layer
    /// content (64 GiB); decompression stops there.
    #[arg(long, default_value_t = 64 << 30)]
    max_total_size: u64,
}

impl LimitArgs {
    fn limits(&self) -> nixoci::unpack::Limits {
        nixoci::unpack::Limits {
            max_entries: self.max_entries,
            max_file_size: self.max_file_size,
            max_total_size: self.max_total_size,
        }
    }
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// An OCI image layout directory.
    dir: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print JSON on standard output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct UnpackArgs {
    /// The image layout, with `:TAG` when it holds several images.
    layout: String,
    /// The directory to create (it must not exist unless --force).
    dir: PathBuf,
    /// For a multi-platform image: OS/ARCH[/VARIANT] (default: linux and this
    /// machine's architecture).
    #[arg(long)]
    platform: Option<String>,
    /// Create character and block device nodes instead of refusing them.
    #[arg(long)]
    allow_devices: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// Replace DIR if it exists.
    #[arg(long)]
    force: bool,
    /// Print a JSON report on standard output.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,
}

fn unpack(a: &UnpackArgs) -> Result<ExitCode> {
    let (layout, tag) = cli_remote::layout_arg(&a.layout)?;
    let opts = nixoci::unpack::UnpackOptions {
        limits: a.limits.limits(),
        allow_devices: a.allow_devices,
        platform: a
            .platform
            .as_deref()
            .map(nixoci::remote::parse_platform)
            .transpose()?,
        force: a.force,
    };
    let report =
        nixoci::unpack::unpack(&layout, tag.as_deref(), &a.dir, &opts).with_context(|| {
            format!(
                "cannot unpack {} into {}",
                layout.display(),
                a.dir.display()
            )
        })?;
    emit(a.json, a.quiet, &report, |out: &mut dyn Write| {
        writeln!(
            out,
            "{}: {} layers of {}, {} entries, {}",
            report.dir.display(),
            report.layers,
            report.manifest,
            report.entries,
            human_size(report.bytes)
        )
    })
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Oci,
    Docker,
}

impl From<FormatArg> for nixoci::archive::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Oci => nixoci::archive::Format::Oci,
            FormatArg::Docker => nixoci::archive::Format::Docker,
        }
    }
}

fn archive(a: &ArchiveArgs) -> Result<ExitCode> {
    let (layout, tag) = cli_remote::layout_arg(&a.layout)?;
    let platform = a
        .platform
        .as_deref()
        .map(nixoci::remote::parse_platform)
        .transpose()?;
    let report = nixoci::archive::archive(
        &layout,
        tag.as_deref(),
        &a.output,
        a.format.into(),
        a.tag.as_deref(),
        platform.as_ref(),
        false,
    )
    .with_context(|| format!("cannot archive {}", layout.display()))?;
    emit(a.json, a.quiet, &report, |out: &mut dyn Write| {
        writeln!(
            out,
            "{}: {:?} archive of {} as {} ({})",
            report.archive.display(),
            report.format,
            report.digest,
            report.name,
            human_size(report.size)
        )
    })
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// An image layout directory, LAYOUT:TAG, or
    /// REGISTRY/REPOSITORY[:TAG][@DIGEST].
    target: String,
    /// Print JSON on standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: cli_remote::RemoteArgs,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// An OCI image layout directory.
    dir: PathBuf,
    /// Print JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Build(a) => {
            let bars = Bars::new(a.quiet);
            let report = build::build(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
            print_build(&a, &report, |out| print_layout(out, &report))
        }
        Command::Layer(a) => {
            let bars = Bars::new(a.quiet);
            let info = build::layer(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
            print_build(&a, &info, |out| print_layer(out, &a.output, &info))
        }
        Command::Config(a) => {
            let bars = Bars::new(a.quiet);
            let info = build::config(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
            print_build(&a, &info, |out| print_config(out, &a.output, &info))
        }
        Command::Manifest(a) => {
            let bars = Bars::new(a.quiet);
            let info = build::manifest(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
            print_build(&a, &info, |out| print_manifest(out, &a.output, &info))
        }
        Command::Layout(a) => {
            let bars = Bars::new(a.quiet);
            let report = build::layout(&load(&a.spec)?, &a.spec, &a.output, &a.options(&bars))?;
            print_build(&a, &report, |out| print_layout(out, &report))
        }
        Command::NixBuilder => nix_builder(),
        Command::Verify(a) => verify(&a),
        Command::Inspect(a) => inspect(&a),
        Command::Push(a) => cli_remote::push(&a),
        Command::Pull(a) => cli_remote::pull(&a),
        Command::Tag(a) => cli_remote::tag(&a),
        Command::Exists(a) => cli_remote::exists(&a),
        Command::Archive(a) => archive(&a),
        Command::Unpack(a) => unpack(&a),
    }
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

/// Progress bars on standard error, drawn only when it is a terminal and
/// `--quiet` was not given.
struct Bars {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        Bars {
            enabled: !quiet && std::io::stderr().is_terminal(),
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

fn print_build<T: serde::Serialize>(
    args: &BuildArgs,
    value: &T,
    text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<ExitCode> {
    emit(args.json, args.quiet, value, text)
}

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

fn print_layer(out: &mut dyn Write, dir: &Path, info: &LayerInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: layer {} ({}, {}), {} store paths",
        dir.display(),
        info.digest,
        human_size(info.size),
        info.media_type.rsplit('.').next().unwrap_or_default(),
        info.store_paths.len()
    )
}

fn print_config(out: &mut dyn Write, dir: &Path, info: &ConfigInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: config {} ({}), {} layers",
        dir.display(),
        info.digest,
        info.platform,
        info.layers.len()
    )
}

/// `nixoci nix-builder`: one building block, as a Nix derivation's builder.
fn nix_builder() -> Result<ExitCode> {
    use nixoci::nix::BuilderCommand as C;
    let (path, attrs) = nixoci::nix::builder_attrs()?;
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
        progress: &nixoci::progress::Silent,
    };
    let mut stdout = std::io::stdout().lock();
    match attrs.command {
        C::Layer => {
            let info = build::layer(&builder_spec(&attrs, &path)?, &path, &out, &opts)?;
            print_layer(&mut stdout, &out, &info)?
        }
        C::Config => {
            let info = build::config(&builder_spec(&attrs, &path)?, &path, &out, &opts)?;
            print_config(&mut stdout, &out, &info)?
        }
        C::Manifest => {
            let info = build::manifest(&builder_spec(&attrs, &path)?, &path, &out, &opts)?;
            print_manifest(&mut stdout, &out, &info)?
        }
        C::Layout => print_layout(
            &mut stdout,
            &build::layout(&builder_spec(&attrs, &path)?, &path, &out, &opts)?,
        )?,
        C::Archive => builder_archive(builder_spec(&attrs, &path)?, &out, &mut stdout)?,
        C::Verify => builder_verify(builder_spec(&attrs, &path)?, &out, &mut stdout)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The spec of the `archive` builder command.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveSpec {
    layout: PathBuf,
    #[serde(default)]
    tag: Option<String>,
    format: nixoci::archive::Format,
    #[serde(default)]
    name: Option<String>,
}

/// `archive` as a builder: the archive file is `$out`.
fn builder_archive(a: ArchiveSpec, out: &Path, stdout: &mut dyn Write) -> Result<()> {
    let report = nixoci::archive::archive(
        &a.layout,
        a.tag.as_deref(),
        out,
        a.format,
        a.name.as_deref(),
        None,
        true,
    )?;
    writeln!(
        stdout,
        "{}: {:?} archive of {} as {}",
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
    let report = nixoci::verify::verify(&v.layout);
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
    attrs: &nixoci::nix::BuilderAttrs,
    path: &Path,
) -> Result<T> {
    serde_json::from_value(attrs.spec.clone())
        .with_context(|| format!("invalid {} spec in {}", attrs.command, path.display()))
}

/// Load a spec file (`-`: standard input).
fn load<T: for<'de> serde::Deserialize<'de>>(path: &Path) -> Result<T> {
    Ok(nixoci::spec::load(path)?)
}

fn print_manifest(out: &mut dyn Write, dir: &Path, info: &ManifestInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: manifest {} ({}), {} layers, {}",
        dir.display(),
        info.digest,
        info.platform,
        info.layers.len(),
        human_size(info.layers.iter().map(|l| l.size).sum())
    )
}

fn print_layout(out: &mut dyn Write, r: &LayoutReport) -> std::io::Result<()> {
    let layers: u64 = r.manifests.iter().map(|m| m.layers.len() as u64).sum();
    let size: u64 = r
        .manifests
        .iter()
        .flat_map(|m| &m.layers)
        .map(|l| l.size)
        .sum();
    let platforms: Vec<String> = r.manifests.iter().map(|m| m.platform.to_string()).collect();
    writeln!(
        out,
        "{}: {} {} ({}), {} layers, {}; tags: {}",
        r.layout.display(),
        if r.manifests.len() == 1 {
            "manifest"
        } else {
            "index"
        },
        r.descriptor.digest,
        platforms.join(", "),
        layers,
        human_size(size),
        r.tags.join(", ")
    )
}

fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let report = nixoci::verify::verify_with(&a.dir, &a.limits.limits());
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if report.ok {
        writeln!(
            out,
            "{}: ok ({} manifests, {} blobs verified)",
            a.dir.display(),
            report.manifests,
            report.blobs_checked
        )?;
    } else {
        for p in &report.problems {
            eprintln!("{}: {p}", a.dir.display());
        }
        eprintln!(
            "{}: {} problems found",
            a.dir.display(),
            report.problems.len()
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn inspect(a: &InspectArgs) -> Result<ExitCode> {
    let tagged = match cli_remote::locate(&a.target)? {
        cli_remote::Target::Layout { dir, tag } => {
            if !dir.exists() {
                anyhow::bail!("{}: no such image layout directory", dir.display());
            }
            match tag {
                None => nixoci::inspect::inspect(&dir),
                Some(t) => nixoci::inspect::inspect_tag(&dir, &t).map(|one| vec![one]),
            }
            .with_context(|| format!("cannot inspect {}", dir.display()))?
        }
        cli_remote::Target::Remote(r) => cli_remote::inspect_remote(&r, &a.remote)?,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &tagged)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for t in &tagged {
        writeln!(
            out,
            "{}  {}  {}",
            if t.tags.len() > 1 {
                t.tags.join(",")
            } else {
                t.tag.clone().unwrap_or_else(|| "(untagged)".into())
            },
            t.digest,
            t.media_type.rsplit('.').nth(1).unwrap_or(&t.media_type)
        )?;
        for img in &t.images {
            let platform = img
                .platform
                .as_ref()
                .map_or("unknown platform".into(), |p| p.to_string());
            let platform = if img.tags.is_empty() {
                platform
            } else {
                format!("{platform} [{}]", img.tags.join(","))
            };
            writeln!(
                out,
                "  {platform}  manifest {}  config {}  {} layers, {}",
                short(&img.manifest),
                short(&img.config),
                img.layers.len(),
                human_size(img.size)
            )?;
            if let Some(e) = &img.entrypoint {
                writeln!(out, "    entrypoint {e}")?;
            }
            if let Some(c) = &img.cmd {
                writeln!(out, "    cmd {c}")?;
            }
            for l in &img.layers {
                writeln!(
                    out,
                    "    {}  {:>9}  {}",
                    l.digest,
                    human_size(l.size),
                    l.media_type
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
