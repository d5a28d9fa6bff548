//! Command-line interface: the clap types, and the dispatch of each
//! subcommand to the function that runs it, by job:
//!
//! - `build`: the building blocks (build, layer, config, manifest,
//!   layout) and `nix-builder`;
//! - `local`: reading a local layout (verify, inspect, archive, unpack);
//! - `diff`: two images compared, each a layout or a reference (pulled
//!   through `remote`);
//! - `remote`: registries (push, pull, tag, exists, inspect of a
//!   reference);
//! - `plan`: the layering plan of a closure graph;
//! - `sign`: signatures cosign accepts (sign, verify-signature), on
//!   images in a registry;
//! - `keys`: signing keys (generate-key-pair);
//! - `manual`: the shell completions and man pages, generated from the
//!   command tree this module hands it; `examples`: each command's
//!   examples, for its `--help` and its man page;
//! - `output`: how a command reports (text, JSON or nothing);
//! - `args`: reading `LAYOUT[:TAG]`, reference and `DIR|REF` arguments;
//! - `remote_args` and `limit_args`: the options every registry
//!   command, and every command that reads layers, takes;
//! - `passphrase`: the passphrase of a private key (`--password-stdin`,
//!   `COSIGN_PASSWORD`, a prompt), for every command that makes or reads
//!   one.
//!
//! Imports go one way: this module uses the others; `artifact` uses
//! `remote` (its progress bars), `manual` uses `examples`; the commands
//! use `args`, `output`, `remote_args`, `limit_args` and `passphrase`,
//! which use none of them
//! (`tests/layering.rs` checks that no two import each other).
//!
//! It is a module of the library, in its top layer, so that the library's
//! internals stay private to the crate: the binary (`src/main.rs`) only
//! calls [`main`], the one public item here, hidden from the library's
//! documentation and no part of its API.

// The doc comments of the clap types are the command's help text, written
// for a terminal (`DIR/blobs/sha256/<layer>`), not for rustdoc.
#![allow(rustdoc::invalid_html_tags)]

