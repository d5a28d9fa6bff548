//! A connection to one registry: the protocol chosen (HTTPS, or plain HTTP
//! for a local registry that speaks no TLS), the ping ([`super::ping`]),
//! the credentials ([`super::auth`]) and the bearer token, and the retry
//! wrapper and error explanation every request goes through
//! ([`super::errors`]).
//!
//! Also [`RemoteOptions`], what the command line says about how to reach a
//! registry.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use super::auth::{self, Credentials};
use super::errors::{self, read_capped, status_error, transient, Failure};
use super::ping::{parse_challenge, probe_plain_http, Ping};
use crate::error::{Error, IoContext, Result};
use crate::oci::reference::Reference;

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// Credentials from the command line; `None`: look them up
    /// (`auth::lookup`: where Docker, podman and skopeo keep them).
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
    /// How long a connection may send nothing before the request fails
    /// (and is retried as a transient failure). Zero: the default,
    /// [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// How long one document (a manifest, an index, a token response, an
    /// error body) may take to arrive in all. Zero: the default, 60 s; the
    /// command line reads it once from `NIXOCI_DOCUMENT_TIMEOUT`.
    pub document_timeout: Duration,
}

/// Default of [`RemoteOptions::timeout`]: 120 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

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

/// The most of a token response nixoci reads (a token is a few KiB).
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// What a connection is for: the scope of the token asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RegistryOperation {
    /// Reading: `repository:NAME:pull`.
    Pull,
    /// Writing (and reading): `repository:NAME:pull,push`.
    Push,
}

/// How requests authenticate, as the registry's ping asked.
#[derive(Clone)]
enum HttpAuth {
    None,
    Basic(String, auth::Secret),
    Bearer(auth::Secret),
}

/// A connection to one registry.
///
/// One HTTP client and one authentication make every request: the ping,
/// the token request, manifests, blob checks, downloads, uploads and
/// mounts. Every body is read with a bound: documents at most
/// [`crate::oci::json::MAX_DOCUMENT`] (the limit `verify` applies), tokens
/// [`MAX_TOKEN_RESPONSE`], error bodies [`errors::MAX_ERROR_BODY`], blobs
/// their descriptor's size.
pub(super) struct Remote {
    http: reqwest::Client,
    /// `http://HOST` or `https://HOST`.
    base: String,
    auth: HttpAuth,
    pub(super) opts: RemoteOptions,
    who: String,
    registry: String,
    /// Per repository, whether it keeps referrers itself (the referrers
    /// API), once this run has learnt it ([`Remote::keeps_referrers`]).
    referrers_kept: std::sync::Mutex<std::collections::BTreeMap<String, bool>>,
}

/// Whether this machine offers CA roots where TLS clients look for them
/// (`SSL_CERT_FILE`, `SSL_CERT_DIR`, the distribution's bundle), asked
/// once per process. The Nix sandbox of a fixed-output derivation has no
/// `/etc/ssl`: then the public roots built into nixoci are trusted
/// ([`extra_certificates`]).
fn system_has_roots() -> bool {
    static HAS_ROOTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS_ROOTS.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty())
}

/// The CA certificates to trust besides the system's: those of
/// [`RemoteOptions::ca_file`], and, when the system offers none
/// ([`system_has_roots`]), the public roots built into nixoci (Mozilla's,
/// from `webpki-root-certs`). They are handed to the HTTP client as
/// certificates: nothing in the process environment changes.
fn extra_certificates(opts: &RemoteOptions) -> Result<Vec<reqwest::Certificate>> {
    let mut extra = Vec::new();
    if !system_has_roots() {
        // Only those the TLS library takes as trust anchors: it refuses the
        // whole list for one it cannot read (as it skips such a root of the
        // system's).
        for c in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            if rustls::RootCertStore::empty()
                .add(c.clone().into_owned())
                .is_ok()
            {
                if let Ok(c) = reqwest::Certificate::from_der(c.as_ref()) {
                    extra.push(c);
                }
            }
        }
    }
    if let Some(ca) = &opts.ca_file {
        let data = std::fs::read(ca).at(ca)?;
        if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
            return Err(Error::Invalid(format!(
                "{}: not a PEM certificate file",
                ca.display()
            )));
        }
        // A PEM file may hold several certificates (a CA and its
        // intermediates): all are trusted.
        extra.extend(reqwest::Certificate::from_pem_bundle(&data).map_err(|e| {
            Error::Invalid(format!(
                "{}: not a usable PEM certificate file: {e}",
                ca.display()
            ))
        })?);
    }
    Ok(extra)
}

