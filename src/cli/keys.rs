//! `nixoci generate-key-pair`: a new ECDSA P-256 key pair in cosign's
//! formats, `PREFIX.key` (encrypted with a passphrase) and `PREFIX.pub`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::output::OutputArgs;
use super::passphrase::PassphraseArgs;
use crate::sign::key;

#[derive(Debug, Args)]
pub struct GenerateKeyPairArgs {
    /// Write PREFIX.key and PREFIX.pub (neither may exist).
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    output_key_prefix: PathBuf,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    #[command(flatten)]
    print: OutputArgs,
}

/// `nixoci generate-key-pair`.
pub fn generate_key_pair(a: &GenerateKeyPairArgs) -> Result<ExitCode> {
    let paths = key::pair_paths(&a.output_key_prefix);
    // Before the passphrase is asked: it is not typed in vain.
    key::check_pair_paths(&paths)?;
    let what = format!("the passphrase of the new {}", paths.0.display());
    let passphrase = a.passphrase.source().read(&what, true)?;
    let private = key::PrivateKey::generate(&paths.0);
    key::write_pair(&private, &passphrase, &paths)?;
    let report = Report {
        private_key: paths.0,
        public_key: paths.1,
        public_key_pem: private.public().to_pem()?,
    };
    a.print.mode().report(&report, |out| {
        writeln!(
            out,
            "{}: private key, encrypted with the passphrase (keep it out of the Nix store)",
            report.private_key.display()
        )?;
        writeln!(out, "{}: public key", report.public_key.display())
    })
}

/// What `generate-key-pair` reports.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// The encrypted private key written.
    private_key: PathBuf,
    /// The public key written.
    public_key: PathBuf,
    /// The public key itself, PEM.
    public_key_pem: String,
}
