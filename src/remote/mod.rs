//! Push, pull, tag, exists and inspect against registries that speak the OCI
//! distribution spec. nixoci makes the ping, the token request, manifest
//! requests, blob checks and downloads itself, every body read with a
//! bound; blob uploads and mounts go through the `oci-client` crate (the
//! ORAS project's client), given the token found here.
//!
//! What this module adds: reading and writing image layouts, leaving tags
//! that already name the image alone (a re-push writes nothing), skipping
//! blobs the registry has (HEAD), mounting blobs from other repositories of
//! the same registry, bounded parallel transfers, retries with backoff on
//! transient failures, verification of every digest and size while
//! reading, and reports. The manifest (or index) always goes last, so a
//! registry never names an image whose blobs it lacks.

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

pub mod auth;

use crate::digest::Sha256Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::*;
use crate::layout::{read_json, read_limited, BlobDir, Staging, OCI_LAYOUT};
use crate::progress::Progress;
use crate::reference::Reference;
use auth::Credentials;

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
    /// Manifests and indexes written.
    pub manifests: usize,
    /// True when the registry already named the image under every tag:
    /// nothing was written.
    pub up_to_date: bool,
    /// What happened to each tag.
    pub tags: Vec<TagReport>,
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

/// The most of a token response nixoci reads (a token is a few KiB).
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;
/// The most of an error response's body nixoci reads (the rest is dropped
/// unread; the message needs only its start).
const MAX_ERROR_BODY: u64 = 64 << 10;
/// The most of an error body an error message shows, in characters.
const MAX_ERROR_MESSAGE: usize = 300;

/// A size limit in words: `16 MiB`.
fn limit_text(max: u64) -> String {
    if max >= 1 << 20 && max % (1 << 20) == 0 {
        format!("{} MiB", max >> 20)
    } else if max >= 1 << 10 && max % (1 << 10) == 0 {
        format!("{} KiB", max >> 10)
    } else {
        format!("{max} bytes")
    }
}

/// Why a request failed: the registry or the network (`Remote`, retried
/// when transient, explained), or a check of ours (`Local`, as it is).
enum Failure {
    Remote(OciDistributionError),
    Local(Error),
}

impl From<OciDistributionError> for Failure {
    fn from(e: OciDistributionError) -> Self {
        Failure::Remote(e)
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        Failure::Remote(OciDistributionError::RequestError(e))
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Local(e)
    }
}

/// How nixoci's own requests authenticate, as the registry's ping asked.
#[derive(Clone)]
enum HttpAuth {
    None,
    Basic(String, auth::Secret),
    Bearer(auth::Secret),
}

