//! `nixoci diff A B`: two images, each a layout (`DIR[:TAG]`) or a
//! registry reference, read by the `DIR|REF` rule; a reference is pulled
//! (whole, with its referrers, quietly, into a temporary directory removed
//! afterwards) and compared as a layout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::diff::{Change, Report, Status};
use crate::inspect::human_size;
use crate::layout::Layout;

use super::args::{locate, Target};
use super::limit_args::LimitArgs;
use super::output::{count, Output, OutputArgs};
use super::remote_args::RemoteArgs;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The image compared from: a layout directory, LAYOUT:TAG, or
    /// REGISTRY/REPOSITORY[:TAG][@DIGEST].
    a: String,
    /// The image compared to, in the same forms.
    b: String,
    /// For an image index (on either side): OS/ARCH[/VARIANT] (default:
    /// linux and this machine's architecture).
    #[arg(long, value_parser = super::args::platform_arg)]
    platform: Option<crate::oci::Platform>,
    /// How many differing files to list per changed layer (default 10;
    /// with --json 10000). All are counted.
    #[arg(long, value_name = "N")]
    files: Option<usize>,
    /// Exit with status 1 when the images differ, 0 when they do not (and
    /// 2 on an error).
    #[arg(long)]
    exit_code: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    print: OutputArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// One side, as a layout to read: the directory, the tag, what to call it
/// in the report, and the temporary directory holding a pulled image.
struct Opened {
    dir: PathBuf,
    tag: Option<String>,
    source: String,
    /// A pulled image's registry keeps referrers itself (referrers API).
    referrers_api: bool,
    _pulled: Option<crate::layout::Scratch>,
}

/// `nixoci diff`.
pub fn diff(a: &DiffArgs) -> Result<ExitCode> {
    let result = run(a);
    if !a.exit_code {
        return result;
    }
    // With --exit-code, 1 means "they differ": an error is 2, as for
    // diff(1) and cmp(1).
    result.or_else(|e| {
        eprintln!("error: {e:#}");
        Ok(ExitCode::from(2))
    })
}