/// The HTTP client of a connection, trusting the system's CA roots and
/// `extra`.
fn http_client(opts: &RemoteOptions, extra: Vec<reqwest::Certificate>) -> Result<reqwest::Client> {
    let read_timeout = if opts.timeout.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        opts.timeout
    };
    reqwest::Client::builder()
        .tls_certs_merge(extra)
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(read_timeout)
        .user_agent(concat!("nixoci/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot set up HTTP: {}", crate::error::chain(&e))))
}

impl Remote {
    /// Connect to the registry of `r`: pick the protocol, ping it once,
    /// load credentials and get a token when it asks for one (for `op`).
    pub(super) async fn connect(
        r: &Reference,
        opts: &RemoteOptions,
        op: RegistryOperation,
    ) -> Result<Remote> {
        let extra = extra_certificates(opts)?;
        // The probe of a local registry is its ping too.
        let probed = if !opts.plain_http && r.is_local() {
            probe_plain_http(r).await
        } else {
            None
        };
        let plain = opts.plain_http || probed.is_some();
        let http = http_client(opts, extra)?;
        let creds = match &opts.credentials {
            Some(c) => c.clone(),
            None => auth::lookup(&r.registry)?,
        };
        let who = match &creds {
            Credentials::Anonymous => "anonymously".to_owned(),
            Credentials::Basic { username, .. } => format!("as {username}"),
        };
        let mut remote = Remote {
            http,
            base: format!("{}://{}", if plain { "http" } else { "https" }, r.registry),
            auth: HttpAuth::None,
            opts: opts.clone(),
            who,
            registry: r.registry.clone(),
            referrers_kept: Default::default(),
        };
        let ping = match probed {
            Some(p) => p,
            None => remote
                .retry(|| remote.ping())
                .await
                .map_err(|e| remote.explain(e))?,
        };
        remote.auth = remote.authenticate(r, op, &ping, &creds).await?;
        Ok(remote)
    }