/// A connection to one registry.
///
/// nixoci makes the ping, the token request, every manifest request and
/// the blob checks itself, reading every body with a bound: documents at
/// most [`crate::verify::MAX_DOCUMENT`] (the limit `verify` applies),
/// tokens [`MAX_TOKEN_RESPONSE`], error bodies [`MAX_ERROR_BODY`], blobs
/// their descriptor's size. `oci-client` uploads and mounts blobs, with the
/// authentication found here handed to it, so that it pings no more.
struct Remote {
    client: Client,
    http: reqwest::Client,
    /// `http://HOST` or `https://HOST`.
    base: String,
    auth: HttpAuth,
    /// Whether `client` is ready to upload (Basic auth makes it ping once).
    primed: tokio::sync::Mutex<bool>,
    opts: RemoteOptions,
    who: String,
    registry: String,
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
fn transient(e: &Failure) -> bool {
    let Failure::Remote(e) = e else { return false };
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

/// How long reading one document's body (a manifest, an index, a token
/// response, an error body) may take in all: each read has its own
/// timeout, but a server dripping a byte at a time would pass that forever.
/// 60 s, or `NIXOCI_DOCUMENT_TIMEOUT` seconds.
fn document_deadline() -> Duration {
    std::env::var("NIXOCI_DOCUMENT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64)
}

/// Why [`read_capped`] gave no body.
enum Capped {
    TooLarge,
    TooSlow,
}

impl Capped {
    /// The refusal in words: `what` came from `from`, at most `max` bytes.
    fn explain(&self, from: &str, what: &str, max: u64) -> Error {
        Error::Invalid(match self {
            Capped::TooLarge => format!(
                "{from}: {what} is larger than {} ({max} bytes), the most nixoci reads (as `verify` does); refused",
                limit_text(max)
            ),
            Capped::TooSlow => format!(
                "{from}: {what} did not arrive within {} s (NIXOCI_DOCUMENT_TIMEOUT); nixoci gives a document no longer (the server may be overloaded, or hostile)",
                document_deadline().as_secs_f64()
            ),
        })
    }
}

/// Read a response body of at most `max` bytes within
/// [`document_deadline`]: `Err(Capped)` when the Content-Length or the
/// bytes themselves go past it, or time runs out (reading stops there).
async fn read_capped(
    res: &mut reqwest::Response,
    max: u64,
) -> std::result::Result<std::result::Result<Vec<u8>, Capped>, reqwest::Error> {
    if res.content_length().is_some_and(|n| n > max) {
        return Ok(Err(Capped::TooLarge));
    }
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await? {
            if (body.len() + chunk.len()) as u64 > max {
                return Ok(Err(Capped::TooLarge));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Ok(body))
    };
    match tokio::time::timeout(document_deadline(), read).await {
        Ok(r) => r,
        Err(_) => Ok(Err(Capped::TooSlow)),
    }
}

/// A failed response as the error `oci-client` would give, reading at most
/// [`MAX_ERROR_BODY`] of its body.
async fn status_error(mut res: reqwest::Response) -> Failure {
    let status = res.status();
    let url = res.url().to_string();
    let mut body = Vec::new();
    // What arrives within the deadline is enough to explain the error.
    let _ = tokio::time::timeout(document_deadline(), async {
        while let Ok(Some(chunk)) = res.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() as u64 >= MAX_ERROR_BODY {
                body.truncate(MAX_ERROR_BODY as usize);
                break;
            }
        }
    })
    .await;
    // The message shows the start of the body, on one line.
    let mut message: String = String::from_utf8_lossy(&body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if message.chars().count() > MAX_ERROR_MESSAGE {
        message = message.chars().take(MAX_ERROR_MESSAGE).collect::<String>() + "...";
    }
    Failure::Remote(match status.as_u16() {
        401 => OciDistributionError::UnauthorizedError { url },
        code if status.is_client_error() => {
            match serde_json::from_slice::<oci_client::errors::OciEnvelope>(&body) {
                Ok(envelope) => OciDistributionError::RegistryError { envelope, url },
                Err(_) => OciDistributionError::ServerError { code, url, message },
            }
        }
        code => OciDistributionError::ServerError { code, url, message },
    })
}

/// The parameters of a `WWW-Authenticate` challenge: its scheme
/// (lowercase) and `key="value"` pairs (values may hold commas).
fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != ',') {
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_lowercase(), value);
    }
    (scheme.to_lowercase(), params)
}

/// What `GET /v2/` answered: its status and its `WWW-Authenticate`.
struct Ping {
    status: u16,
    challenge: Option<String>,
}

/// The path part of a reference: its digest, else its tag.
fn manifest_path(r: &Reference) -> String {
    let at = r
        .digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_else(|| "latest".into());
    format!("/v2/{}/manifests/{at}", r.repository)
}

