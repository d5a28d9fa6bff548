//! Push, pull, tag, exists and inspect against registries that speak the OCI
//! distribution spec, through the `oci-client` crate (the ORAS project's
//! client: token and basic auth, chunked uploads, cross-repository mounts,
//! streamed downloads).
//!
//! What this module adds: reading and writing image layouts, skipping blobs
//! the registry has (HEAD), mounting blobs from other repositories of the
//! same registry, bounded parallel transfers, retries with backoff on
//! transient failures, verification of every digest and size while reading,
//! and reports. The manifest (or index) always goes last, so a registry
//! never names an image whose blobs it lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use serde::Serialize;
use serde_json::Value;

use crate::auth::{self, Credentials};
use crate::digest::Sha256Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::*;
use crate::layout::{read_json, read_limited, BlobDir, Staging, OCI_LAYOUT};
use crate::progress::Progress;
use crate::reference::Reference;

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
pub struct RemoteOptions {
    /// Credentials from the command line; `None`: look them up
    /// ([`auth::lookup`]).
    pub credentials: Option<Credentials>,
    /// Speak plain HTTP. Without it, HTTPS is used, except for a registry
    /// on this machine that does not speak TLS.
    pub plain_http: bool,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Blob transfers at once (at least 1).
    pub jobs: usize,
    /// Retries of a transient failure (5xx, connection reset, timeout).
    pub retries: u32,
    /// Repositories of the target registry to mount blobs from.
    pub mount_from: Vec<String>,
    /// Where to remember which repositories hold which blobs (for mounts);
    /// `None`: do not remember.
    pub blob_cache: Option<PathBuf>,
    /// Blobs larger than this are uploaded in chunks (one request per
    /// 4 MiB, so a failure or a proxy's request-size limit costs one
    /// chunk); smaller ones in one streamed request, which is faster.
    /// 0: the default, [`DEFAULT_CHUNKED_ABOVE`].
    pub chunked_above: u64,
}

/// Default of [`RemoteOptions::chunked_above`]: 512 MiB.
pub const DEFAULT_CHUNKED_ABOVE: u64 = 512 << 20;

impl RemoteOptions {
    /// The default blob-location cache: `$XDG_CACHE_HOME/nixoci/blobs.json`
    /// or `~/.cache/nixoci/blobs.json`.
    pub fn default_blob_cache() -> Option<PathBuf> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("XDG_CACHE_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("nixoci/blobs.json"))
    }
}

/// What happened to one blob.
#[derive(Clone, Debug, Serialize)]
pub struct BlobReport {
    pub digest: String,
    pub size: u64,
    /// `uploaded`, `skipped` (the registry had it), `mounted`, `downloaded`.
    pub action: &'static str,
}

/// What `push` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    pub reference: String,
    /// Digest of the manifest or index the reference now names.
    pub digest: String,
    pub media_type: String,
    pub blobs: Vec<BlobReport>,
    pub uploaded: usize,
    pub skipped: usize,
    pub mounted: usize,
    pub bytes_sent: u64,
    pub manifests: usize,
}

/// What `pull` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    pub reference: String,
    pub layout: PathBuf,
    pub digest: String,
    pub media_type: String,
    pub tag: Option<String>,
    pub blobs: Vec<BlobReport>,
    pub bytes_received: u64,
}

/// Manifest media types asked for when reading.
const ACCEPT: &[&str] = &[
    MEDIA_TYPE_MANIFEST,
    MEDIA_TYPE_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// A connection to one registry.
struct Remote {
    client: Client,
    auth: RegistryAuth,
    opts: RemoteOptions,
    who: String,
}

fn oci_ref(r: &Reference) -> oci_client::Reference {
    match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
            r.registry.clone(),
            r.repository.clone(),
            t.clone(),
            d.clone(),
        ),
        (_, Some(d)) => {
            oci_client::Reference::with_digest(r.registry.clone(), r.repository.clone(), d.clone())
        }
        (Some(t), None) => {
            oci_client::Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone())
        }
        (None, None) => oci_client::Reference::with_tag(
            r.registry.clone(),
            r.repository.clone(),
            "latest".into(),
        ),
    }
}

/// Whether an error is worth retrying.
fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::RequestError(r) => {
            r.is_connect() || r.is_timeout() || r.is_request() || r.is_body()
        }
        OciDistributionError::IoError(_) => true,
        // Docker Hub's rate limit: a 429 with a JSON error body.
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, OciErrorCode::Toomanyrequests)),
        _ => false,
    }
}

