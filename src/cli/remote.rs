//! The registry subcommands: push, pull, tag, exists (and inspect of a
//! remote reference), with transfer progress bars and JSON reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use crate::inspect::human_size;
use crate::oci::reference::Reference;
use crate::progress::Progress;
use crate::remote;
use crate::verify::short;
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::args::{layout_arg, reference_arg, reference_arg_as};
use super::limit_args::LimitArgs;
use super::output::{count, signatures, signed_name, Output, OutputArgs, TransferOutputArgs};
use super::remote_args::RemoteArgs;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image layout, with `:TAG` when it holds several images.
    layout: String,
    /// Where to push: [REGISTRY/]REPOSITORY[:TAG][@DIGEST]. Without a tag
    /// or digest, the image goes under every tag the layout gives it (and
    /// its platform tags), `latest` if it has none.
    reference: String,
    /// Another repository of the same registry to mount blobs from
    /// (repeatable). Repositories nixoci pushed to or pulled from are
    /// remembered and tried anyway.
    #[arg(long, value_name = "REPOSITORY")]
    mount_from: Vec<String>,
    /// Sign each pushed manifest (and the index of a multi-platform image)
    /// after the push, as `nixoci sign --key KEY` does; the key is read
    /// before anything is pushed.
    #[arg(long, value_name = "KEY")]
    pub(super) sign_key: Option<PathBuf>,
    /// The passphrase of `--sign-key`, when it is encrypted.
    #[command(flatten)]
    pub(super) sign_key_passphrase: super::passphrase::KeyPassphraseArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

impl PushArgs {
    /// How the command reports.
    pub(super) fn output_mode(&self) -> Output {
        self.output.mode()
    }
}

/// What signs a pushed image: given the layout, its tag and the reference
/// pushed to, it signs and returns what it did.
pub(super) type SignPushed<'a> = &'a dyn Fn(
    &Path,
    Option<&str>,
    &Reference,
    &remote::RemoteOptions,
) -> Result<Vec<remote::SignReport>>;

/// `push`'s report, with `--sign-key`'s signatures.
#[derive(Serialize)]
struct PushAndSign<'a> {
    #[serde(flatten)]
    push: &'a remote::PushReport,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    signed: Vec<remote::SignReport>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    /// The image layout directory to write (must not exist unless --force).
    dir: PathBuf,
    /// For a multi-platform image, pull only this one: OS/ARCH[/VARIANT].
    #[arg(long, value_parser = super::args::platform_arg)]
    platform: Option<crate::oci::Platform>,
    /// Also pull what is attached to the image (its referrers: SBOMs,
    /// signatures), listed without a tag in the layout nested at
    /// DIR/referrers (index.json keeps the image alone).
    #[arg(long)]
    referrers: bool,
    /// The tag to give the image in the layout (default: the reference's).
    #[arg(long)]
    tag: Option<String>,
    /// Replace DIR if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