impl Remote {
    /// Connect to the registry of `r`: pick the protocol, ping it once,
    /// load credentials and get a token when it asks for one (for `op`).
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
        // The probe of a local registry is its ping too.
        let probed = if !opts.plain_http && r.is_local() {
            probe_plain_http(r).await
        } else {
            None
        };
        let plain = opts.plain_http || probed.is_some();
        let connect_timeout = Duration::from_secs(10);
        let read_timeout = Duration::from_secs(120);
        let config = ClientConfig {
            protocol: if plain {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: extra.clone(),
            max_concurrent_upload: opts.jobs.max(1),
            // Blobs up to the chunking threshold go in one streamed request;
            // `push_blob_stream_chunked` sends the bigger ones in chunks.
            use_monolithic_push: true,
            max_concurrent_download: opts.jobs.max(1),
            connect_timeout: Some(connect_timeout),
            read_timeout: Some(read_timeout),
            ..Default::default()
        };
        let client = Client::new(config);
        let mut certificates = Vec::new();
        for c in &extra {
            certificates.push(reqwest::Certificate::from_pem(&c.data).map_err(|e| {
                Error::Invalid(format!("--ca-file: not a usable PEM certificate: {e}"))
            })?);
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(certificates)
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .user_agent(concat!("nixoci/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot set up HTTP: {e}")))?;
        let creds = match &opts.credentials {
            Some(c) => c.clone(),
            None => auth::lookup(&r.registry)?,
        };
        let who = match &creds {
            Credentials::Anonymous => "anonymously".to_owned(),
            Credentials::Basic { username, .. } => format!("as {username}"),
        };
        let mut remote = Remote {
            client,
            http,
            base: format!("{}://{}", if plain { "http" } else { "https" }, r.registry),
            auth: HttpAuth::None,
            primed: tokio::sync::Mutex::new(false),
            opts: opts.clone(),
            who,
            registry: r.registry.clone(),
        };
        let ping = match probed {
            Some(p) => p,
            None => remote
                .retry(|| remote.ping())
                .await
                .map_err(|e| remote.explain(e))?,
        };
        let (scheme, params) = ping
            .challenge
            .as_deref()
            .map(parse_challenge)
            .unwrap_or_default();
        remote.auth = match (scheme.as_str(), &creds) {
            ("bearer", _) => {
                let realm = params.get("realm").cloned().ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: the registry asks for a token but names no realm",
                        r.registry
                    ))
                })?;
                let scope = match op {
                    RegistryOperation::Pull => format!("repository:{}:pull", r.repository),
                    RegistryOperation::Push => format!("repository:{}:pull,push", r.repository),
                };
                let token = remote
                    .retry(|| remote.token(&realm, params.get("service"), &scope, &creds))
                    .await
                    .map_err(|e| remote.explain(e))?;
                // oci-client takes it as it is, with no request of its own.
                remote
                    .client
                    .store_auth_if_needed(
                        &r.registry,
                        &RegistryAuth::Bearer(token.expose().to_owned()),
                    )
                    .await;
                HttpAuth::Bearer(token)
            }
            (_, Credentials::Basic { username, password }) if ping.status == 401 => {
                HttpAuth::Basic(username.clone(), password.clone())
            }
            _ => HttpAuth::None,
        };
        Ok(remote)
    }

    /// `GET /v2/`, its body unread.
    async fn ping(&self) -> std::result::Result<Ping, Failure> {
        let res = self.http.get(format!("{}/v2/", self.base)).send().await?;
        let challenge = res
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Ping {
            status: res.status().as_u16(),
            challenge,
        })
    }

    /// A bearer token from `realm`, for `scope`; the response is read up to
    /// [`MAX_TOKEN_RESPONSE`].
    async fn token(
        &self,
        realm: &str,
        service: Option<&String>,
        scope: &str,
        creds: &Credentials,
    ) -> std::result::Result<auth::Secret, Failure> {
        let mut query = vec![("scope", scope)];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let url = reqwest::Url::parse_with_params(realm, &query).map_err(|e| {
            Error::Invalid(format!(
                "{}: the token realm {realm:?} is not a URL: {e}",
                self.registry
            ))
        })?;
        let mut req = self.http.get(url);
        if let Credentials::Basic { username, password } = creds {
            req = req.basic_auth(username, Some(password.expose()));
        }
        let mut res = req.send().await?;
        if !res.status().is_success() {
            return Err(match status_error(res).await {
                Failure::Remote(OciDistributionError::ServerError { code, message, .. })
                    if code == 401 || code == 403 =>
                {
                    Failure::Remote(OciDistributionError::AuthenticationFailure(message))
                }
                Failure::Remote(OciDistributionError::UnauthorizedError { url }) => {
                    Failure::Remote(OciDistributionError::AuthenticationFailure(url))
                }
                other => other,
            });
        }
        let body = read_capped(&mut res, MAX_TOKEN_RESPONSE)
            .await?
            .map_err(|why| {
                why.explain(
                    &self.registry,
                    &format!("the token response from {realm}"),
                    MAX_TOKEN_RESPONSE,
                )
            })?;
        #[derive(serde::Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
        }
        let reply: TokenReply = serde_json::from_slice(&body).map_err(|e| {
            Error::Invalid(format!(
                "{}: the token response from {realm} is not JSON: {e}",
                self.registry
            ))
        })?;
        reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .map(auth::Secret::new)
            .ok_or_else(|| {
                Failure::Local(Error::Invalid(format!(
                    "{}: the token response from {realm} holds no token",
                    self.registry
                )))
            })
    }

    /// A request to this registry, with our authentication.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            HttpAuth::None => req,
            HttpAuth::Basic(u, p) => req.basic_auth(u, Some(p.expose())),
            HttpAuth::Bearer(t) => req.bearer_auth(t.expose()),
        }
    }

    /// Make `oci-client` ready to upload: with Basic auth it pings once to
    /// learn that (sequentially, so not once per job); otherwise it already
    /// has what it needs.
    async fn prime(&self, target: &Reference) -> Result<()> {
        let mut primed = self.primed.lock().await;
        if *primed {
            return Ok(());
        }
        if let HttpAuth::Basic(u, p) = &self.auth {
            let auth = RegistryAuth::Basic(u.clone(), p.expose().to_owned());
            let r = oci_ref(target);
            self.retry(|| self.client.auth(&r, &auth, RegistryOperation::Push))
                .await
                .map_err(|e| self.explain(e))?;
        }
        *primed = true;
        Ok(())
    }

    /// Run `f` until it succeeds, a non-transient error, or retries run out
    /// (backoff 0.25 s, 0.5 s, 1 s, ... at most 8 s).
    async fn retry<T, E, F, Fut>(&self, mut f: F) -> std::result::Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Failure>,
    {
        let mut attempt = 0;
        loop {
            match f().await.map_err(Into::into) {
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

    /// A failure as a message that says what to do. Credentials never
    /// appear: only the user name.
    fn explain(&self, e: impl Into<Failure>) -> Error {
        let e = match e.into() {
            Failure::Local(e) => return e,
            Failure::Remote(e) => e,
        };
        let registry = &self.registry;
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

    /// HEAD a blob: whether the repository of `r` has it.
    async fn blob_exists(&self, r: &Reference, digest: &str) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        self.retry(|| async {
            let res = self.request(reqwest::Method::HEAD, &path).send().await?;
            match res.status().as_u16() {
                200..=299 => Ok(true),
                404 => Ok(false),
                _ => Err(status_error(res).await),
            }
        })
        .await
        .map_err(|e| self.explain(e))
    }

    /// The digest `r` names, `None` when the registry has no such manifest:
    /// a HEAD, and a bounded GET when the registry gives no digest header.
    async fn manifest_digest(&self, r: &Reference) -> Result<Option<String>> {
        let found = self
            .retry(|| async {
                let res = self
                    .request(reqwest::Method::HEAD, &manifest_path(r))
                    .header(reqwest::header::ACCEPT, ACCEPT.join(", "))
                    .send()
                    .await?;
                match res.status().as_u16() {
                    200..=299 => Ok(Some(
                        res.headers()
                            .get("docker-content-digest")
                            .and_then(|v| v.to_str().ok())
                            .filter(|d| Sha256Digest::parse(d).is_some())
                            .map(str::to_owned),
                    )),
                    404 => Ok(None),
                    _ => Err(status_error(res).await),
                }
            })
            .await
            .map_err(|e| self.explain(e))?;
        match found {
            None => Ok(None),
            Some(Some(d)) => Ok(Some(d)),
            Some(None) => Ok(Some(self.manifest_raw(r).await?.1)),
        }
    }

    /// GET the manifest or index `r` names, at most
    /// [`crate::verify::MAX_DOCUMENT`] bytes, checked against the digest of
    /// `r` when it has one.
    async fn manifest_raw(&self, r: &Reference) -> Result<(Vec<u8>, String)> {
        let max = crate::verify::MAX_DOCUMENT;
        let bytes = self
            .retry(|| async {
                let mut res = self
                    .request(reqwest::Method::GET, &manifest_path(r))
                    .header(reqwest::header::ACCEPT, ACCEPT.join(", "))
                    .send()
                    .await?;
                if !res.status().is_success() {
                    return Err(status_error(res).await);
                }
                read_capped(&mut res, max).await?.map_err(|why| {
                    Failure::Local(why.explain(
                        &r.to_string(),
                        "the manifest the registry sent",
                        max,
                    ))
                })
            })
            .await
            .map_err(|e| self.explain(e))?;
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
        Ok((bytes, digest))
    }

    /// PUT a manifest or index at `r` (its tag, else its digest); the
    /// digest the registry says it stored, when it says.
    async fn put_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Option<String>> {
        let content_type = reqwest::header::HeaderValue::from_str(media_type)
            .map_err(|_| Error::Invalid(format!("media type {media_type:?} cannot be sent")))?;
        let path = match &r.tag {
            Some(t) => format!("/v2/{}/manifests/{t}", r.repository),
            None => manifest_path(r),
        };
        self.retry(|| async {
            let res = self
                .request(reqwest::Method::PUT, &path)
                .header(reqwest::header::CONTENT_TYPE, content_type.clone())
                .body(bytes.to_vec())
                .send()
                .await?;
            if !res.status().is_success() {
                return Err(status_error(res).await);
            }
            Ok(res
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned))
        })
        .await
        .map_err(|e| self.explain(e))
    }

    /// GET a blob of the repository of `r` that must be `size` bytes,
    /// handing its chunks to `sink`; a longer body is cut off and refused.
    async fn get_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
    ) -> std::result::Result<(), Failure> {
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        let mut res = self.request(reqwest::Method::GET, &path).send().await?;
        if !res.status().is_success() {
            return Err(status_error(res).await);
        }
        let too_long = || {
            Failure::Local(Error::DigestMismatch {
                context: format!("blob {digest} of {r}"),
                expected: format!("{size} bytes"),
                found: "more".into(),
            })
        };
        if res.content_length().is_some_and(|n| n > size) {
            return Err(too_long());
        }
        let mut received = 0u64;
        while let Some(chunk) = res.chunk().await? {
            received += chunk.len() as u64;
            if received > size {
                return Err(too_long());
            }
            sink(&chunk)?;
        }
        Ok(())
    }
}

