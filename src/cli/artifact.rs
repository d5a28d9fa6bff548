//! `nixoci artifact push` and `nixoci artifact pull`: files and
//! directories through a registry, as ORAS clients move them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::remote::artifact::{self, Input, PushOptions};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::args::{file_and_media_type, reference_arg};
use super::limit_args::LimitArgs;
use super::output::TransferOutputArgs;
use super::remote::TransferBars;
use super::remote_args::RemoteArgs;

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Push files (FILE[:MEDIATYPE]) and directories (packed as tar+gzip,
    /// as ORAS packs them) as an OCI artifact.
    Push(PushArgs),
    /// Pull an artifact's files into a directory (packed directories
    /// unpacked safely, each only under its own title; every layer must
    /// be titled; the files are yours, writable by you); an existing file
    /// is an error unless --overwrite.
    Pull(PullArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Where: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    /// Files (FILE or FILE:MEDIATYPE, default application/vnd.oci.image.layer.v1.tar
    /// as ORAS gives) and directories.
    #[arg(required = true, value_name = "FILE[:MEDIATYPE]|DIR")]
    inputs: Vec<String>,
    /// The artifact type (default, without --config:
    /// application/vnd.unknown.artifact.v1).
    #[arg(long, value_name = "MEDIATYPE", value_parser = super::args::artifact_type_arg)]
    artifact_type: Option<String>,
    /// A manifest annotation (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    /// Annotations in ORAS's file format: {"$manifest": {...}, "$config":
    /// {...}, "FILE": {...}}.
    #[arg(long, value_name = "FILE")]
    annotations_file: Option<PathBuf>,
    /// A config blob, FILE[:MEDIATYPE] (default
    /// application/vnd.unknown.config.v1+json, as ORAS gives).
    #[arg(long, value_name = "FILE[:MEDIATYPE]")]
    config: Option<String>,
    /// The manifest this artifact refers to, in the same repository.
    #[arg(long, value_name = "REFERENCE")]
    subject: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// What: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    /// The directory to write the files into (made when missing).
    dir: PathBuf,
    /// Replace files and directories that exist.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

pub fn run(c: &ArtifactCommand) -> Result<ExitCode> {
    match c {
        ArtifactCommand::Push(a) => push(a),
        ArtifactCommand::Pull(a) => pull(a),
    }
}

fn push(a: &PushArgs) -> Result<ExitCode> {
    let target = reference_arg(&a.reference)?;
    let inputs: Vec<Input> = a
        .inputs
        .iter()
        .map(|i| {
            let (path, media_type) =
                file_and_media_type(i, "application/vnd.oci.image.layer.v1.tar");
            if path.is_dir() && !i.ends_with(media_type.as_str()) {
                Input::Dir { path }
            } else {
                Input::File { path, media_type }
            }
        })
        .collect();
    let mut o = PushOptions {
        artifact_type: a.artifact_type.clone(),
        ..Default::default()
    };
    if let Some(f) = &a.annotations_file {
        let read = artifact::read_annotations_file(f)?;
        o.annotations = read.manifest;
        o.config_annotations = read.config;
        o.file_annotations = read.files;
    }
    o.annotations
        .extend(super::remote::annotations(&a.annotation)?);
    o.config = a
        .config
        .as_deref()
        .map(|c| file_and_media_type(c, "application/vnd.unknown.config.v1+json"));
    o.subject = a.subject.as_deref().map(reference_arg).transpose()?;
    o.limits = a.limits.limits();
    let mode = a.output.mode();
    let bars = Arc::new(TransferBars::new(mode));
    let report = artifact::push(&target, &inputs, &o, &a.remote.options()?, bars.clone())
        .with_context(|| format!("cannot push the artifact to {target}"))?;
    bars.clear();
    mode.report(&report, |out| {
        writeln!(
            out,
            "{}@{}: {} file(s), {}",
            report.reference,
            report.digest,
            report.layers.len(),
            report
                .artifact_type
                .as_deref()
                .unwrap_or("(artifact type from the config)")
        )
    })
}

fn pull(a: &PullArgs) -> Result<ExitCode> {
    let source = reference_arg(&a.reference)?;
    let mode = a.output.mode();
    let bars = Arc::new(TransferBars::new(mode));
    let report = artifact::pull(
        &source,
        &a.dir,
        a.overwrite,
        &a.limits.limits(),
        &a.remote.options()?,
        bars.clone(),
    )
    .with_context(|| format!("cannot pull the artifact {source}"))?;
    bars.clear();
    mode.report(&report, |out| {
        writeln!(
            out,
            "{}: {} from {}@{}",
            report.dir.display(),
            report.written.join(", "),
            report.reference,
            report.digest
        )
    })
}