/// The error and every cause, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

impl Remote {
    /// Connect to the registry of `r`: pick the protocol, load credentials,
    /// authenticate for `op`.
    async fn connect(r: &Reference, opts: &RemoteOptions, op: RegistryOperation) -> Result<Remote> {
        let mut extra = Vec::new();
        if let Some(ca) = &opts.ca_file {
            let data = std::fs::read(ca).at(ca)?;
            if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Invalid(format!(
                    "{}: not a PEM certificate file",
                    ca.display()
                )));
            }
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let plain = opts.plain_http || (r.is_local() && probe_is_plain_http(r).await?);
        let config = ClientConfig {
            protocol: if plain {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: extra,
            max_concurrent_upload: opts.jobs.max(1),
            // Blobs up to the chunking threshold go in one streamed request;
            // `push_blob_stream_chunked` sends the bigger ones in chunks.
            use_monolithic_push: true,
            max_concurrent_download: opts.jobs.max(1),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let client = Client::new(config);
        let creds = match &opts.credentials {
            Some(c) => c.clone(),
            None => auth::lookup(&r.registry)?,
        };
        let (auth, who) = match &creds {
            Credentials::Anonymous => (RegistryAuth::Anonymous, "anonymously".to_owned()),
            Credentials::Basic { username, password } => (
                RegistryAuth::Basic(username.clone(), password.expose().to_owned()),
                format!("as {username}"),
            ),
        };
        let remote = Remote {
            client,
            auth,
            opts: opts.clone(),
            who,
        };
        let target = oci_ref(r);
        remote
            .retry(&format!("authenticate to {}", r.registry), || {
                remote.client.auth(&target, &remote.auth, op)
            })
            .await
            .map_err(|e| remote.explain(e, &r.registry))?;
        Ok(remote)
    }

    /// Run `f` until it succeeds, a non-transient error, or retries run out
    /// (backoff 0.25 s, 0.5 s, 1 s, ... at most 8 s).
    async fn retry<T, F, Fut>(
        &self,
        _what: &str,
        mut f: F,
    ) -> std::result::Result<T, OciDistributionError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Err(e) if transient(&e) && attempt < self.opts.retries => {
                    let wait =
                        Duration::from_millis(250u64 << attempt.min(5)).min(Duration::from_secs(8));
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// A registry error as a message that says what to do. Credentials
    /// never appear: only the user name.
    fn explain(&self, e: OciDistributionError, registry: &str) -> Error {
        let text = chain(&e);
        // Classified by the error's kind (status, registry error code,
        // transport error), never by words that may appear in a name.
        let codes: Vec<&OciErrorCode> = match &e {
            OciDistributionError::RegistryError { envelope, .. } => {
                envelope.errors.iter().map(|x| &x.code).collect()
            }
            _ => Vec::new(),
        };
        let auth = matches!(
            e,
            OciDistributionError::AuthenticationFailure(_)
                | OciDistributionError::UnauthorizedError { .. }
        ) || matches!(
            e,
            OciDistributionError::ServerError {
                code: 401 | 403,
                ..
            }
        ) || matches!(&e, OciDistributionError::RequestError(r) if r.status().is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403))
            || codes
                .iter()
                .any(|c| matches!(**c, OciErrorCode::Unauthorized | OciErrorCode::Denied));
        let hint = match &e {
            _ if auth => format!(
                "{registry} refused the credentials ({}): check them (--creds, --password-stdin, REGISTRY_AUTH_FILE or ~/.docker/config.json)",
                self.who
            ),
            OciDistributionError::RequestError(r) => {
                let tls = chain(r).to_lowercase();
                if tls.contains("notvalidforname") {
                    format!("the TLS certificate of {registry} is not valid for that name: use the name or address it was issued for")
                } else if tls.contains("unknownissuer") || tls.contains("invalid peer certificate") {
                    format!("the TLS certificate of {registry} is not trusted: pass --ca-file with the CA that signed it")
                } else if r.is_connect() || r.is_timeout() {
                    format!("cannot reach {registry}")
                } else {
                    format!("registry {registry}")
                }
            }
            e if not_found(e) => format!("{registry}: not found"),
            _ => format!("registry {registry}"),
        };
        Error::Invalid(format!("{hint}: {text}"))
    }

    async fn blob_exists(
        &self,
        r: &oci_client::Reference,
        digest: &str,
    ) -> std::result::Result<bool, OciDistributionError> {
        self.retry("check blob", || self.client.blob_exists(r, digest))
            .await
    }

    async fn manifest_raw(&self, r: &Reference) -> Result<(Vec<u8>, String)> {
        let target = oci_ref(r);
        let (bytes, _) = self
            .retry("fetch manifest", || {
                self.client.pull_manifest_raw(&target, &self.auth, ACCEPT)
            })
            .await
            .map_err(|e| self.explain(e, &r.registry))?;
        let digest = Sha256Digest::of(&bytes).to_string();
        if let Some(want) = &r.digest {
            if *want != digest {
                return Err(Error::DigestMismatch {
                    context: format!("manifest of {r}"),
                    expected: want.clone(),
                    found: digest,
                });
            }
        }
        Ok((bytes.to_vec(), digest))
    }
}

/// Whether the registry of `r` (on this machine) speaks plain HTTP: it does
/// when `http://HOST/v2/` answers as a registry does (200 or 401 with the
/// `Docker-Distribution-API-Version` header, or a JSON body). A TLS server
/// answers plain HTTP with a 400, so HTTPS is used for it.
async fn probe_is_plain_http(r: &Reference) -> Result<bool> {
    // One bare HTTP/1.0 request: a full HTTP client would set up TLS (and
    // load the system's roots) just to ask this.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut conn = tokio::net::TcpStream::connect(&r.registry).await.ok()?;
        let request = format!(
            "GET /v2/ HTTP/1.0\r\nHost: {}\r\nUser-Agent: nixoci\r\n\r\n",
            r.registry
        );
        conn.write_all(request.as_bytes()).await.ok()?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            let n = conn.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head).to_lowercase();
        let status_ok = text.starts_with("http/1.1 200")
            || text.starts_with("http/1.0 200")
            || text.starts_with("http/1.1 401")
            || text.starts_with("http/1.0 401");
        Some(status_ok || text.contains("\r\ndocker-distribution-api-version:"))
    };
    Ok(tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(false))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the I/O runtime: {e}")))
}

