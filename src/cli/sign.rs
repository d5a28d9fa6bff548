//! `nixoci sign` and `nixoci verify-signature`: signatures cosign accepts,
//! on images in a registry ([`crate::remote::sign`],
//! [`crate::remote::signatures`], checked by [`crate::sign::found`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::remote;
use crate::sign::found::{check_all, Found};
use crate::sign::key::{PrivateKey, PublicKey};

use super::args::reference_arg;
use super::output::{Output, OutputArgs, TransferOutputArgs};
use super::remote::{annotations, TransferBars};
use super::remote_args::RemoteArgs;

/// What stderr says of every verification: nothing but the key is checked.
const NO_TLOG: &str = "note: no transparency log was consulted (as cosign's --insecure-ignore-tlog=true): a signature that verifies proves that the key signed the image, not when, and no certificate or identity is checked";

/// The signature formats `nixoci sign` writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SignFormat {
    /// cosign's default: a simple-signing payload layer of the image
    /// tagged `sha256-<hex>.sig`, which every cosign version verifies.
    Simple,
    /// cosign 3's default: a sigstore bundle (v0.3, a DSSE envelope of an
    /// in-toto statement) attached as an OCI 1.1 referrer of the image
    /// (on a registry without the referrers API, listed under the
    /// fallback tag `sha256-<hex>`).
    Bundle,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST]. A tag is resolved
    /// to the digest it names (for a multi-platform image, the index's),
    /// and that digest is signed.
    reference: String,
    /// The private key: ECDSA P-256 in PKCS#8 PEM.
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// An annotation to sign with the image (repeatable): it goes into the
    /// signed payload (with `--format bundle`, the statement subject's
    /// annotations), and `cosign verify -a KEY=VALUE` checks it.
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    /// The signature format.
    #[arg(long, value_enum, default_value_t = SignFormat::Simple)]
    format: SignFormat,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

#[derive(Debug, Args)]
pub struct VerifySignatureArgs {
    /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
    /// The public key (cosign.pub): ECDSA P-256 in PEM.
    #[arg(long, value_name = "PUB")]
    key: PathBuf,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// The signing key at `path`, as `sign` reads it.
fn signing_key(path: &Path) -> Result<PrivateKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the signing key {}", path.display()))?;
    Ok(PrivateKey::from_pkcs8_pem(&pem, path)?)
}

/// `nixoci sign`.
pub fn sign(a: &SignArgs) -> Result<ExitCode> {
    let target = reference_arg(&a.reference)?;
    let annotations = annotations(&a.annotation)?;
    let key = signing_key(&a.key)?;
    let opts = a.remote.options()?;
    let mode = a.output.mode();
    let bars = Arc::new(TransferBars::new(mode));
    let report = match a.format {
        SignFormat::Simple => remote::sign(&target, &key, &annotations, &opts, bars.clone()),
        SignFormat::Bundle => remote::sign_bundle(&target, &key, &annotations, &opts, bars.clone()),
    }
    .with_context(|| format!("cannot sign {target}"))?;
    bars.clear();
    mode.report(&report, |out| {
        if report.format == crate::sign::found::Format::Bundle {
            let what = if report.action == "unchanged" {
                "signed already with this key and these annotations: nothing written"
            } else {
                "signed"
            };
            return writeln!(
                out,
                "{}@{}: {what}; the sigstore bundle is the referrer {}, one of the image's {} bundle signatures",
                report.reference, report.digest, report.signature, report.signatures
            );
        }
        let what = if report.action == "unchanged" {
            "signed already with this key and these annotations: nothing written"
        } else {
            "signed"
        };
        writeln!(
            out,
            "{}@{}: {what}; {} holds {} signatures",
            report.reference, report.digest, report.signature, report.signatures
        )
    })
}

/// What `verify-signature` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Verification {
    reference: String,
    digest: crate::oci::digest::Sha256Digest,
    key: PathBuf,
    /// Whether at least one signature verifies.
    verified: bool,
    /// Always `"not consulted"`.
    transparency_log: &'static str,
    signatures: Vec<Found>,
}

/// `nixoci verify-signature`: exit 0 when at least one signature of the
/// image verifies with the key, 1 when none does (or there is none).
pub fn verify(a: &VerifySignatureArgs) -> Result<ExitCode> {
    let target = reference_arg(&a.reference)?;
    let key = PublicKey::load(&a.key)?;
    let fetched = remote::signatures(&target, &a.remote.options()?)
        .with_context(|| format!("cannot read the signatures of {target}"))?;
    let signatures = check_all(fetched.candidates, &fetched.digest, &key);
    let report = Verification {
        reference: target.to_string(),
        digest: fetched.digest.clone(),
        key: a.key.clone(),
        verified: signatures.iter().any(|s| s.verified),
        transparency_log: "not consulted",
        signatures,
    };
    eprintln!("{NO_TLOG}");
    let mode = match a.output.mode() {
        Output::Quiet if !report.verified => Output::Text,
        mode => mode,
    };
    mode.print(&report, |out| {
        if !report.verified {
            // Listed on standard error with the failure, below.
            return Ok(());
        }
        for s in &report.signatures {
            let verdict = match &s.reason {
                None => "verified".to_owned(),
                Some(why) => format!("not verified: {why}"),
            };
            writeln!(
                out,
                "{} signature at {}{}: {verdict}",
                s.format.as_str(),
                s.location,
                annotations_text(s)
            )?;
        }
        Ok(())
    })?;
    if report.verified {
        return Ok(ExitCode::SUCCESS);
    }
    let name = format!("{target} ({})", report.digest);
    if report.signatures.is_empty() {
        eprintln!(
            "error: {name} has no signature: {} does not exist or holds none, and no sigstore bundle refers to it; sign it with `nixoci sign --key KEY {target}` (or `cosign sign`)",
            fetched.signature
        );
    } else {
        for s in &report.signatures {
            eprintln!(
                "{} signature at {}{}: {}",
                s.format.as_str(),
                s.location,
                annotations_text(s),
                s.reason.as_deref().unwrap_or_default()
            );
        }
        eprintln!(
            "error: none of the {} signatures of {name} verifies with the key {}",
            report.signatures.len(),
            a.key.display()
        );
    }
    Ok(ExitCode::FAILURE)
}

/// ` (annotations k=v, ...)`, or nothing.
fn annotations_text(s: &Found) -> String {
    if s.annotations.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = s
        .annotations
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(v) => format!("{k}={v}"),
            v => format!("{k}={v}"),
        })
        .collect();
    format!(" (annotations {})", pairs.join(", "))
}
