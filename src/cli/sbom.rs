//! `nixoci sbom`: the SBOM of an image's Nix closure, SPDX or CycloneDX.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::args::layout_arg;
use super::output::{count, OutputArgs};

#[derive(Debug, Args)]
#[command(
    mut_arg("json", |a| a.help("Print a JSON report of what -o or --attach wrote on standard output")),
    mut_arg("quiet", |a| a.help(
        "Print no report of what -o or --attach wrote (without them, the SBOM itself is still printed)"
    ))
)]
pub struct SbomArgs {
    /// The image layout, with `:TAG` when it holds several images.
    layout: String,
    /// `spdx` (SPDX 2.3 JSON) or `cyclonedx` (CycloneDX 1.6 JSON).
    #[arg(long, value_enum, default_value_t = FormatArg::Spdx)]
    format: FormatArg,
    /// Write it to FILE instead of standard output (it must not exist
    /// unless --force).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the -o FILE if it exists (never the layout or a file of it).
    #[arg(long, requires = "output")]
    force: bool,
    /// For a multi-platform image: which platform, OS/ARCH[/VARIANT]
    /// (default: linux and this machine's architecture).
    #[arg(long, value_parser = super::args::platform_arg)]
    platform: Option<crate::oci::Platform>,
    /// Also attach it to the image in the layout, as a referrer (an OCI
    /// 1.1 artifact whose subject is the image's manifest) listed in the
    /// layout nested at LAYOUT/referrers, which `nixoci push` and `oras cp
    /// -r --from-oci-layout LAYOUT/referrers:TAG` send with the image.
    #[arg(long)]
    attach: bool,
    // A report of what -o or --attach wrote; without either, the SBOM
    // itself is printed, whatever the output mode.
    #[command(flatten)]
    print: OutputArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Spdx,
    Cyclonedx,
}

/// `nixoci sbom`.
pub fn run(a: &SbomArgs) -> Result<ExitCode> {
    let (layout, tag) = layout_arg(&a.layout)?;
    let platform = a.platform.clone();
    // Before any work: nothing is changed that may not be.
    if a.attach {
        // The nested layout first: the store's advice would copy it alone.
        crate::layout::nested::check_own_blobs(&layout)?;
        crate::layout::nested::check_shape(&layout)?;
        crate::layout::check_may_change(&layout).with_context(|| {
            format!(
                "cannot attach the SBOM to {} (a Nix-built image gets one with \
                 ociImage {{ sbom = true; }})",
                layout.display()
            )
        })?;
    }
    let mode = crate::layout::WriteMode::forced(a.force);
    let inputs = [layout.clone()];
    if let Some(path) = &a.output {
        crate::layout::check_output(path, a.force, &inputs)?;
    }
    let sbom = crate::sbom::collect(&layout, tag.as_deref(), platform.as_ref())
        .with_context(|| format!("cannot make the SBOM of {}", layout.display()))?;
    let format = match a.format {
        FormatArg::Spdx => crate::sbom::Format::Spdx,
        FormatArg::Cyclonedx => crate::sbom::Format::CycloneDx,
    };
    let bytes = crate::sbom::bytes(&format.document(&sbom));
    let mut report = Report {
        layout: layout.clone(),
        manifest: sbom.manifest.clone(),
        format: format.media_type(),
        packages: sbom.paths.len(),
        output: a.output.clone(),
        attached: Vec::new(),
    };
    if a.attach {
        report.attached = crate::sbom::attach(&layout, &sbom, &[format])
            .with_context(|| format!("cannot attach the SBOM to {}", layout.display()))?
            .into_iter()
            .map(|d| d.digest)
            .collect();
    }
    match &a.output {
        Some(path) => {
            let out = crate::layout::OutputFile::new(path, mode, &inputs)?;
            out.file()?
                .write_all(&bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            out.commit()?;
        }
        // The SBOM itself is what is printed, whatever the output mode.
        None if !a.attach => {
            std::io::stdout().lock().write_all(&bytes)?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    a.print.mode().report(&report, |out| {
        if let Some(path) = &report.output {
            writeln!(
                out,
                "{}: {} SBOM of {}, {}",
                path.display(),
                report.format,
                report.manifest,
                count(report.packages, "package")
            )?;
        }
        for d in &report.attached {
            writeln!(
                out,
                "{}: {} SBOM {d} attached to {}",
                report.layout.display(),
                report.format,
                report.manifest
            )?;
        }
        Ok(())
    })
}

/// What `sbom` reports when it wrote the SBOM to a file or attached it
/// (otherwise the SBOM itself is printed).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    layout: PathBuf,
    /// The image's manifest.
    manifest: crate::oci::digest::Sha256Digest,
    /// The SBOM's media type.
    format: &'static str,
    /// Store paths listed.
    packages: usize,
    /// The file written (`-o`).
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<PathBuf>,
    /// The referrers attached (`--attach`).
    attached: Vec<crate::oci::digest::Sha256Digest>,
}