// ---- reading a layout for push ----

/// A document (manifest or index) to push, with its bytes.
struct Doc {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
}

/// A blob to push.
#[derive(Clone)]
struct Blob {
    digest: String,
    size: u64,
    path: PathBuf,
}

/// The descriptor `tag` names in the layout (or its only one).
pub fn select(layout: &Path, tag: Option<&str>) -> Result<Descriptor> {
    if !layout.join("oci-layout").is_file() {
        return Err(Error::Invalid(format!(
            "{}: not an OCI image layout (no oci-layout file)",
            layout.display()
        )));
    }
    let index: Refs = read_json(&layout.join("index.json"))?;
    let name = |d: &Descriptor| d.annotations.get(ANNOTATION_REF_NAME).cloned();
    match tag {
        Some(t) => index
            .manifests
            .iter()
            .find(|d| name(d).as_deref() == Some(t))
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = index.manifests.iter().filter_map(name).collect();
                Error::Invalid(format!(
                    "{}: no image is tagged {t:?} (tags: {})",
                    layout.display(),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ))
            }),
        None => {
            let digests: BTreeSet<&str> =
                index.manifests.iter().map(|d| d.digest.as_str()).collect();
            match (digests.len(), index.manifests.first()) {
                (1, Some(d)) => Ok(d.clone()),
                (0, _) => Err(Error::Invalid(format!(
                    "{}: the layout holds no image",
                    layout.display()
                ))),
                _ => {
                    let names: Vec<String> = index.manifests.iter().filter_map(name).collect();
                    Err(Error::Invalid(format!(
                        "{} holds several images ({}); say which: {}:TAG",
                        layout.display(),
                        names.join(", "),
                        layout.display()
                    )))
                }
            }
        }
    }
}