/// Whether the registry of `r` (on this machine) speaks plain HTTP: it does
/// when `http://HOST/v2/` answers as a registry does (200 or 401 with the
/// `Docker-Distribution-API-Version` header, or a JSON body). A TLS server
/// answers plain HTTP with a 400, so HTTPS is used for it. The answer is
/// the registry's ping: its status and challenge.
async fn probe_plain_http(r: &Reference) -> Option<Ping> {
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
        let text = String::from_utf8_lossy(&head).into_owned();
        let end = text.find("\r\n\r\n").unwrap_or(text.len());
        let mut lines = text[..end].split("\r\n");
        let status: u16 = lines
            .next()?
            .strip_prefix("HTTP/1.")?
            .get(2..5)?
            .parse()
            .ok()?;
        let mut challenge = None;
        let mut api_header = false;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_lowercase();
                if k == "www-authenticate" {
                    challenge = Some(v.trim().to_owned());
                } else if k == "docker-distribution-api-version" {
                    api_header = true;
                }
            }
        }
        // A registry's answers, or a server error: a TLS server answers
        // plain HTTP with 400 at most, so a 5xx comes from plain HTTP and is
        // reported as it is, not as a TLS failure.
        (status == 200 || status == 401 || status >= 500 || api_header)
            .then_some(Ping { status, challenge })
    };
    tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .ok()
        .flatten()
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

