//! How to reach and authenticate to a registry, as every registry command
//! takes it (`RemoteArgs`): credentials (flags, standard input,
//! `NIXOCI_CREDS`, then the credential files), plain HTTP, a CA file
//! (`--ca-file`, else `NIX_SSL_CERT_FILE`), parallelism, retries, the
//! timeout and the chunk size.

use std::io::Read;
use std::path::PathBuf;

use crate::remote::auth::{Credentials, Secret};
use crate::remote::{self, RemoteOptions};
use anyhow::{Context, Result};
use clap::Args;

/// `USER:PASSWORD` in the environment, used when neither `--creds` nor
/// `--password-stdin` is given, before the credential files: how a Nix
/// fixed-output derivation (`ociPullImage`, through `impureEnvVars`) gets
/// credentials without writing them into the store.
pub const CREDS_ENV: &str = "NIXOCI_CREDS";

/// The CA bundle Nix's own downloads trust (the default of its
/// `ssl-cert-file`), which nixpkgs' OpenSSL honours too: set for a
/// TLS-intercepting proxy, it reaches `ociPullImage`'s fixed-output
/// derivation through `impureEnvVars`. Trusted like `--ca-file` when that
/// is not given.
pub const NIX_CA_ENV: &str = "NIX_SSL_CERT_FILE";

/// How to reach and authenticate to the registry.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// USER:PASSWORD. Prefer --password-stdin, NIXOCI_CREDS or a credentials
    /// file (~/.docker/config.json, REGISTRY_AUTH_FILE): a command line is
    /// visible to other users of the machine.
    #[arg(long, value_name = "USER:PASSWORD", conflicts_with = "password_stdin")]
    creds: Option<String>,
    /// The user name for --password-stdin.
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the password from standard input (with --username).
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Speak plain HTTP to the registry. Without it HTTPS is used, except
    /// for a registry on this machine that does not speak TLS.
    #[arg(long)]
    plain_http: bool,
    /// Trust the CA certificates in this PEM file (for a private CA).
    /// Without it, those of NIX_SSL_CERT_FILE when that names a file.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Blob transfers at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Retries of a transient failure (5xx, connection reset, timeout),
    /// with exponential backoff.
    #[arg(long, default_value_t = 4)]
    retries: u32,
    /// Give up on a request when the registry sends nothing for this many
    /// seconds (the request is then retried, as a transient failure).
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = seconds)]
    timeout: std::time::Duration,
    /// Upload blobs larger than this many MiB in 4 MiB chunks (smaller ones
    /// go in one streamed request, which is faster).
    #[arg(long, value_name = "MIB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    chunked_above_mib: u64,
}

impl RemoteArgs {
    pub(super) fn options(&self) -> Result<RemoteOptions> {
        let credentials = if let Some(c) = &self.creds {
            Some(Credentials::from_user_pass(c)?)
        } else if self.password_stdin {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            anyhow::ensure!(
                !password.is_empty(),
                "--password-stdin: standard input is empty"
            );
            Some(Credentials::Basic {
                username: self.username.clone().unwrap_or_default(),
                password: Secret::new(password),
            })
        } else if let Some(c) = std::env::var_os(CREDS_ENV).filter(|v| !v.is_empty()) {
            let c = c
                .into_string()
                .map_err(|_| anyhow::anyhow!("{CREDS_ENV} is not UTF-8"))?;
            Some(Credentials::from_user_pass(&c).with_context(|| format!("in {CREDS_ENV}"))?)
        } else {
            None
        };
        Ok(RemoteOptions {
            credentials,
            plain_http: self.plain_http,
            ca_file: self.ca_file.clone().or_else(nix_ca_file),
            jobs: self.jobs.into(),
            retries: self.retries,
            mount_from: Vec::new(),
            blob_cache: RemoteOptions::default_blob_cache(),
            chunked_above: self.chunked_above_mib << 20,
            timeout: self.timeout,
            // Read once, here: a bad value stops the command before it
            // sends anything.
            document_timeout: remote::document_timeout_from_env()?.unwrap_or_default(),
        })
    }
}

/// The file [`NIX_CA_ENV`] names, when it exists. A missing one changes
/// nothing: the variable is often set for the whole machine to a path that
/// the Nix sandbox does not show (`/etc/ssl/...`), where the public roots
/// are trusted all the same.
fn nix_ca_file() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(NIX_CA_ENV).filter(|v| !v.is_empty())?);
    if path.exists() {
        Some(path)
    } else {
        tracing::debug!(
            "{NIX_CA_ENV} names {}, which does not exist: not used",
            path.display()
        );
        None
    }
}

fn seconds(s: &str) -> std::result::Result<std::time::Duration, String> {
    remote::parse_seconds(s).ok_or_else(|| format!("{s:?}: seconds, more than 0 and at most 86400"))
}
