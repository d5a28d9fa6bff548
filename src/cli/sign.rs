//! `nixoci sign` and `nixoci verify-signature`: signatures cosign accepts,
//! on images in a registry ([`crate::remote::sign`],
//! [`crate::remote::signatures`], checked by [`crate::sign::found`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::oci::reference::Reference;
use crate::remote;
use crate::sign::found::{check_all, Found};
use crate::sign::key::{PrivateKey, PublicKey};

use super::args::{reference_arg, Target};
use super::output::{signatures, signed_name, Output, OutputArgs, TransferOutputArgs};
use super::passphrase::KeyPassphraseArgs;
use super::remote::{annotations, PushArgs, TransferBars};
use super::remote_args::RemoteArgs;

/// What stderr says of every verification: nothing but the key is checked.
const NO_TLOG: &str = "note: no transparency log was consulted (as cosign's --insecure-ignore-tlog=true): a signature that verifies proves that the key signed the image, not when, and no certificate or identity is checked";

/// The signature formats `nixoci sign` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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
    /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST], or a local image
    /// layout, LAYOUT[:TAG]. A tag is resolved to the digest it names (for
    /// a multi-platform image, the index's), and that digest is signed. In
    /// a layout, the signature is written as a referrer of the image, which
    /// `nixoci push` and `oras cp -r` carry.
    reference: String,
    /// The private key: ECDSA P-256, cosign's encrypted cosign.key (its
    /// passphrase from COSIGN_PASSWORD, --key-password-stdin or the
    /// terminal) or plain PKCS#8 or SEC1 PEM.
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    #[command(flatten)]
    passphrase: KeyPassphraseArgs,
    /// An annotation to sign with the image (repeatable): it goes into the
    /// signed payload (with `--format bundle`, the statement subject's
    /// annotations), and `cosign verify -a KEY=VALUE` checks it.
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    /// The signature format.
    #[arg(long, value_enum, default_value_t = SignFormat::Simple)]
    format: SignFormat,
    /// With a layout: the REGISTRY/REPOSITORY the payload names as the
    /// image's `docker-reference` (cosign checks the digest, not this);
    /// none by default, as a layout has no repository. In a registry, the
    /// image's own repository is named.
    #[arg(long, value_name = "REGISTRY/REPOSITORY")]
    identity: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: TransferOutputArgs,
}

#[derive(Debug, Args)]
pub struct VerifySignatureArgs {
    /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST], or a local image
    /// layout, LAYOUT[:TAG] (its signature referrers are checked).
    reference: String,
    /// The public key (cosign.pub): ECDSA P-256 in PEM.
    #[arg(long, value_name = "PUB")]
    key: PathBuf,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// The signing key at `path`, as `sign` reads it: any form
/// [`PrivateKey::load`] reads, its passphrase asked only if it is
/// encrypted.
pub(super) fn signing_key(path: &Path, passphrase: &KeyPassphraseArgs) -> Result<PrivateKey> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(e).with_context(|| format!("cannot read the signing key {}", path.display()));
    }
    Ok(passphrase.source().load_private_key(path)?)
}

/// The layout a `LAYOUT[:TAG]` argument names, or `None` for a registry
/// reference (read as before: Docker's defaults apply).
fn layout_of(arg: &str) -> Option<(PathBuf, Option<String>)> {
    match super::args::locate(arg) {
        Ok(Target::Layout { dir, tag }) => Some((dir, tag)),
        _ => None,
    }
}

/// `nixoci sign LAYOUT[:TAG]`.
fn sign_layout(a: &SignArgs, dir: &Path, tag: Option<&str>) -> Result<ExitCode> {
    if a.format == SignFormat::Bundle {
        anyhow::bail!(
            "cannot sign {}: --format bundle signs an image in a registry; in a layout, sign with the default format (a referrer that push and oras cp -r carry), or push first and sign there",
            dir.display()
        );
    }
    let annotations = annotations(&a.annotation)?;
    let key = signing_key(&a.key, &a.passphrase)?;
    let identity = a.identity.as_deref().unwrap_or_default();
    let report = crate::sign::local::sign(dir, tag, &key, identity, &annotations)
        .with_context(|| format!("cannot sign {}", dir.display()))?;
    a.output.mode().report(&report, |out| {
        let what = signed_what(report.action);
        writeln!(
            out,
            "{}: {}: {what}; referrer {}; the layout holds {} of it",
            report.layout.display(),
            report.digest,
            report.referrer,
            signatures(report.signatures, "")
        )
    })
}