pub use crate::tags::select;

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

/// What a push did to one tag.
#[derive(Clone, Debug, Serialize)]
pub struct TagReport {
    pub tag: String,
    /// `set`, or `unchanged` (it already named the image: nothing sent).
    pub action: &'static str,
}

/// Push the image `tag` of `layout` (or its only image) to `target`.
///
/// First, for each tag to set, the registry is asked what the tag names
/// (HEAD); a tag that names the local digest already is left alone, and
/// when every tag is, nothing at all is written. Otherwise blobs go first
/// (skipped when present, mounted when another repository of the registry
/// has them, else uploaded), then child manifests, then the top manifest
/// or index under each tag still to set. When the repository already holds
/// the image by digest, only the tags are written.
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
    // The tags to set, each with the digest it is to name: the target's tag
    // (a reference with a tag and a digest names the tag; the digest was
    // checked above); with neither, every name the layout gives the image
    // or, through platform tags, one of its manifests.
    let tags: Vec<(String, String)> = match (&target.tag, &target.digest) {
        (Some(t), _) => vec![(t.clone(), root.digest.clone())],
        (None, Some(_)) => Vec::new(),
        (None, None) => {
            let mut named: Vec<(String, String)> = Vec::new();
            for n in crate::tags::names(layout)? {
                if docs.iter().any(|d| d.digest == n.descriptor.digest)
                    && !named.iter().any(|(t, _)| *t == n.name)
                {
                    named.push((n.name, n.descriptor.digest));
                }
            }
            if named.is_empty() {
                named.push(("latest".to_owned(), root.digest.clone()));
            }
            named
        }
    };
    runtime()?.block_on(async {
        let remote = Remote::connect(target, opts, RegistryOperation::Push).await?;
        let mut tag_reports = Vec::new();
        let mut stale = Vec::new();
        for (t, digest) in &tags {
            let now = remote.manifest_digest(&target.with_tag(t)).await?;
            if now.as_deref() == Some(digest.as_str()) {
                tag_reports.push(TagReport {
                    tag: t.clone(),
                    action: "unchanged",
                });
            } else {
                stale.push((t.clone(), digest.clone()));
            }
        }
        let by_digest = target.with_digest(&root.digest);
        let have_root = if tags.is_empty() || !stale.is_empty() {
            remote.manifest_digest(&by_digest).await?.as_deref() == Some(root.digest.as_str())
        } else {
            true
        };
        let report = |results: Vec<BlobReport>, manifests: usize, tag_reports: Vec<TagReport>| {
            let count = |a: &str| results.iter().filter(|r| r.action == a).count();
            PushReport {
                reference: target.to_string(),
                digest: root.digest.clone(),
                media_type: root.media_type.clone(),
                up_to_date: manifests == 0 && count("uploaded") == 0 && count("mounted") == 0,
                tags: tag_reports,
                uploaded: count("uploaded"),
                skipped: count("skipped"),
                mounted: count("mounted"),
                bytes_sent: results
                    .iter()
                    .filter(|r| r.action == "uploaded")
                    .map(|r| r.size)
                    .sum(),
                manifests,
                blobs: results,
            }
        };
        if stale.is_empty() && have_root {
            return Ok(report(Vec::new(), 0, tag_reports));
        }

        let mut results = Vec::new();
        let mut manifests = 0;
        if !have_root {
            results = push_blobs(&remote, target, &blobs, opts, progress).await?;
            for doc in docs.iter().filter(|d| d.digest != root.digest) {
                remote
                    .put_manifest(
                        &target.with_digest(&doc.digest),
                        &doc.bytes,
                        &doc.media_type,
                    )
                    .await?;
                manifests += 1;
            }
        }
        let doc_of = |digest: &str| {
            docs.iter().find(|d| d.digest == digest).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: manifest {digest} is missing",
                    layout.display()
                ))
            })
        };
        let places: Vec<(Reference, &Doc)> = if tags.is_empty() {
            vec![(by_digest.clone(), doc_of(&root.digest)?)]
        } else {
            stale
                .iter()
                .map(|(t, d)| Ok((target.with_tag(t), doc_of(d)?)))
                .collect::<Result<_>>()?
        };
        for (at, doc) in &places {
            let stored = remote.put_manifest(at, &doc.bytes, &doc.media_type).await?;
            manifests += 1;
            // What the tag now names, as the registry says (its answer to
            // the PUT, or a HEAD when it gave none).
            let now = match stored.filter(|d| Sha256Digest::parse(d).is_some()) {
                Some(d) => Some(d),
                None => remote.manifest_digest(at).await?,
            };
            if now.as_deref() != Some(doc.digest.as_str()) {
                return Err(Error::DigestMismatch {
                    context: format!("{at} after the push"),
                    expected: doc.digest.clone(),
                    found: now.unwrap_or_else(|| "nothing".into()),
                });
            }
            if let Some(t) = &at.tag {
                tag_reports.push(TagReport {
                    tag: t.clone(),
                    action: "set",
                });
            }
        }
        remember(
            opts.blob_cache.as_deref(),
            &target.registry,
            &target.repository,
            blobs.iter().map(|b| b.digest.clone()),
        );
        Ok(report(results, manifests, tag_reports))
    })
}

