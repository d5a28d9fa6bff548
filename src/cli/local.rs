//! The subcommands that read a local image layout: verify, inspect (which
//! also takes a registry reference), archive and unpack.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::inspect::human_size;

use super::args::{layout_arg, locate, Target};
use super::limit_args::LimitArgs;
use super::output::{count, Output, OutputArgs};
use super::remote_args::RemoteArgs;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An OCI image layout directory.
    dir: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    print: OutputArgs,
}

/// `nixoci verify`: exit status 1 when the layout has a problem; the
/// problems go to standard error (or into the JSON report), with
/// `--quiet` too.
pub fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let report = crate::verify::verify_with(&a.dir, &a.limits.limits());
    let mode = match a.print.mode() {
        Output::Quiet if !report.ok => Output::Text,
        mode => mode,
    };
    mode.print(&report, |out| {
        if report.ok {
            return writeln!(
                out,
                "{}: ok ({}, {} verified)",
                a.dir.display(),
                count(report.manifests, "manifest"),
                count(report.blobs_checked, "blob")
            );
        }
        for p in &report.problems {
            eprintln!("{}: {p}", a.dir.display());
        }
        eprintln!(
            "{}: {} problems found",
            a.dir.display(),
            report.problems.len()
        );
        Ok(())
    })?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An image layout directory, LAYOUT:TAG, or
    /// REGISTRY/REPOSITORY[:TAG][@DIGEST].
    target: String,
    #[command(flatten)]
    print: OutputArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// `nixoci inspect`, of a layout or of a registry reference.
pub fn inspect(a: &InspectArgs) -> Result<ExitCode> {
    let tagged = match locate(&a.target)? {
        Target::Layout { dir, tag } => {
            if !dir.exists() {
                anyhow::bail!("{}: no such image layout directory", dir.display());
            }
            match tag {
                None => crate::inspect::inspect(&dir),
                Some(t) => crate::inspect::inspect_tag(&dir, &t).map(|one| vec![one]),
            }
            .with_context(|| format!("cannot inspect {}", dir.display()))?
        }
        Target::Remote(r) => vec![crate::remote::inspect(&r, &a.remote.options()?)
            .with_context(|| format!("cannot inspect {r}"))?],
    };
    a.print
        .mode()
        .report(&tagged, |out| print_tagged(out, &tagged))
}

/// What `inspect` prints as text: per tag its digest and kind, then per
/// image its platform, manifest, config, size and layers.
fn print_tagged(out: &mut dyn Write, tagged: &[crate::inspect::Tagged]) -> std::io::Result<()> {
    for t in tagged {
        writeln!(
            out,
            "{}  {}  {}",
            if t.tags.len() > 1 {
                t.tags.join(",")
            } else {
                t.tag.clone().unwrap_or_else(|| "(untagged)".into())
            },
            t.digest,
            t.media_type
                .as_str()
                .rsplit('.')
                .nth(1)
                .unwrap_or(t.media_type.as_str())
        )?;
        for img in &t.images {
            // An artifact (a signature, an SBOM) has none, or an empty one.
            let platform = img
                .platform
                .as_ref()
                .filter(|p| !(p.os.is_empty() && p.architecture.is_empty()))
                .map_or("no platform".into(), |p| p.to_string());
            let platform = if img.tags.is_empty() {
                platform
            } else {
                format!("{platform} [{}]", img.tags.join(","))
            };
            writeln!(
                out,
                "  {platform}  manifest {}  config {}  {}, {}",
                &img.manifest.short(),
                &img.config.short(),
                count(img.layers.len(), "layer"),
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
    Ok(())
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The image layout, with `:TAG` when it holds several images.
    layout: String,
    /// The archive file to write (it must not exist unless --force).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Replace FILE if it exists (never the layout or a file of it).
    #[arg(long)]
    force: bool,
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
    #[arg(long, value_parser = super::args::platform_arg)]
    platform: Option<crate::oci::Platform>,
    #[command(flatten)]
    print: OutputArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Oci,
    Docker,
}

impl From<FormatArg> for crate::archive::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Oci => crate::archive::Format::Oci,
            FormatArg::Docker => crate::archive::Format::Docker,
        }
    }
}

/// `nixoci archive`.
pub fn archive(a: &ArchiveArgs) -> Result<ExitCode> {
    let (layout, tag) = layout_arg(&a.layout)?;
    let platform = a.platform.clone();
    let report = crate::archive::archive(
        &layout,
        tag.as_deref(),
        &a.output,
        a.format.into(),
        a.tag.as_deref(),
        platform.as_ref(),
        crate::layout::WriteMode::forced(a.force),
    )
    .with_context(|| format!("cannot archive {}", layout.display()))?;
    a.print.mode().report(&report, |out| {
        writeln!(
            out,
            "{}: {} archive of {} as {} ({})",
            report.archive.display(),
            report.format,
            report.digest,
            report.name,
            human_size(report.size)
        )
    })
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The image layout, with `:TAG` when it holds several images.
    layout: String,
    /// The directory to create (it must not exist unless --force).
    dir: PathBuf,
    /// For a multi-platform image: OS/ARCH[/VARIANT] (default: linux and this
    /// machine's architecture).
    #[arg(long, value_parser = super::args::platform_arg)]
    platform: Option<crate::oci::Platform>,
    /// Create character and block device nodes instead of refusing them.
    #[arg(long)]
    allow_devices: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// Replace DIR if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    print: OutputArgs,
}

/// `nixoci unpack`.
pub fn unpack(a: &UnpackArgs) -> Result<ExitCode> {
    let (layout, tag) = layout_arg(&a.layout)?;
    let opts = crate::unpack::UnpackOptions {
        limits: a.limits.limits(),
        allow_devices: a.allow_devices,
        platform: a.platform.clone(),
        force: a.force,
    };
    let report =
        crate::unpack::unpack(&layout, tag.as_deref(), &a.dir, &opts).with_context(|| {
            format!(
                "cannot unpack {} into {}",
                layout.display(),
                a.dir.display()
            )
        })?;
    a.print.mode().report(&report, |out| {
        writeln!(
            out,
            "{}: {} of {}, {}, {}",
            report.dir.display(),
            count(report.layers, "layer"),
            report.manifest,
            count(report.entries, "entry"),
            human_size(report.bytes)
        )
    })
}