    /// How to authenticate, as `ping` asks: a bearer token for `op` on the
    /// repository of `r`, Basic auth when the
    /// registry answered 401 and there are credentials, else nothing.
    async fn authenticate(
        &self,
        r: &Reference,
        op: RegistryOperation,
        ping: &Ping,
        creds: &Credentials,
    ) -> Result<HttpAuth> {
        let (scheme, params) = ping
            .challenge
            .as_deref()
            .map(parse_challenge)
            .unwrap_or_default();
        Ok(match (scheme.as_str(), creds) {
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
                let token = self
                    .retry(|| self.token(&realm, params.get("service"), &scope, creds))
                    .await
                    .map_err(|e| self.explain(e))?;
                HttpAuth::Bearer(token)
            }
            (_, Credentials::Basic { username, password }) if ping.status == 401 => {
                HttpAuth::Basic(username.clone(), password.clone())
            }
            _ => HttpAuth::None,
        })
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
            return Err(status_error(res, self.deadline()).await);
        }
        let body = read_capped(&mut res, MAX_TOKEN_RESPONSE, self.deadline())
            .await?
            .map_err(|why| {
                why.explain(
                    &self.registry,
                    &format!("the token response from {realm}"),
                    MAX_TOKEN_RESPONSE,
                )
            })?;
        self.token_in(realm, &body)
    }

    /// The token of a token response `body` from `realm` (`token`, or
    /// `access_token` as OAuth 2 names it).
    fn token_in(&self, realm: &str, body: &[u8]) -> std::result::Result<auth::Secret, Failure> {
        #[derive(serde::Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
        }
        let reply: TokenReply = serde_json::from_slice(body).map_err(|e| {
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
    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        self.authenticated(req)
    }

    /// A request to `url`, which the registry named (an upload's
    /// `Location`): with our authentication only when it is this
    /// registry's (same scheme, host and port), so that credentials never
    /// go to another server.
    pub(super) fn request_url(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> reqwest::RequestBuilder {
        let ours = self.is_ours(&url);
        let req = self.http.request(method, url);
        if ours {
            self.authenticated(req)
        } else {
            req
        }
    }

    /// Whether `url` is this registry's: the same scheme, host and port.
    pub(super) fn is_ours(&self, url: &reqwest::Url) -> bool {
        reqwest::Url::parse(&self.base).is_ok_and(|base| base.origin() == url.origin())
    }

    /// The URL of `path` (with its query, if any) on this registry.
    pub(super) fn url(&self, path: &str) -> Result<reqwest::Url> {
        reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| Error::Invalid(format!("{}: {path} makes no URL: {e}", self.registry)))
    }

    /// `req` with our authentication.
    fn authenticated(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            HttpAuth::None => req,
            HttpAuth::Basic(u, p) => req.basic_auth(u, Some(p.expose())),
            HttpAuth::Bearer(t) => req.bearer_auth(t.expose()),
        }
    }

    /// [`RemoteOptions::document_timeout`], or its default.
    pub(super) fn deadline(&self) -> Duration {
        if self.opts.document_timeout.is_zero() {
            errors::DEFAULT_DOCUMENT_TIMEOUT
        } else {
            self.opts.document_timeout
        }
    }

    /// A registry failure of `kind` found by nixoci itself (a HEAD said no
    /// such image), worded as `message`.
    pub(super) fn failure(&self, kind: crate::error::RegistryErrorKind, message: String) -> Error {
        Error::Registry {
            registry: self.registry.clone(),
            kind,
            message,
        }
    }

    /// Run `f` until it succeeds, a non-transient error ([`transient`]), or
    /// [`RemoteOptions::retries`] retries run out.
    pub(super) async fn retry<T, E, F, Fut>(&self, f: F) -> std::result::Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Failure>,
    {
        errors::retry(self.opts.retries, transient, f).await
    }

    /// Whether the repository `repository` keeps referrers itself, if this
    /// run has learnt it (an `OCI-Subject` header, or an answer of the
    /// referrers API).
    pub(super) fn keeps_referrers(&self, repository: &str) -> Option<bool> {
        let known = self
            .referrers_kept
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        known.get(repository).copied()
    }

    /// Remember whether `repository` keeps referrers itself, for the rest
    /// of the run.
    pub(super) fn learn_keeps_referrers(&self, repository: &str, keeps: bool) {
        let mut known = self
            .referrers_kept
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        known.insert(repository.to_owned(), keeps);
    }

    /// A failure as a message that says what to do ([`errors::explain`]).
    pub(super) fn explain(&self, e: impl Into<Failure>) -> Error {
        errors::explain(&self.registry, &self.who, e.into())
    }

    /// [`Remote::explain`] for a failure in moving `what` (a blob): the
    /// message names it, unless it is one of ours that does already.
    pub(super) fn explain_about(&self, what: &str, e: Failure) -> Error {
        match e {
            Failure::Remote(_) | Failure::Later(..) => match self.explain(e) {
                Error::Registry {
                    registry,
                    kind,
                    message,
                } => Error::Registry {
                    registry,
                    kind,
                    message: format!("{what}: {message}"),
                },
                other => other.within(what),
            },
            e => self.explain(e),
        }
    }
}