mod args;
mod artifact;
mod build;
mod diff;
mod examples;
mod keys;
mod limit_args;
mod local;
mod manual;
mod output;
mod passphrase;
mod plan;
mod remote;
mod remote_args;
mod sbom;
mod sign;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Reproducible OCI images from Nix store paths and files.
///
/// Every output is a pure function of its inputs: the same spec gives the
/// same bytes on any machine. Outputs are written to a temporary sibling and
/// renamed into place, so a failed run leaves nothing behind.
#[derive(Debug, Parser)]
#[command(name = "nixoci", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a whole OCI image layout from an image spec.
    Build(build::BuildArgs),
    /// Build one layer: DIR/blobs/sha256/<layer> and DIR/layer.json.
    Layer(build::BuildArgs),
    /// Build several layers at once, one per group of store paths of a plan:
    /// DIR/blobs/sha256/<layers> and DIR/layers.json.
    Layers(build::BuildArgs),
    /// Build an image config over layers: DIR/config.json.
    Config(build::BuildArgs),
    /// Build an image config and manifest over layers: DIR/manifest.json.
    Manifest(build::BuildArgs),
    /// Assemble an OCI image layout from manifest directories.
    Layout(build::BuildArgs),
    /// Check every digest, size, diff_id and media type of a layout.
    ///
    /// Reports every problem found and exits with status 1 if there is any.
    /// Each layer is read within the limits unpack applies.
    Verify(local::VerifyArgs),
    /// Show the tags, platforms and layers of a layout directory
    /// (`LAYOUT[:TAG]`), or of an image in a registry.
    ///
    /// An existing path, or one written as a path (./x, /x), is a layout; a
    /// name starting with a registry host (ghcr.io/..., localhost:5000/...,
    /// docker.io/...) is a reference; a bare name that is neither is an
    /// error.
    Inspect(local::InspectArgs),
    /// Push an image (or a multi-platform index) from a layout to a registry.
    ///
    /// Blobs the registry has are not sent again; blobs another repository
    /// of the registry has are mounted; the rest are uploaded in chunks, in
    /// parallel, with retries. The manifest goes last.
    Push(remote::PushArgs),
    /// Pull an image from a registry into a new layout, verifying every
    /// digest and size.
    Pull(remote::PullArgs),
    /// Print the arguments of `ociPullImage` for an image in a registry:
    /// the digest of the platform's image and the hash of the layout the
    /// pull writes.
    Prefetch(remote::PrefetchArgs),
    /// Give an image in a registry another tag, moving no blob.
    Tag(remote::TagArgs),
    /// Files and directories through a registry as an OCI artifact, the
    /// way ORAS clients move them.
    #[command(subcommand)]
    Artifact(artifact::ArtifactCommand),
    /// Attach files to an image in a registry as an OCI 1.1 artifact
    /// (an SBOM, a signature, a report) whose subject is the image.
    Attach(remote::AttachArgs),
    /// List what is attached to an image in a registry (the referrers API,
    /// or the fallback tag).
    Referrers(remote::ReferrersArgs),
    /// Sign an image in a registry or a layout with a key, as cosign signs:
    /// the signature goes into the image tagged sha256-<hex>.sig beside it,
    /// or with --format bundle (and in a layout) is attached as a referrer;
    /// `cosign verify` and `nixoci verify-signature` check both.
    ///
    /// A signature already there is kept: signing again adds one.
    Sign(sign::SignArgs),
    /// Check the signatures of an image in a registry or a layout with a
    /// public key:
    /// exit 0 when at least one verifies, 1 when none does (each is listed
    /// with the reason) or there is none. No transparency log is
    /// consulted.
    VerifySignature(sign::VerifySignatureArgs),
    /// Exit 0 if a registry has the image, 1 if not, 2 if it cannot be told.
    Exists(remote::ExistsArgs),
    /// Compare two images (layouts or registry references): layers same,
    /// added or removed, the files that differ in a changed layer, and the
    /// bytes a push of B over A would send.
    ///
    /// Exit status 0 whether or not they differ, unless --exit-code.
    Diff(diff::DiffArgs),
    /// Write an image as a tarball for `podman load` / `docker load`.
    Archive(local::ArchiveArgs),
    /// Extract an image's root filesystem into a new directory, safely.
    ///
    /// Layers are applied in order with OCI whiteouts, digests checked while
    /// reading. Entries that would land outside DIR (`..`, absolute paths,
    /// hard links out, writing through a symlink) are refused, as are device
    /// nodes unless --allow-devices; sizes and counts are bounded. On a
    /// refusal nothing is left behind.
    Unpack(local::UnpackArgs),
    /// Split a closure into layers: which store paths go into which layer,
    /// and why, as JSON.
    ///
    /// Reads the closure graph Nix writes for exportReferencesGraph. The
    /// plan depends only on the graph, never on the order of its entries.
    Plan(plan::PlanArgs),
    /// The SBOM of an image's Nix closure: every store path with its NAR
    /// hash, references and layer, as SPDX 2.3 or CycloneDX 1.6 JSON.
    Sbom(sbom::SbomArgs),
    /// Make a signing key pair as cosign does: PREFIX.key, an ECDSA P-256
    /// private key encrypted with a passphrase (ENCRYPTED SIGSTORE PRIVATE
    /// KEY), and PREFIX.pub, its public key in PEM.
    ///
    /// The passphrase is COSIGN_PASSWORD if set (empty is allowed), else the
    /// first line of standard input with --password-stdin, else asked twice
    /// on the terminal. Neither file may exist; the private key is written
    /// with mode 0600.
    GenerateKeyPair(keys::GenerateKeyPairArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or
    /// powershell) on standard output.
    Completions(manual::CompletionsArgs),
    /// Write the man pages: nixoci.1 and one per command
    /// (nixoci-push.1, nixoci-artifact-push.1, ...), into a new directory.
    Manpages(manual::ManpagesArgs),
    /// Run as the builder of a Nix derivation made by the nix/ functions:
    /// reads the command and spec from the build's structured attrs
    /// (.attrs.json) and writes $out.
    NixBuilder,
}