/// Everything under `root`: documents children first, then unique blobs.
fn collect(layout: &Path, root: &Descriptor) -> Result<(Vec<Doc>, Vec<Blob>)> {
    let blobs_dir = BlobDir::new(layout);
    let mut docs = Vec::new();
    let mut blobs: BTreeMap<String, Blob> = BTreeMap::new();
    let mut add_blob = |d: &Descriptor| -> Result<()> {
        let digest = crate::layout::parse_digest(&d.digest, "descriptor")?;
        let path = blobs_dir.path(&digest);
        let meta = std::fs::metadata(&path).at(&path)?;
        if !meta.is_file() || meta.len() != d.size {
            return Err(Error::Invalid(format!(
                "{}: blob {} is not a {} byte file; run `nixoci verify {}`",
                layout.display(),
                d.digest,
                d.size,
                layout.display()
            )));
        }
        blobs.insert(
            d.digest.clone(),
            Blob {
                digest: d.digest.clone(),
                size: d.size,
                path,
            },
        );
        Ok(())
    };
    fn walk(
        layout: &Path,
        blobs_dir: &BlobDir,
        d: &Descriptor,
        depth: usize,
        docs: &mut Vec<Doc>,
        add_blob: &mut dyn FnMut(&Descriptor) -> Result<()>,
    ) -> Result<()> {
        if depth > crate::verify::MAX_DEPTH {
            return Err(Error::Invalid("image indexes nested too deep".into()));
        }
        let digest = crate::layout::parse_digest(&d.digest, "descriptor")?;
        let bytes = read_limited(&blobs_dir.path(&digest), d.size)?;
        if Sha256Digest::of(&bytes) != digest {
            return Err(Error::Invalid(format!(
                "{}: document {} does not match its digest; run `nixoci verify {}`",
                layout.display(),
                d.digest,
                layout.display()
            )));
        }
        let refs: Refs = crate::spec::parse_json(&blobs_dir.path(&digest), &bytes)?;
        if let Some(c) = &refs.config {
            add_blob(c)?;
        }
        for l in &refs.layers {
            add_blob(l)?;
        }
        for m in &refs.manifests {
            walk(layout, blobs_dir, m, depth + 1, docs, add_blob)?;
        }
        if !docs.iter().any(|x: &Doc| x.digest == d.digest) {
            docs.push(Doc {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                bytes,
            });
        }
        Ok(())
    }
    walk(layout, &blobs_dir, root, 0, &mut docs, &mut add_blob)?;
    Ok((docs, blobs.into_values().collect()))
}

// ---- the blob-location cache, for mounts ----