fn run(a: &DiffArgs) -> Result<ExitCode> {
    let mode = a.print.mode();
    let platform = a.platform.clone();
    let mut opts = crate::diff::DiffOptions {
        platform: platform.clone(),
        limits: a.limits.limits(),
        max_files: a.files.unwrap_or(if mode == Output::Json {
            crate::diff::JSON_FILES
        } else {
            10
        }),
        referrers_api: false,
    };
    let side_a = open(&a.a, &a.remote)?;
    let side_b = open(&a.b, &a.remote)?;
    // Where A is, a push of B goes: its registry's way of listing
    // referrers counts.
    opts.referrers_api = side_a.referrers_api;
    let layout =
        |s: &Opened| Layout::open(&s.dir).with_context(|| format!("cannot read {}", s.source));
    let mut report = crate::diff::diff(
        &layout(&side_a)?,
        side_a.tag.as_deref(),
        &layout(&side_b)?,
        side_b.tag.as_deref(),
        &opts,
    )
    .with_context(|| format!("cannot diff {} and {}", side_a.source, side_b.source))?;
    report.a.source = side_a.source.clone();
    report.b.source = side_b.source.clone();
    let differ = !report.identical;
    mode.print(&report, |out| print_report(out, &report, opts.max_files))?;
    Ok(if a.exit_code && differ {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Read `arg` by the `DIR|REF` rule; a reference is pulled, every
/// platform, into a temporary directory.
fn open(arg: &str, remote: &RemoteArgs) -> Result<Opened> {
    match locate(arg)? {
        Target::Layout { dir, tag } => {
            anyhow::ensure!(
                dir.exists(),
                "{}: no such image layout directory",
                dir.display()
            );
            Ok(Opened {
                source: dir.display().to_string(),
                dir,
                tag,
                referrers_api: false,
                _pulled: None,
            })
        }
        Target::Remote(r) => {
            // Removed when done, and by the signal handler if interrupted.
            let tmp = crate::layout::Scratch::new("diff")
                .context("cannot create a temporary directory to pull into")?;
            let dir = tmp.path().join("image");
            let mut opts = remote.options()?;
            // A diff changes nothing, not even the record of where blobs are.
            opts.blob_cache = None;
            // With its referrers: those a push of B need not send.
            let o = crate::remote::PullOptions {
                referrers: true,
                ..Default::default()
            };
            let pulled =
                crate::remote::pull(&r, &dir, &o, &opts, Arc::new(crate::progress::Silent))
                    .with_context(|| format!("cannot pull {r}"))?;
            Ok(Opened {
                dir,
                tag: None,
                source: r.to_string(),
                referrers_api: pulled.referrers_api,
                _pulled: Some(tmp),
            })
        }
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Same => "same",
        Status::Added => "added",
        Status::Removed => "removed",
    }
}

/// What `diff` prints as text.
fn print_report(out: &mut dyn Write, r: &Report, max_files: usize) -> std::io::Result<()> {
    for (name, s) in [("A", &r.a), ("B", &r.b)] {
        let platform = s
            .platform
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        writeln!(out, "{name}: {}{platform}", s.source)?;
        writeln!(
            out,
            "  manifest {}  ({} bytes)",
            s.manifest, s.manifest_size
        )?;
        writeln!(out, "  config   {}  ({} bytes)", s.config, s.config_size)?;
        if s.digest != s.manifest {
            writeln!(out, "  index    {}", s.digest)?;
        }
    }
    if r.identical {
        writeln!(out, "identical")?;
    }
    writeln!(out, "layers:")?;
    for l in &r.layers {
        let side = if l.status == Status::Removed {
            "A"
        } else {
            "B"
        };
        writeln!(
            out,
            "  {:<7}  {side}[{}]  {}  {:>9}  diff_id {}",
            status_word(l.status),
            l.index,
            l.digest,
            human_size(l.size),
            l.diff_id
                .as_ref()
                .map_or("(none)".to_owned(), |d| d.to_string())
        )?;
    }
    for c in &r.changed {
        writeln!(
            out,
            "changed layer A[{}] {} -> B[{}] {}: {} {}",
            c.a_index,
            c.a_digest.short(),
            c.b_index,
            c.b_digest.short(),
            c.files_total,
            if c.files_total == 1 {
                "path differs"
            } else {
                "paths differ"
            }
        )?;
        if let Some(n) = &c.note {
            writeln!(out, "  {n}")?;
        } else if c.files_total == 0 {
            writeln!(
                out,
                "  {}",
                if c.same_content {
                    "the same tar, compressed differently"
                } else {
                    "no path differs: the tars differ in entry order or header encoding"
                }
            )?;
        }
        for f in &c.files {
            let change = match f.change {
                Change::Added => "added",
                Change::Removed => "removed",
                Change::Changed => "changed",
            };
            let fields = if f.fields.is_empty() {
                String::new()
            } else {
                format!("  ({})", f.fields.join(", "))
            };
            writeln!(out, "  {change:<7}  {}{fields}", f.path)?;
        }
        if c.files_total > c.files.len() {
            writeln!(
                out,
                "  ... and {} more (--files N lists more; {} listed at most)",
                c.files_total - c.files.len(),
                max_files
            )?;
        }
        if !c.store_paths.is_empty() {
            writeln!(out, "  store paths:")?;
            for p in &c.store_paths {
                writeln!(out, "    {p}")?;
            }
        }
    }
    writeln!(
        out,
        "bytes to push: {} ({} bytes: {}, {})",
        human_size(r.push.bytes),
        r.push.bytes,
        count(r.push.blobs.len(), "blob"),
        count(r.push.manifests.len(), "manifest")
    )
}