#[derive(Debug, Args)]
pub struct PrefetchArgs {
    /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    /// From a multi-platform image, this platform's image: OS/ARCH[/VARIANT]
    /// (default: Linux on this machine's architecture).
    #[arg(long, conflicts_with = "all_platforms", value_parser = super::args::platform_arg)]
    platform: Option<crate::oci::Platform>,
    /// Pin the multi-platform image itself: every platform is pulled.
    #[arg(long)]
    all_platforms: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

/// What `nixoci prefetch` prints: the arguments of `ociPullImage`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Prefetched {
    image_name: String,
    image_digest: crate::oci::digest::Sha256Digest,
    hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    all_platforms: bool,
    /// How many layers the image has (with `allPlatforms`, this machine's
    /// platform's image, if there is one).
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<usize>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The image to attach to: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    /// The artifact's type (a media type, e.g. application/spdx+json).
    #[arg(long, value_name = "MEDIATYPE", value_parser = super::args::artifact_type_arg)]
    artifact_type: String,
    /// The files, each FILE or FILE:MEDIATYPE (default
    /// application/octet-stream), named by their file name.
    #[arg(required = true, value_name = "FILE[:MEDIATYPE]")]
    files: Vec<String>,
    /// An annotation of the artifact manifest (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

#[derive(Debug, Args)]
pub struct ReferrersArgs {
    /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    /// Only the referrers of this artifact type.
    #[arg(long, value_name = "MEDIATYPE", value_parser = super::args::artifact_type_arg)]
    artifact_type: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// `KEY=VALUE` pairs.
pub(super) fn annotations(pairs: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--annotation {p:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// `nixoci attach`.
pub fn attach(a: &AttachArgs) -> Result<ExitCode> {
    let target = reference_arg(&a.reference)?;
    let files: Vec<remote::AttachFile> = a
        .files
        .iter()
        .map(|f| {
            let (path, media_type) =
                super::args::file_and_media_type(f, "application/octet-stream");
            remote::AttachFile {
                path,
                media_type: media_type.into(),
            }
        })
        .collect();
    let opts = a.remote.options()?;
    let mode = a.output.mode();
    let bars = Arc::new(TransferBars::new(mode));
    let mut o = remote::AttachOptions::new(&a.artifact_type);
    o.annotations = annotations(&a.annotation)?;
    o.limits = a.limits.limits();
    let report = remote::attach(&target, &files, &o, &opts, bars.clone())
        .with_context(|| format!("cannot attach to {target}"))?;
    bars.clear();
    mode.report(&report, |out| {
        writeln!(
            out,
            "{}: {} {} attached to {} ({})",
            report.reference, report.artifact_type, report.digest, report.subject, report.listed
        )
    })
}

/// `nixoci referrers`.
pub fn referrers(a: &ReferrersArgs) -> Result<ExitCode> {
    let target = reference_arg(&a.reference)?;
    let list = remote::referrers(&target, a.artifact_type.as_deref(), &a.remote.options()?)
        .with_context(|| format!("cannot list the referrers of {target}"))?;
    a.output.mode().report(&list, |out| {
        for m in &list.manifests {
            writeln!(
                out,
                "{}  {}",
                m.digest,
                m.artifact_type.as_deref().unwrap_or("(no artifact type)")
            )?;
        }
        Ok(())
    })
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image to tag: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    /// The new tag, in the same repository.
    new_tag: String,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

#[derive(Debug, Args)]
pub struct ExistsArgs {
    /// [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// `nixoci push`; with `sign`, what signs the image after the push.
pub(super) fn push(a: &PushArgs, sign: Option<SignPushed>) -> Result<ExitCode> {
    let (layout, tag) = layout_arg(&a.layout)?;
    // No tag (nor digest) in the destination: every tag the layout gives
    // the image, so Docker's default `latest` is not filled in.
    let target = reference_arg_as(&a.reference, Reference::parse_as_written)?;
    let mut opts = a.remote.options()?;
    opts.mount_from = a.mount_from.clone();
    let mode = a.output.mode();
    let bars = Arc::new(TransferBars::new(mode));
    let report = remote::push(&layout, tag.as_deref(), &target, &opts, bars.clone())
        .with_context(|| format!("cannot push {} to {target}", layout.display()))?;
    bars.clear();
    let signed = match sign {
        Some(sign) => sign(&layout, tag.as_deref(), &target, &opts)?,
        None => Vec::new(),
    };
    let both = PushAndSign {
        push: &report,
        signed,
    };
    mode.report(&both, |out| {
        for s in &both.signed {
            writeln!(
                out,
                "{}: signed ({}); {} holds {}",
                signed_name(&s.reference, &s.digest),
                s.action,
                s.signature,
                signatures(s.signatures, "")
            )?;
        }
        let named = if target.digest.is_some() {
            report.reference.clone()
        } else {
            format!("{}@{}", report.reference, report.digest)
        };
        if report.up_to_date {
            return writeln!(out, "{named}: up to date, nothing sent");
        }
        writeln!(
            out,
            "{}: {} uploaded ({}), {} already there, {} mounted, {}",
            named,
            report.uploaded,
            human_size(report.bytes_sent),
            report.skipped,
            report.mounted,
            count(report.manifests, "manifest")
        )
    })
}

/// `nixoci pull`.
pub fn pull(a: &PullArgs) -> Result<ExitCode> {
    let source = reference_arg(&a.reference)?;
    let o = remote::PullOptions {
        platform: a.platform.clone(),
        tag: a.tag.clone(),
        force: a.force,
        referrers: a.referrers,
    };
    let opts = a.remote.options()?;
    let mode = a.output.mode();
    let bars = Arc::new(TransferBars::new(mode));
    let report = remote::pull(&source, &a.dir, &o, &opts, bars.clone())
        .with_context(|| format!("cannot pull {source}"))?;
    bars.clear();
    mode.report(&report, |out| {
        writeln!(
            out,
            "{}: {} {} ({}, {}){}",
            report.layout.display(),
            report.reference,
            report.digest,
            count(report.blobs.len(), "blob"),
            human_size(report.bytes_received),
            report
                .tag
                .as_deref()
                .map(|t| format!("; tag {t}"))
                .unwrap_or_default()
        )
    })
}

/// `nixoci prefetch`: resolve the reference to the platform's image (or
/// the index, with `--all-platforms`), pull it by digest exactly as
/// `ociPullImage` will, and hash the layout as Nix will (the NAR hash).
pub fn prefetch(a: &PrefetchArgs) -> Result<ExitCode> {
    let source = reference_arg(&a.reference)?;
    let asked = a.platform.clone();
    let opts = a.remote.options()?;
    let choice = if a.all_platforms {
        None
    } else {
        Some(
            asked
                .clone()
                .unwrap_or_else(crate::oci::Platform::host_linux),
        )
    };
    let resolved = remote::resolve(&source, choice.as_ref(), &opts)
        .with_context(|| format!("cannot resolve {source}"))?;
    let pinned = source.with_digest(&resolved.digest);
    // The platform ociPullImage passes on: the one chosen from an index,
    // the one asked for a single image (which the pull then checks), and
    // for a single image without one, none (it is read from the config).
    let pass = if resolved.was_index { choice } else { asked };
    // Removed when done, and by the signal handler if interrupted.
    let tmp = crate::layout::Scratch::new("prefetch")
        .context("cannot create a temporary directory to pull into")?;
    let dir = tmp.path().join("image");
    let mode = a.output.mode();
    let bars = Arc::new(TransferBars::new(mode));
    let o = remote::PullOptions {
        platform: pass.clone(),
        ..Default::default()
    };
    remote::pull(&pinned, &dir, &o, &opts, bars.clone())
        .with_context(|| format!("cannot pull {pinned}"))?;
    bars.clear();
    let hash = crate::nar::hash(&dir)?;
    let layout = crate::layout::Layout::open(&dir)?;
    // With every platform, the layers of this machine's, if it has one.
    let image = layout
        .resolve(
            None,
            Some(
                &pass
                    .clone()
                    .unwrap_or_else(crate::oci::Platform::host_linux),
            ),
        )
        .ok();
    // The image's own platform, from its config, not the request's: asked
    // for linux/arm64, a linux/arm64/v8 image prints its variant (the pull
    // ociPullImage makes checks the config, which then agrees). An
    // artifact's config names none: the request's, if any, is printed.
    let platform = if a.all_platforms {
        None
    } else {
        let own = match &image {
            Some(image) => {
                let c = image.config_value()?;
                let text = |k: &str| c[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
                match (text("architecture"), text("os")) {
                    (Some(architecture), Some(os)) => Some(crate::oci::Platform {
                        architecture,
                        os,
                        variant: text("variant"),
                        os_version: None,
                        os_features: None,
                    }),
                    _ => None,
                }
            }
            None => None,
        };
        own.or(pass)
    };
    let out = Prefetched {
        image_name: format!("{}/{}", source.registry, source.repository),
        image_digest: resolved.digest,
        hash: crate::nar::sri(&hash),
        os: platform.as_ref().map(|p| p.os.clone()),
        arch: platform.as_ref().map(|p| p.architecture.clone()),
        variant: platform.as_ref().and_then(|p| p.variant.clone()),
        all_platforms: a.all_platforms,
        layers: image.as_ref().map(|i| i.layers.len()),
    };
    mode.report(&out, |w| {
        writeln!(w, "{{")?;
        writeln!(w, "  imageName = \"{}\";", out.image_name)?;
        writeln!(w, "  imageDigest = \"{}\";", out.image_digest)?;
        writeln!(w, "  hash = \"{}\";", out.hash)?;
        for (k, v) in [
            ("os", &out.os),
            ("arch", &out.arch),
            ("variant", &out.variant),
        ] {
            if let Some(v) = v {
                writeln!(w, "  {k} = \"{v}\";")?;
            }
        }
        if out.all_platforms {
            writeln!(w, "  allPlatforms = true;")?;
        }
        writeln!(w, "}}")
    })
}

/// `nixoci tag`: the new tag and the digest it names.
pub fn tag(a: &TagArgs) -> Result<ExitCode> {
    let source = reference_arg(&a.reference)?;
    let (digest, written) = remote::tag(&source, &a.new_tag, &a.remote.options()?)
        .with_context(|| format!("cannot tag {source} as {}", a.new_tag))?;
    let dest = source.with_tag(&a.new_tag);
    let action = if written { "set" } else { "unchanged" };
    a.output.mode().report(
        &serde_json::json!({"reference": dest.to_string(), "digest": digest, "action": action}),
        |out| {
            if written {
                writeln!(out, "{dest}: {digest}")
            } else {
                writeln!(out, "{dest}: {digest} (unchanged: nothing written)")
            }
        },
    )
}

/// Exit 0 when the image exists, 1 when the registry says it does not, 2
/// when that cannot be told (unreachable, refused credentials, ...).
pub fn exists(a: &ExistsArgs) -> Result<ExitCode> {
    let answer =
        reference_arg(&a.reference).and_then(|r| Ok(remote::exists(&r, &a.remote.options()?)?));
    let report = |digest: Option<&crate::oci::digest::Sha256Digest>| {
        let value = serde_json::json!({"reference": a.reference, "exists": digest.is_some(), "digest": digest});
        // The text says nothing: the exit status is the answer.
        a.output.mode().print(&value, |_| Ok(()))
    };
    match answer {
        Ok(Some(d)) => report(Some(&d)).map(|()| ExitCode::SUCCESS),
        Ok(None) => report(None).map(|()| ExitCode::from(1)),
        // Anything else is "cannot tell", never "no".
        Err(e) => {
            eprintln!("error: cannot tell whether {} exists: {e:#}", a.reference);
            Ok(ExitCode::from(2))
        }
    }
}

/// One progress bar per blob in flight, on standard error when the output
/// mode shows progress (a terminal, and not --quiet).
pub(super) struct TransferBars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl TransferBars {
    pub(super) fn new(mode: Output) -> Self {
        TransferBars {
            multi: mode
                .shows_progress()
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl Progress for TransferBars {
    fn blob_start(&self, digest: &str, size: u64) {
        let Some(m) = &self.multi else { return };
        let bar = m.add(
            ProgressBar::new(size).with_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
        );
        bar.set_prefix(short(digest).to_owned());
        self.bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.to_owned(), bar);
    }

    fn blob_advance(&self, digest: &str, n: u64) {
        if let Some(b) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            b.inc(n);
        }
    }

    fn blob_rewind(&self, digest: &str, n: u64) {
        if let Some(b) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            b.set_position(b.position().saturating_sub(n));
        }
    }

    fn blob_done(&self, digest: &str, how: &str) {
        let Some(m) = &self.multi else { return };
        if let Some(b) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest)
        {
            b.finish_and_clear();
            m.remove(&b);
        }
        let _ = m.println(format!("{} {how}", short(digest)));
    }
}