type Locations = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn load_locations(path: Option<&Path>) -> Locations {
    path.and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Remember that `repository` of `registry` holds `digests` (best effort:
/// a cache that cannot be written only costs a future mount).
fn remember(
    path: Option<&Path>,
    registry: &str,
    repository: &str,
    digests: impl Iterator<Item = String>,
) {
    let Some(path) = path else { return };
    let mut all = load_locations(Some(path));
    let reg = all.entry(registry.to_owned()).or_default();
    for d in digests {
        let repos = reg.entry(d).or_default();
        repos.insert(repository.to_owned());
        // Bounded: the most recent few repositories are plenty to mount from.
        while repos.len() > 8 {
            let first = repos.iter().next().cloned().unwrap_or_default();
            repos.remove(&first);
        }
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
        if let Ok(tmp) = tempfile::NamedTempFile::new_in(dir) {
            if std::fs::write(tmp.path(), canonical_json(&all)).is_ok() {
                let _ = tmp.persist(path);
            }
        }
    }
}

// ---- push ----

/// Push the image `tag` of `layout` (or its only image) to `target`: blobs
/// first (skipped when present, mounted when another repository of the
/// registry has them, else uploaded in chunks), then manifests, then the
/// top manifest or index under the target's tag or digest.
pub fn push(
    layout: &Path,
    tag: Option<&str>,
    target: &Reference,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<PushReport> {
    let root = select(layout, tag)?;
    if let Some(d) = &target.digest {
        if *d != root.digest {
            return Err(Error::Invalid(format!(
                "{target} names digest {d}, but the image in {} is {}",
                layout.display(),
                root.digest
            )));
        }
    }
    let (docs, blobs) = collect(layout, &root)?;
    runtime()?.block_on(async {
        let remote = Remote::connect(target, opts, RegistryOperation::Push).await?;
        let dest = oci_ref(target);
        let locations = load_locations(opts.blob_cache.as_deref());
        let known = locations.get(&target.registry).cloned().unwrap_or_default();
        let results: Vec<BlobReport> = futures_util::stream::iter(blobs.iter().cloned())
            .map(|b| {
                let remote = &remote;
                let dest = &dest;
                let progress = progress.clone();
                let candidates: Vec<String> = opts
                    .mount_from
                    .iter()
                    .cloned()
                    .chain(known.get(&b.digest).into_iter().flatten().cloned())
                    .filter(|repo| *repo != target.repository)
                    .collect();
                async move { push_blob(remote, dest, target, &b, &candidates, progress).await }
            })
            .buffer_unordered(opts.jobs.max(1))
            .try_collect()
            .await?;

        // The root goes under the tag when there is one (a reference with a
        // tag and a digest names the tag; the digest was checked above).
        let named = match &target.tag {
            Some(t) => target.with_tag(t),
            None => target.clone(),
        };
        for doc in &docs {
            let at = if doc.digest == root.digest {
                named.clone()
            } else {
                target.with_digest(&doc.digest)
            };
            let r = oci_ref(&at);
            let content_type =
                reqwest::header::HeaderValue::from_str(&doc.media_type).map_err(|_| {
                    Error::Invalid(format!("media type {:?} cannot be sent", doc.media_type))
                })?;
            remote
                .retry("push manifest", || {
                    remote
                        .client
                        .push_manifest_raw(&r, doc.bytes.clone(), content_type.clone())
                })
                .await
                .map_err(|e| remote.explain(e, &target.registry))?;
        }
        // What the tag now names, as the registry says.
        let check = oci_ref(&named);
        let remote_digest = remote
            .retry("check manifest", || {
                remote.client.fetch_manifest_digest(&check, &remote.auth)
            })
            .await
            .map_err(|e| remote.explain(e, &target.registry))?;
        if remote_digest != root.digest {
            return Err(Error::DigestMismatch {
                context: format!("{target} after the push"),
                expected: root.digest.clone(),
                found: remote_digest,
            });
        }
        remember(
            opts.blob_cache.as_deref(),
            &target.registry,
            &target.repository,
            blobs.iter().map(|b| b.digest.clone()),
        );
        let count = |a: &str| results.iter().filter(|r| r.action == a).count();
        Ok(PushReport {
            reference: target.to_string(),
            digest: root.digest.clone(),
            media_type: root.media_type.clone(),
            uploaded: count("uploaded"),
            skipped: count("skipped"),
            mounted: count("mounted"),
            bytes_sent: results
                .iter()
                .filter(|r| r.action == "uploaded")
                .map(|r| r.size)
                .sum(),
            manifests: docs.len(),
            blobs: results,
        })
    })
}

async fn push_blob(
    remote: &Remote,
    dest: &oci_client::Reference,
    target: &Reference,
    b: &Blob,
    mount_candidates: &[String],
    progress: Arc<dyn Progress + Send>,
) -> Result<BlobReport> {
    let report = |action| BlobReport {
        digest: b.digest.clone(),
        size: b.size,
        action,
    };
    let explain = |e| remote.explain(e, &target.registry);
    if remote.blob_exists(dest, &b.digest).await.map_err(explain)? {
        progress.blob_done(&b.digest, "skipped");
        return Ok(report("skipped"));
    }
    for repo in mount_candidates {
        let from = oci_ref(&target.in_repository(repo));
        if remote
            .client
            .mount_blob(dest, &from, &b.digest)
            .await
            .is_ok()
            && remote.blob_exists(dest, &b.digest).await.unwrap_or(false)
        {
            progress.blob_done(&b.digest, "mounted");
            return Ok(report("mounted"));
        }
    }
    progress.blob_start(&b.digest, b.size);
    let pushed = remote
        .retry("upload blob", || {
            let path = b.path.clone();
            let size = b.size;
            let digest = b.digest.clone();
            let progress = progress.clone();
            let digest_for_commit = b.digest.clone();
            let chunked_above = if remote.opts.chunked_above == 0 {
                DEFAULT_CHUNKED_ABOVE
            } else {
                remote.opts.chunked_above
            };
            async move {
                let file = tokio::fs::File::open(&path).await?;
                let stream = tokio_util::io::ReaderStream::with_capacity(
                    tokio::io::AsyncReadExt::take(file, size),
                    1 << 20,
                )
                .map_ok(move |chunk| {
                    progress.blob_advance(&digest, chunk.len() as u64);
                    chunk
                })
                .map_err(OciDistributionError::IoError);
                if size > chunked_above {
                    let pushed = remote.client.push_blob_stream_chunked(dest, stream).await?;
                    Ok(Some((pushed.blob_digest, pushed.size)))
                } else {
                    // The registry checks the digest it is given on commit.
                    remote
                        .client
                        .push_blob_stream(dest, stream, &digest_for_commit, Some(size))
                        .await?;
                    Ok(None)
                }
            }
        })
        .await
        .map_err(explain)?;
    if let Some((digest, size)) = pushed {
        if digest != b.digest || size != b.size {
            return Err(Error::DigestMismatch {
                context: format!("blob {} sent from {}", b.digest, b.path.display()),
                expected: format!("{} ({} bytes)", b.digest, b.size),
                found: format!("{digest} ({size} bytes); the file changed, run `nixoci verify`"),
            });
        }
    }
    progress.blob_done(&b.digest, "uploaded");
    Ok(report("uploaded"))
}

// ---- pull ----

fn media_type_of(doc: &Value) -> String {
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None if doc.get("manifests").is_some() => MEDIA_TYPE_INDEX.to_owned(),
        None => MEDIA_TYPE_MANIFEST.to_owned(),
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A platform filter: `os/arch[/variant]`.
pub fn parse_platform(text: &str) -> Result<Platform> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: (*os).to_owned(),
            architecture: (*arch).to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
            os_version: None,
            os_features: None,
        }),
        _ => Err(Error::Invalid(format!(
            "platform {text:?} is not OS/ARCH[/VARIANT], like linux/arm64"
        ))),
    }
}