/// Every blob the repository lacks, mounted or uploaded: HEADs first, in
/// parallel; then mounts and uploads, in parallel.
async fn push_blobs(
    remote: &Remote,
    target: &Reference,
    blobs: &[Blob],
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<Vec<BlobReport>> {
    let present: Vec<bool> = futures_util::stream::iter(blobs)
        .map(|b| remote.blob_exists(target, &b.digest))
        .buffered(opts.jobs.max(1))
        .try_collect()
        .await?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for (b, here) in blobs.iter().zip(present) {
        if here {
            progress.blob_done(&b.digest, "skipped");
            results.push(BlobReport {
                digest: b.digest.clone(),
                size: b.size,
                action: "skipped",
            });
        } else {
            missing.push(b.clone());
        }
    }
    if missing.is_empty() {
        return Ok(results);
    }
    remote.prime(target).await?;
    let dest = oci_ref(target);
    let locations = load_locations(opts.blob_cache.as_deref());
    let known = locations.get(&target.registry).cloned().unwrap_or_default();
    let sent: Vec<BlobReport> = futures_util::stream::iter(missing)
        .map(|b| {
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
    results.extend(sent);
    Ok(results)
}

/// Mount `b` from one of `mount_candidates`, else upload it.
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
    for repo in mount_candidates {
        let from = oci_ref(&target.in_repository(repo));
        if remote
            .client
            .mount_blob(dest, &from, &b.digest)
            .await
            .is_ok()
            && remote.blob_exists(target, &b.digest).await.unwrap_or(false)
        {
            progress.blob_done(&b.digest, "mounted");
            return Ok(report("mounted"));
        }
    }
    progress.blob_start(&b.digest, b.size);
    let pushed = remote
        .retry(|| {
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
                    Ok::<_, OciDistributionError>(None)
                }
            }
        })
        .await
        .map_err(|e| remote.explain(e))?;
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

/// Bytes free for this user on the file system holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// A manifest or index fetched from a registry while walking an index.
struct Node {
    descriptor: Descriptor,
    digest: String,
    bytes: Vec<u8>,
    doc: Value,
    is_index: bool,
}

/// Fetch `children` of an index and, depth-first, the children of every
/// nested index among them, in the order listed: each digest once, at most
/// [`crate::image::MAX_INDEX_DEPTH`] deep and
/// [`crate::image::MAX_INDEX_NODES`] descriptors, as every reader of
/// nested indexes does.
async fn fetch_graph(
    remote: &Remote,
    source: &Reference,
    children: Vec<Descriptor>,
) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    let mut stack: Vec<(Descriptor, usize)> = children.into_iter().rev().map(|c| (c, 1)).collect();
    let mut seen = BTreeSet::new();
    while let Some((c, depth)) = stack.pop() {
        if !seen.insert(c.digest.clone()) {
            continue;
        }
        if seen.len() > crate::image::MAX_INDEX_NODES {
            return Err(Error::Invalid(format!(
                "{source}: the image index lists more than {} descriptors (nested indexes included); nixoci stops there",
                crate::image::MAX_INDEX_NODES
            )));
        }
        let (bytes, digest) = remote.manifest_raw(&source.with_digest(&c.digest)).await?;
        if bytes.len() as u64 != c.size {
            return Err(Error::DigestMismatch {
                context: format!("size of manifest {}", c.digest),
                expected: c.size.to_string(),
                found: bytes.len().to_string(),
            });
        }
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{source}: manifest {digest} is not JSON: {e}")))?;
        let is_index = is_index(&c.media_type) || is_index(&media_type_of(&doc));
        if is_index {
            if depth + 1 > crate::image::MAX_INDEX_DEPTH {
                return Err(Error::Invalid(format!(
                    "{source}: image index {digest} is nested more than {} deep; nixoci reads no deeper",
                    crate::image::MAX_INDEX_DEPTH
                )));
            }
            let nested: Vec<Descriptor> = serde_json::from_value(doc["manifests"].clone())
                .map_err(|e| {
                    Error::Invalid(format!("{source}: image index {digest} is not valid: {e}"))
                })?;
            stack.extend(nested.into_iter().rev().map(|g| (g, depth + 1)));
        }
        out.push(Node {
            descriptor: c,
            digest,
            bytes,
            doc,
            is_index,
        });
    }
    Ok(out)
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
                    // Nested indexes are searched as everywhere (one rule:
                    // `image::PlatformSearch`), fetched as they are opened.
                    let mut search = PlatformSearch::new(children, Some(p));
                    let c = loop {
                        match search
                            .next_step()
                            .map_err(|e| e.within(source.to_string()))?
                        {
                            SearchStep::Found(d) => break d,
                            SearchStep::Open(d) => {
                                let (b, _) =
                                    remote.manifest_raw(&source.with_digest(&d.digest)).await?;
                                if b.len() as u64 != d.size {
                                    return Err(Error::DigestMismatch {
                                        context: format!("size of image index {}", d.digest),
                                        expected: d.size.to_string(),
                                        found: b.len().to_string(),
                                    });
                                }
                                let nested: Refs = serde_json::from_slice(&b).map_err(|e| {
                                    Error::Invalid(format!(
                                        "{source}: image index {} is not valid: {e}",
                                        d.digest
                                    ))
                                })?;
                                search.enter(nested.manifests);
                            }
                        }
                    };
                    docs.clear();
                    root = c.clone();
                    vec![c]
                }
                None => children,
            };
            for node in fetch_graph(&remote, source, chosen).await? {
                if !node.is_index {
                    manifests.push(node.doc);
                }
                docs.push((node.digest, node.bytes));
            }
        } else {
            manifests.push(doc);
        }
        let mut wanted: BTreeMap<String, u64> = BTreeMap::new();
        for m in &manifests {
            let refs: Refs = serde_json::from_value(m.clone())
                .map_err(|e| Error::Invalid(format!("{source}: invalid manifest: {e}")))?;
            // A config is a document: bounded as `verify` bounds it.
            if let Some(c) = &refs.config {
                let max = crate::verify::MAX_DOCUMENT;
                if c.size > max {
                    return Err(Capped::TooLarge.explain(
                        &source.to_string(),
                        &format!("the config {} it declares", c.digest),
                        max,
                    ));
                }
            }
            for d in refs.config.iter().chain(refs.layers.iter()) {
                crate::layout::parse_digest(&d.digest, "remote descriptor")?;
                wanted.insert(d.digest.clone(), d.size);
            }
        }
        // Declared sizes must fit on the disk before anything is written:
        // a hostile or mistaken manifest cannot fill it.
        let need: u64 = wanted.values().fold(0u64, |a, b| a.saturating_add(*b));
        if let Some(free) = free_space(blobs_dir.root()) {
            if need > free {
                return Err(Error::Invalid(format!(
                    "{source}: its blobs declare {need} bytes ({}), but {} has {free} bytes ({}) free; refused before writing",
                    crate::inspect::human_size(need),
                    blobs_dir.root().display(),
                    crate::inspect::human_size(free)
                )));
            }
        }
        let results: Vec<BlobReport> = futures_util::stream::iter(wanted)
            .map(|(digest, size)| {
                let remote = &remote;
                let blobs_dir = &blobs_dir;
                let progress = progress.clone();
                async move { pull_blob(remote, source, blobs_dir, &digest, size, progress).await }
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
    source: &Reference,
    blobs_dir: &BlobDir,
    digest: &str,
    size: u64,
    progress: Arc<dyn Progress + Send>,
) -> Result<BlobReport> {
    progress.blob_start(digest, size);
    remote
        .retry(|| pull_blob_once(remote, source, blobs_dir, digest, size, &*progress))
        .await
        .map_err(|e| remote.explain(e))?;
    progress.blob_done(digest, "downloaded");
    Ok(BlobReport {
        digest: digest.to_owned(),
        size,
        action: "downloaded",
    })
}

async fn pull_blob_once(
    remote: &Remote,
    source: &Reference,
    blobs_dir: &BlobDir,
    digest: &str,
    size: u64,
    progress: &dyn Progress,
) -> std::result::Result<(), Failure> {
    let mut w = blobs_dir.writer()?;
    let root = blobs_dir.root().to_owned();
    remote
        .get_blob(source, digest, size, &mut |chunk| {
            std::io::Write::write_all(&mut w, chunk).map_err(|e| Error::io(&root, e))?;
            progress.blob_advance(digest, chunk.len() as u64);
            Ok(())
        })
        .await?;
    let (found, n) = w.complete()?;
    if found.to_string() != digest || n != size {
        let _ = std::fs::remove_file(blobs_dir.path(&found));
        return Err(Failure::Local(Error::DigestMismatch {
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
        remote
            .put_manifest(&source.with_tag(new_tag), &bytes, &media_type)
            .await?;
        Ok(digest)
    })
}

/// Whether `r` names a manifest: `Ok(Some(digest))`, `Ok(None)` when the
/// registry says it does not exist.
pub fn exists(r: &Reference, opts: &RemoteOptions) -> Result<Option<String>> {
    runtime()?.block_on(async {
        let remote = Remote::connect(r, opts, RegistryOperation::Pull).await?;
        remote.manifest_digest(r).await
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
            for node in fetch_graph(&remote, r, children).await? {
                if !node.is_index {
                    manifests.push((node.descriptor.platform, node.digest, node.doc));
                }
            }
        } else {
            manifests.push((None, digest.clone(), doc));
        }
        for (platform, manifest, m) in manifests {
            let refs: Refs = serde_json::from_value(m)
                .map_err(|e| Error::Invalid(format!("{r}: invalid manifest: {e}")))?;
            let Some(config_desc) = refs.config else {
                continue;
            };
            let max = crate::verify::MAX_DOCUMENT;
            if config_desc.size > max {
                return Err(Error::Invalid(format!(
                    "{r}: the config is {} bytes, more than {} ({max} bytes), the most nixoci reads (as `verify` does)",
                    config_desc.size,
                    limit_text(max)
                )));
            }
            crate::layout::parse_digest(&config_desc.digest, "config descriptor")?;
            let config_bytes = remote
                .retry(|| async {
                    let mut v: Vec<u8> = Vec::new();
                    remote
                        .get_blob(r, &config_desc.digest, config_desc.size, &mut |c| {
                            v.extend_from_slice(c);
                            Ok(())
                        })
                        .await
                        .map(|_| v)
                })
                .await
                .map_err(|e| {
                    remote
                        .explain(e)
                        .within(format!("config of {r}, {} bytes", config_desc.size))
                })?;
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
            tags: r.tag.clone().into_iter().collect(),
            media_type,
            digest,
            images,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_with_quoted_commas() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (scheme, p) = parse_challenge(r#"Basic realm="test""#);
        assert_eq!((scheme.as_str(), p["realm"].as_str()), ("basic", "test"));
    }

    #[test]
    fn limits_in_words() {
        assert_eq!(limit_text(16 << 20), "16 MiB");
        assert_eq!(limit_text(64 << 10), "64 KiB");
        assert_eq!(limit_text(100), "100 bytes");
    }
}