/// What a sign report's `action` did, as the human report says it.
fn signed_what(action: &str) -> &'static str {
    if action == "unchanged" {
        "signed already with this key and these annotations: nothing written"
    } else {
        "signed"
    }
}

/// `nixoci sign`.
pub fn sign(a: &SignArgs) -> Result<ExitCode> {
    if let Some((dir, tag)) = layout_of(&a.reference) {
        return sign_layout(a, &dir, tag.as_deref());
    }
    let target = reference_arg(&a.reference)?;
    if a.identity.is_some() {
        anyhow::bail!(
            "--identity is for a layout: a signature in a registry names the image's own repository ({})",
            crate::sign::simple::identity(&target)
        );
    }
    let annotations = annotations(&a.annotation)?;
    let key = signing_key(&a.key, &a.passphrase)?;
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
            let what = signed_what(report.action);
            return writeln!(
                out,
                "{}: {what}; the sigstore bundle is the referrer {}, one of the image's {}",
                signed_name(&report.reference, &report.digest),
                report.signature,
                signatures(report.signatures, "bundle ")
            );
        }
        let what = signed_what(report.action);
        writeln!(
            out,
            "{}: {what}; {} holds {}",
            signed_name(&report.reference, &report.digest),
            report.signature,
            signatures(report.signatures, "")
        )
    })
}

/// `nixoci push`, and with `--sign-key KEY`, each pushed manifest (and
/// the index of a multi-platform image) signed after the push, by the
/// same code as `nixoci sign` in a registry. The key is read first: a
/// key that cannot be read fails before anything is pushed.
pub fn push(a: &PushArgs) -> Result<ExitCode> {
    let Some(path) = &a.sign_key else {
        return super::remote::push(a, None);
    };
    let key = signing_key(path, &a.sign_key_passphrase)?;
    let sign = |layout: &Path,
                tag: Option<&str>,
                pushed: &Reference,
                opts: &remote::RemoteOptions|
     -> Result<Vec<remote::SignReport>> {
        let digests = crate::sign::local::signed_at_push(layout, tag)?;
        let bars = Arc::new(TransferBars::new(a.output_mode()));
        let mut out = Vec::new();
        for d in digests {
            let at = pushed.with_digest(&d);
            let report = remote::sign(&at, &key, &BTreeMap::new(), opts, bars.clone())
                .with_context(|| format!("pushed, but cannot sign {at}"))?;
            out.push(report);
        }
        bars.clear();
        Ok(out)
    };
    super::remote::push(a, Some(&sign))
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
    let key = PublicKey::load(&a.key)?;
    // The image's name, its digest, its signatures, and where none was.
    let (target, digest, candidates, looked) = match layout_of(&a.reference) {
        Some((dir, tag)) => {
            let found = crate::sign::local::signatures(&dir, tag.as_deref())
                .with_context(|| format!("cannot read the signatures of {}", dir.display()))?;
            let looked = format!("{} holds no signature referrer of it", dir.display());
            (a.reference.clone(), found.digest, found.candidates, looked)
        }
        None => {
            let target = reference_arg(&a.reference)?;
            let fetched = remote::signatures(&target, &a.remote.options()?)
                .with_context(|| format!("cannot read the signatures of {target}"))?;
            let looked = format!(
                "{} does not exist or holds none, and no sigstore bundle refers to it",
                fetched.signature
            );
            (
                target.to_string(),
                fetched.digest,
                fetched.candidates,
                looked,
            )
        }
    };
    let signatures = check_all(candidates, &digest, &key);
    let report = Verification {
        reference: target.clone(),
        digest: digest.clone(),
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
            "error: {name} has no signature: {looked}; sign it with `nixoci sign --key KEY {target}` (or `cosign sign`)"
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
        let which = match report.signatures.len() {
            1 => "the one signature".to_owned(),
            n => format!("none of the {n} signatures"),
        };
        let verb = if report.signatures.len() == 1 {
            "does not verify"
        } else {
            "verifies"
        };
        eprintln!(
            "error: {which} of {name} {verb} with the key {}",
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