/// Pull `source` into a new image layout at `dir`, verifying every digest
/// and size while reading. For an index, `platform` picks one manifest
/// (the layout then holds just that image); without it, every platform is
/// pulled. The layout names the image with the reference's tag (or `tag`).
pub fn pull(
    source: &Reference,
    dir: &Path,
    platform: Option<&Platform>,
    tag: Option<&str>,
    force: bool,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<PullReport> {
    let name = tag.map(str::to_owned).or_else(|| source.tag.clone());
    if let Some(n) = &name {
        crate::spec::validate_tag(n)?;
    }
    let staging = Staging::new(dir, force, &[])?;
    let blobs_dir = staging.blobs();
    let report = runtime()?.block_on(async {
        let remote = Remote::connect(source, opts, RegistryOperation::Pull).await?;
        let (bytes, digest) = remote.manifest_raw(source).await?;
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{source}: the manifest is not JSON: {e}")))?;
        let mut root = Descriptor {
            media_type: media_type_of(&doc),
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        };
        let mut docs: Vec<(String, Vec<u8>)> = vec![(root.digest.clone(), bytes)];
        let mut manifests: Vec<Value> = Vec::new();
        let was_index = is_index(&root.media_type);
        if was_index {
            let children: Vec<Descriptor> = serde_json::from_value(doc["manifests"].clone())
                .map_err(|e| Error::Invalid(format!("{source}: invalid image index: {e}")))?;
            let chosen: Vec<Descriptor> = match platform {
                Some(p) => {
                    let c = choose_platform(&children, Some(p))
                        .map_err(|e| e.within(source.to_string()))?;
                    docs.clear();
                    root = c.clone();
                    vec![c]
                }
                None => children,
            };
            for c in chosen {
                let (b, d) = remote.manifest_raw(&source.with_digest(&c.digest)).await?;
                if b.len() as u64 != c.size {
                    return Err(Error::DigestMismatch {
                        context: format!("size of manifest {}", c.digest),
                        expected: c.size.to_string(),
                        found: b.len().to_string(),
                    });
                }
                manifests.push(serde_json::from_slice(&b).map_err(|e| {
                    Error::Invalid(format!("{source}: manifest {d} is not JSON: {e}"))
                })?);
                docs.push((d, b));
            }
        } else {
            manifests.push(doc);
        }
        let mut wanted: BTreeMap<String, u64> = BTreeMap::new();
        for m in &manifests {
            let refs: Refs = serde_json::from_value(m.clone())
                .map_err(|e| Error::Invalid(format!("{source}: invalid manifest: {e}")))?;
            for d in refs.config.iter().chain(refs.layers.iter()) {
                crate::layout::parse_digest(&d.digest, "remote descriptor")?;
                wanted.insert(d.digest.clone(), d.size);
            }
        }
        let src = oci_ref(source);
        let results: Vec<BlobReport> =
            futures_util::stream::iter(wanted)
                .map(|(digest, size)| {
                    let remote = &remote;
                    let src = &src;
                    let blobs_dir = &blobs_dir;
                    let progress = progress.clone();
                    async move {
                        pull_blob(remote, src, source, blobs_dir, &digest, size, progress).await
                    }
                })
                .buffer_unordered(opts.jobs.max(1))
                .try_collect()
                .await?;
        // A single-platform image must be the platform asked for.
        if let (Some(p), false) = (platform, was_index) {
            let config_digest = manifests[0]["config"]["digest"]
                .as_str()
                .unwrap_or_default();
            let config: Value =
                read_json(&blobs_dir.path(&crate::layout::parse_digest(config_digest, "config")?))?;
            let text = |k: &str| config[k].as_str().unwrap_or_default().to_owned();
            let have = Platform {
                architecture: text("architecture"),
                os: text("os"),
                variant: config["variant"].as_str().map(str::to_owned),
                os_version: None,
                os_features: None,
            };
            if !p.accepts(Some(&have)) {
                return Err(Error::Invalid(format!(
                    "{source} is an image for {have}, not {p}"
                )));
            }
        }
        for (digest, bytes) in &docs {
            let mut w = blobs_dir.writer()?;
            std::io::Write::write_all(&mut w, bytes).at(staging.path())?;
            let (d, _) = w.complete()?;
            debug_assert_eq!(d.to_string(), *digest);
        }
        remember(
            opts.blob_cache.as_deref(),
            &source.registry,
            &source.repository,
            results.iter().map(|r| r.digest.clone()),
        );
        Ok::<_, Error>((root, results))
    })?;
    let (mut root, blobs) = report;
    if let Some(n) = &name {
        root.annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), n.clone());
    }
    staging.write_file("oci-layout", OCI_LAYOUT)?;
    staging.write_file(
        "index.json",
        &canonical_json(&index_document(
            std::slice::from_ref(&root),
            &BTreeMap::new(),
            None,
        )?),
    )?;
    let layout = staging.commit()?;
    Ok(PullReport {
        reference: source.to_string(),
        layout,
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        tag: name,
        bytes_received: blobs.iter().map(|b| b.size).sum(),
        blobs,
    })
}

