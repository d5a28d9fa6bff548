//! A connection to one registry: the protocol chosen (HTTPS, or plain HTTP
//! for a local registry that speaks no TLS), the ping, the credentials
//! ([`super::auth`]) and the bearer token, and the retry wrapper and error
//! explanation every request goes through ([`super::errors`]).
//!
//! Also [`RemoteOptions`], what the command line says about how to reach a
//! registry.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use super::auth::{self, Credentials};
use super::errors::{self, read_capped, status_error, transient, Failure};
use crate::error::{Error, IoContext, Result};
use crate::oci::reference::Reference;

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

/// The most of a token response nixoci reads (a token is a few KiB).
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

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
/// most [`crate::oci::json::MAX_DOCUMENT`] (the limit `verify` applies),
/// tokens [`MAX_TOKEN_RESPONSE`], error bodies [`errors::MAX_ERROR_BODY`], blobs
/// their descriptor's size. `oci-client` uploads and mounts blobs, with the
/// authentication found here handed to it, so that it pings no more.
pub(super) struct Remote {
    pub(super) client: Client,
    http: reqwest::Client,
    /// `http://HOST` or `https://HOST`.
    base: String,
    auth: HttpAuth,
    /// Whether `client` is ready to upload (Basic auth makes it ping once).
    primed: tokio::sync::Mutex<bool>,
    pub(super) opts: RemoteOptions,
    who: String,
    registry: String,
}

pub(super) fn oci_ref(r: &Reference) -> oci_client::Reference {
    match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
            r.registry.clone(),
            r.repository.clone(),
            t.clone(),
            d.to_string(),
        ),
        (_, Some(d)) => oci_client::Reference::with_digest(
            r.registry.clone(),
            r.repository.clone(),
            d.to_string(),
        ),
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

impl Remote {
    /// Connect to the registry of `r`: pick the protocol, ping it once,
    /// load credentials and get a token when it asks for one (for `op`).
    pub(super) async fn connect(
        r: &Reference,
        opts: &RemoteOptions,
        op: RegistryOperation,
    ) -> Result<Remote> {
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
    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
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
    pub(super) async fn prime(&self, target: &Reference) -> Result<()> {
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

    /// A failure as a message that says what to do ([`errors::explain`]).
    pub(super) fn explain(&self, e: impl Into<Failure>) -> Error {
        errors::explain(&self.registry, &self.who, e.into())
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

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the I/O runtime: {e}")))
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
}