/// Run the parsed command line.
fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Build(a) => build::image(&a),
        Command::Layer(a) => build::layer(&a),
        Command::Layers(a) => build::layers(&a),
        Command::Config(a) => build::config(&a),
        Command::Manifest(a) => build::manifest(&a),
        Command::Layout(a) => build::layout(&a),
        Command::NixBuilder => build::nix_builder(),
        Command::Plan(a) => plan::run(&a),
        Command::Sbom(a) => sbom::run(&a),
        Command::GenerateKeyPair(a) => keys::generate_key_pair(&a),
        Command::Verify(a) => local::verify(&a),
        Command::Inspect(a) => local::inspect(&a),
        Command::Push(a) => sign::push(&a),
        Command::Pull(a) => remote::pull(&a),
        Command::Prefetch(a) => remote::prefetch(&a),
        Command::Tag(a) => remote::tag(&a),
        Command::Attach(a) => remote::attach(&a),
        Command::Artifact(c) => artifact::run(&c),
        Command::Referrers(a) => remote::referrers(&a),
        Command::Exists(a) => remote::exists(&a),
        Command::Sign(a) => sign::sign(&a),
        Command::VerifySignature(a) => sign::verify(&a),
        Command::Diff(a) => diff::diff(&a),
        Command::Archive(a) => local::archive(&a),
        Command::Unpack(a) => local::unpack(&a),
        Command::Completions(a) => manual::completions(&a, command()),
        // The pages give the examples a section of their own (EXAMPLES).
        Command::Manpages(a) => manual::manpages(&a, Cli::command()),
    }
}

/// The command tree that parses the arguments: the clap definitions, with
/// each command's examples at the end of its help.
fn command() -> clap::Command {
    examples::attach(Cli::command())
}

/// The `nixoci` command, from its arguments to its exit status: what the
/// binary (`src/main.rs`) runs. Not part of the library's API.
pub fn main() -> ExitCode {
    let args = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    raise_open_file_limit();
    // RUST_LOG=nixoci=debug: what nixoci does (retries and why) on stderr.
    if std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty()) {
        use std::io::IsTerminal as _;
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
    }
    // Interrupted (Ctrl-C, SIGTERM, SIGHUP): remove what was being written.
    let _ = ctrlc::set_handler(|| {
        crate::layout::remove_unfinished();
        std::process::exit(130);
    });
    let result = run(args);
    if crate::layout::interrupted() {
        // The signal handler is removing what the run was writing, and
        // exits with 130 when done: the run's own end (often an error, as
        // its files vanish) is no result to report.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`nixoci inspect DIR | head`) is not a failure.
            // A JSON report's write fails as a serde_json error holding it.
            let broken_pipe = err.chain().any(|c| {
                let kind = c
                    .downcast_ref::<std::io::Error>()
                    .map(std::io::Error::kind)
                    .or_else(|| {
                        c.downcast_ref::<serde_json::Error>()
                            .and_then(serde_json::Error::io_error_kind)
                    });
                kind == Some(std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(exit_status(&err))
        }
    }
}

/// The exit status of a failed command: a registry failure's own
/// ([`crate::error::RegistryErrorKind::exit_code`], 20 to 25,
/// docs/reference/commands.md, "Exit status"), else 1.
fn exit_status(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|c| {
            c.downcast_ref::<crate::error::Error>()
                .and_then(crate::error::Error::registry_kind)
        })
        .map_or(1, crate::error::RegistryErrorKind::exit_code)
}

/// Raise the soft limit of open files to the hard one: the readers of an
/// image tree hold a directory open per level of depth (they never follow
/// a path by name through it, `crate::rootfs`), and a deep tree would
/// otherwise stop at the usual soft limit of 1024. Failing to raise it
/// changes nothing.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