async fn pull_blob(
    remote: &Remote,
    src: &oci_client::Reference,
    source: &Reference,
    blobs_dir: &BlobDir,
    digest: &str,
    size: u64,
    progress: Arc<dyn Progress + Send>,
) -> Result<BlobReport> {
    progress.blob_start(digest, size);
    let mut attempt = 0;
    loop {
        match pull_blob_once(remote, src, blobs_dir, digest, size, &*progress).await {
            Ok(()) => break,
            Err(BlobError::Remote(e)) if transient(&e) && attempt < remote.opts.retries => {
                tokio::time::sleep(Duration::from_millis(250u64 << attempt.min(5))).await;
                attempt += 1;
            }
            Err(BlobError::Remote(e)) => return Err(remote.explain(e, &source.registry)),
            Err(BlobError::Local(e)) => return Err(e),
        }
    }
    progress.blob_done(digest, "downloaded");
    Ok(BlobReport {
        digest: digest.to_owned(),
        size,
        action: "downloaded",
    })
}

enum BlobError {
    Remote(OciDistributionError),
    Local(Error),
}

async fn pull_blob_once(
    remote: &Remote,
    src: &oci_client::Reference,
    blobs_dir: &BlobDir,
    digest: &str,
    size: u64,
    progress: &dyn Progress,
) -> std::result::Result<(), BlobError> {
    let mut stream = remote
        .client
        .pull_blob_stream(src, digest)
        .await
        .map_err(BlobError::Remote)?;
    let mut w = blobs_dir.writer().map_err(BlobError::Local)?;
    let mut received = 0u64;
    while let Some(chunk) = stream.stream.next().await {
        let chunk = chunk.map_err(|e| BlobError::Remote(OciDistributionError::IoError(e)))?;
        received += chunk.len() as u64;
        if received > size {
            return Err(BlobError::Local(Error::DigestMismatch {
                context: format!("blob {digest} from the registry"),
                expected: format!("{size} bytes"),
                found: "more".into(),
            }));
        }
        std::io::Write::write_all(&mut w, &chunk)
            .map_err(|e| BlobError::Local(Error::io(blobs_dir.root(), e)))?;
        progress.blob_advance(digest, chunk.len() as u64);
    }
    let (found, n) = w.complete().map_err(BlobError::Local)?;
    if found.to_string() != digest || n != size {
        let _ = std::fs::remove_file(blobs_dir.path(&found));
        return Err(BlobError::Local(Error::DigestMismatch {
            context: format!("blob {digest} from the registry"),
            expected: format!("{digest} ({size} bytes)"),
            found: format!("{found} ({n} bytes)"),
        }));
    }
    Ok(())
}

// ---- tag, exists, inspect ----

/// Give the manifest `source` names the tag `new_tag` in the same
/// repository, moving no blob.
pub fn tag(source: &Reference, new_tag: &str, opts: &RemoteOptions) -> Result<String> {
    crate::spec::validate_tag(new_tag)?;
    runtime()?.block_on(async {
        let remote = Remote::connect(source, opts, RegistryOperation::Push).await?;
        let (bytes, digest) = remote.manifest_raw(source).await?;
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{source}: the manifest is not JSON: {e}")))?;
        let media_type = media_type_of(&doc);
        let content_type = reqwest::header::HeaderValue::from_str(&media_type)
            .map_err(|_| Error::Invalid(format!("media type {media_type:?} cannot be sent")))?;
        let dest = oci_ref(&source.with_tag(new_tag));
        remote
            .retry("push manifest", || {
                remote
                    .client
                    .push_manifest_raw(&dest, bytes.clone(), content_type.clone())
            })
            .await
            .map_err(|e| remote.explain(e, &source.registry))?;
        Ok(digest)
    })
}

/// Whether `r` names a manifest: `Ok(Some(digest))`, `Ok(None)` when the
/// registry says it does not exist.
pub fn exists(r: &Reference, opts: &RemoteOptions) -> Result<Option<String>> {
    runtime()?.block_on(async {
        let remote = Remote::connect(r, opts, RegistryOperation::Pull).await?;
        let target = oci_ref(r);
        match remote
            .retry("check manifest", || {
                remote.client.fetch_manifest_digest(&target, &remote.auth)
            })
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(remote.explain(e, &r.registry)),
        }
    })
}

fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RequestError(r) => r.status().is_some_and(|s| s.as_u16() == 404),
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                x.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NotFound
            )
        }),
        _ => false,
    }
}

/// What `r` names: its digest, platforms, layers and config, as
/// [`crate::inspect::Tagged`].
pub fn inspect(r: &Reference, opts: &RemoteOptions) -> Result<crate::inspect::Tagged> {
    runtime()?.block_on(async {
        let remote = Remote::connect(r, opts, RegistryOperation::Pull).await?;
        let (bytes, digest) = remote.manifest_raw(r).await?;
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{r}: the manifest is not JSON: {e}")))?;
        let media_type = media_type_of(&doc);
        let mut images = Vec::new();
        let mut manifests: Vec<(Option<Platform>, String, Value)> = Vec::new();
        if is_index(&media_type) {
            let children: Vec<Descriptor> = serde_json::from_value(doc["manifests"].clone())
                .map_err(|e| Error::Invalid(format!("{r}: invalid image index: {e}")))?;
            for c in children {
                let (b, d) = remote.manifest_raw(&r.with_digest(&c.digest)).await?;
                let v = serde_json::from_slice(&b)
                    .map_err(|e| Error::Invalid(format!("{r}: manifest {d} is not JSON: {e}")))?;
                manifests.push((c.platform.clone(), d, v));
            }
        } else {
            manifests.push((None, digest.clone(), doc));
        }
        let src = oci_ref(r);
        for (platform, manifest, m) in manifests {
            let refs: Refs = serde_json::from_value(m)
                .map_err(|e| Error::Invalid(format!("{r}: invalid manifest: {e}")))?;
            let Some(config_desc) = refs.config else {
                continue;
            };
            let wanted = config_desc.digest.as_str();
            let config_bytes = remote
                .retry("fetch config", || {
                    let src = &src;
                    let remote = &remote;
                    async move {
                        let mut v: Vec<u8> = Vec::new();
                        remote
                            .client
                            .pull_blob(src, wanted, &mut v)
                            .await
                            .map(|_| v)
                    }
                })
                .await
                .map_err(|e| remote.explain(e, &r.registry))?;
            if Sha256Digest::of(&config_bytes).to_string() != config_desc.digest {
                return Err(Error::DigestMismatch {
                    context: format!("config of {r}"),
                    expected: config_desc.digest.clone(),
                    found: Sha256Digest::of(&config_bytes).to_string(),
                });
            }
            let config: Value = serde_json::from_slice(&config_bytes).unwrap_or(Value::Null);
            images.push(crate::inspect::summary(
                platform,
                manifest,
                config_desc.digest.clone(),
                &config,
                refs.layers,
            ));
        }
        Ok(crate::inspect::Tagged {
            tag: r.tag.clone(),
            media_type,
            digest,
            images,
        })
    })
}
