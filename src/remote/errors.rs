//! Why a request to a registry failed, whether it is worth retrying, the
//! one retry loop, and the failure explained in words that say what to do.
//! Also the bounded reads of response bodies (documents, tokens, error
//! bodies) and their refusals.
//!
//! Nothing here knows a connection: these are plain functions of errors and
//! responses, used by [`super::client`] and the requests above it.

use std::future::Future;
use std::time::Duration;

use super::failure::{error_codes, RemoteError, StatusError};
use crate::error::{chain, Error, RegistryErrorKind, TlsFailure, TransportFailure};

/// The most of an error response's body nixoci reads (the rest is dropped
/// unread; the message needs only its start).
pub(super) const MAX_ERROR_BODY: u64 = 64 << 10;
/// The most of an error body an error message shows, in characters.
pub(super) const MAX_ERROR_MESSAGE: usize = 300;

/// A size limit in words: `16 MiB`.
pub(super) fn limit_text(max: u64) -> String {
    if max >= 1 << 20 && max % (1 << 20) == 0 {
        format!("{} MiB", max >> 20)
    } else if max >= 1 << 10 && max % (1 << 10) == 0 {
        format!("{} KiB", max >> 10)
    } else {
        format!("{max} bytes")
    }
}

/// Why a request failed: the registry or the network (`Remote`, retried
/// when transient, explained), the registry asking to be asked again later
/// (`Later`: a 429 or 503 with `Retry-After`, retried after that wait), or
/// a download whose bytes are not the ones asked for (`Garbled`: a wrong
/// digest or a short body, fetched again, then the error as it is), or a
/// check of ours (`Local`, as it is), or a blob download slower than
/// [`MIN_RATE`] (`Slow`: retried, then the error as it is).
pub(super) enum Failure {
    Remote(RemoteError),
    Later(RemoteError, Duration),
    Garbled(Error),
    Local(Error),
    Slow(Error),
}

/// The least a blob download may average, in bytes per second, over each
/// period of `--timeout` seconds (or what is left of the blob, when that
/// is less): a registry dripping a byte now and then passes the timeout,
/// which only asks for something at least every `--timeout` seconds, but
/// not this. A slower download is retried, as a stalled one is.
pub(super) const MIN_RATE: u64 = 1024;

/// The longest `Retry-After` nixoci waits for. A registry asking for more
/// gets no retry: the command fails at once and says so (a CI job should
/// not sleep for an hour on a rate limit).
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A `Retry-After` header's wait: seconds, or an HTTP date (the time from
/// now until then). `None` without one, or when it cannot be read.
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

impl From<RemoteError> for Failure {
    fn from(e: RemoteError) -> Self {
        Failure::Remote(e)
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        Failure::Remote(RemoteError::Http(e))
    }
}

impl Failure {
    /// The failure in a line, for the retry log.
    fn describe(&self) -> String {
        without_queries(&match self {
            Failure::Remote(e) => chain(e),
            Failure::Later(e, wait) => {
                format!("{} (Retry-After: {} s)", chain(e), wait.as_secs_f64())
            }
            Failure::Garbled(e) | Failure::Local(e) | Failure::Slow(e) => chain(e),
        })
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Local(e)
    }
}

/// Whether an error is worth retrying.
pub(super) fn transient(e: &Failure) -> bool {
    let e = match e {
        Failure::Remote(e) => e,
        Failure::Later(..) | Failure::Garbled(_) | Failure::Slow(_) => return true,
        Failure::Local(_) => return false,
    };
    match e {
        // Docker Hub's rate limit may come as a 429 or as its error code.
        RemoteError::Status(s) => s.status >= 500 || rate_limited(s),
        // A certificate refused now is refused again: not retried.
        RemoteError::Http(r) if tls_failure(r).is_some() => false,
        // A body cut off mid-way (a reset connection) comes as a "decode"
        // error: reqwest decompresses nothing here, so it can only be the
        // transport.
        RemoteError::Http(r) => {
            r.is_connect() || r.is_timeout() || r.is_request() || r.is_body() || r.is_decode()
        }
    }
}

/// Whether the registry refused the credentials (or their absence).
fn refused_credentials(s: &StatusError) -> bool {
    s.status == 401 || s.status == 403 || s.has_code(&["UNAUTHORIZED", "DENIED"])
}

/// Whether the registry asked for fewer requests.
fn rate_limited(s: &StatusError) -> bool {
    s.status == 429 || s.has_code(&["TOOMANYREQUESTS"])
}

/// The errors `e` holds, itself first, then its sources; an I/O error's
/// own inner error too (`std::io::Error::source` skips it, and rustls'
/// errors reach reqwest inside one).
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
        Some(current)
    })
}

/// Why the TLS handshake of `e` failed, read from rustls' error types;
/// `None` when `e` is no TLS failure.
fn tls_failure(e: &reqwest::Error) -> Option<TlsFailure> {
    use rustls::CertificateError as C;
    let tls = causes(e).find_map(|c| c.downcast_ref::<rustls::Error>())?;
    Some(match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => TlsFailure::UntrustedIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsFailure::Expired,
            _ => TlsFailure::Other,
        },
        _ => TlsFailure::Other,
    })
}

/// Why no answer came, from the I/O errors under `e`.
fn transport_failure(e: &reqwest::Error) -> TransportFailure {
    use std::io::ErrorKind as K;
    let io_kind = causes(e)
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
        .find(|k| *k != K::Other);
    match io_kind {
        Some(K::ConnectionRefused) => TransportFailure::ConnectionRefused,
        Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) => {
            TransportFailure::Reset
        }
        Some(K::TimedOut) => TransportFailure::Timeout,
        _ if e.is_timeout() => TransportFailure::Timeout,
        _ => TransportFailure::Other,
    }
}

/// The kind of a registry failure; `wait`: the `Retry-After` it gave.
fn kind_of(e: &RemoteError, wait: Option<Duration>) -> RegistryErrorKind {
    match e {
        RemoteError::Status(s) if refused_credentials(s) => RegistryErrorKind::Authentication,
        RemoteError::Status(s) if rate_limited(s) => {
            RegistryErrorKind::RateLimited { retry_after: wait }
        }
        RemoteError::Status(s) if not_found(s) => RegistryErrorKind::NotFound,
        RemoteError::Status(s) => RegistryErrorKind::ServerStatus(s.status),
        RemoteError::Http(r) => match tls_failure(r) {
            Some(t) => RegistryErrorKind::Tls(t),
            None => RegistryErrorKind::Transport(transport_failure(r)),
        },
    }
}

/// Whether the registry said that what was asked for does not exist.
fn not_found(s: &StatusError) -> bool {
    s.status == 404
        || s.has_code(&[
            "MANIFEST_UNKNOWN",
            "NAME_UNKNOWN",
            "BLOB_UNKNOWN",
            "NOT_FOUND",
        ])
}

/// How long reading one document's body (a manifest, an index, a token
/// response, an error body) may take in all, unless
/// `NIXOCI_DOCUMENT_TIMEOUT` or [`super::RemoteOptions::document_timeout`]
/// says otherwise: each read has its own timeout, but a server dripping a
/// byte at a time would pass that forever.
pub const DEFAULT_DOCUMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variable that sets
/// [`super::RemoteOptions::document_timeout`] on the command line.
pub const DOCUMENT_TIMEOUT_ENV: &str = "NIXOCI_DOCUMENT_TIMEOUT";

/// `NIXOCI_DOCUMENT_TIMEOUT` ([`parse_seconds`]), read once when the
/// options are made; `None` when it is not set. A value that is not a
/// number of seconds from 0 to 86400 (`1e30`, `-1`, `nan`, `abc`) is an
/// error naming the variable, never a silent default.
pub fn document_timeout_from_env() -> crate::error::Result<Option<Duration>> {
    let Some(v) = std::env::var_os(DOCUMENT_TIMEOUT_ENV) else {
        return Ok(None);
    };
    v.to_str()
        .and_then(|s| parse_seconds(s.trim()))
        .map(Some)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{DOCUMENT_TIMEOUT_ENV}={v:?}: expected a number of seconds (more than 0 and at most 86400, like 30 or 0.5); unset it for the default ({} s)",
                DEFAULT_DOCUMENT_TIMEOUT.as_secs()
            ))
        })
}

/// A wait as a user writes it, in seconds (`30`, `0.5`): finite, more than
/// 0 and at most a day (86400). `--timeout` and
/// `NIXOCI_CREDENTIAL_HELPER_TIMEOUT` take it.
pub fn parse_seconds(text: &str) -> Option<Duration> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
}

/// Why [`read_capped`] gave no body: too large, or not all there within
/// the deadline given.
pub(super) enum Capped {
    TooLarge,
    TooSlow(Duration),
}

impl Capped {
    /// The refusal in words: `what` came from `from` (a reference, or a
    /// registry), at most `max` bytes. Too slow is a registry failure
    /// ([`TransportFailure::Timeout`]); too large, a refusal of ours.
    pub(super) fn explain(&self, from: &str, what: &str, max: u64) -> Error {
        match self {
            Capped::TooLarge => Error::Invalid(format!(
                "{from}: {what} is larger than {} ({max} bytes), the most nixoci reads (as `verify` does); refused",
                limit_text(max)
            )),
            Capped::TooSlow(deadline) => Error::Registry {
                registry: from.split('/').next().unwrap_or(from).to_owned(),
                kind: RegistryErrorKind::Transport(TransportFailure::Timeout),
                message: format!(
                    "{from}: {what} did not arrive within {} s ({DOCUMENT_TIMEOUT_ENV}); nixoci gives a document no longer (the server may be overloaded, or hostile)",
                    deadline.as_secs_f64()
                ),
            },
        }
    }
}

/// Read a response body of at most `max` bytes within `deadline` (the
/// document timeout): `Err(Capped)` when the Content-Length or the bytes
/// themselves go past it, or time runs out (reading stops there).
pub(super) async fn read_capped(
    res: &mut reqwest::Response,
    max: u64,
    deadline: Duration,
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
    match tokio::time::timeout(deadline, read).await {
        Ok(r) => r,
        Err(_) => Ok(Err(Capped::TooSlow(deadline))),
    }
}

/// A failed response as a [`RemoteError::Status`], reading at most
/// [`MAX_ERROR_BODY`] of its body, within `deadline` (the document
/// timeout).
pub(super) async fn status_error(mut res: reqwest::Response, deadline: Duration) -> Failure {
    let status = res.status();
    let later = match status.as_u16() {
        429 | 503 => retry_after(res.headers()),
        _ => None,
    };
    let url = res.url().to_string();
    let mut body = Vec::new();
    // What arrives within the deadline is enough to explain the error.
    let _ = tokio::time::timeout(deadline, async {
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
    let errors = if status.is_client_error() {
        error_codes(&body)
    } else {
        Vec::new()
    };
    let error = RemoteError::Status(StatusError {
        status: status.as_u16(),
        url,
        body: if errors.is_empty() {
            message
        } else {
            String::new()
        },
        errors,
    });
    match later {
        Some(wait) => Failure::Later(error, wait),
        None => Failure::Remote(error),
    }
}

/// Run `f` until it succeeds, fails in a way `worth_retrying` turns down,
/// or `retries` retries have run out (backoff 0.25 s, 0.5 s, 1 s, ... at
/// most 8 s; or the registry's `Retry-After`, when it gives one of at most
/// [`MAX_RETRY_AFTER`]). The one retry loop of the remote code: every
/// request goes through it, with [`transient`] as the predicate
/// ([`super::client::Remote::retry`]). Each retry is logged (a warning,
/// shown with `RUST_LOG=nixoci=warn`).
pub(super) async fn retry<T, E, F, Fut>(
    retries: u32,
    worth_retrying: impl Fn(&Failure) -> bool,
    mut f: F,
) -> std::result::Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
    E: Into<Failure>,
{
    let mut attempt = 0;
    loop {
        match f().await.map_err(Into::into) {
            Err(e) if worth_retrying(&e) && attempt < retries => {
                let backoff =
                    Duration::from_millis(250u64 << attempt.min(5)).min(Duration::from_secs(8));
                let wait = match &e {
                    Failure::Later(_, asked) if *asked > MAX_RETRY_AFTER => return Err(e),
                    Failure::Later(_, asked) => (*asked).max(Duration::from_millis(100)),
                    _ => backoff,
                };
                tracing::warn!(
                    "retry {} of {retries} in {:.2} s after: {}",
                    attempt + 1,
                    wait.as_secs_f64(),
                    e.describe()
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A failure in talking to `registry`, as a message that says what to do,
/// typed by its kind ([`Error::Registry`]); a failure of ours as it is.
/// Credentials never appear: only `who` (`as NAME`, `anonymously`).
pub(super) fn explain(registry: &str, who: &str, e: Failure) -> Error {
    let (e, wait) = match e {
        Failure::Local(e) | Failure::Garbled(e) | Failure::Slow(e) => return e,
        Failure::Later(e, wait) => (e, Some(wait)),
        Failure::Remote(e) => (e, None),
    };
    // Classified by the error's kind (status, registry error code, rustls'
    // and the I/O error's types), never by words that may appear in a name.
    let kind = kind_of(&e, wait);
    let text = without_queries(&chain(&e));
    let message = match (&kind, wait) {
        (_, Some(wait)) if wait > MAX_RETRY_AFTER => format!(
            "{registry} asks to be asked again in {} s (Retry-After), longer than nixoci waits ({} s): try again later ({text})",
            wait.as_secs(),
            MAX_RETRY_AFTER.as_secs(),
        ),
        (RegistryErrorKind::Authentication, _) => format!(
            "{registry} refused the credentials ({who}): check them (--creds, --password-stdin, NIXOCI_CREDS, REGISTRY_AUTH_FILE or ~/.docker/config.json): {text}"
        ),
        (RegistryErrorKind::NotFound, _) => format!("{registry}: not found: {text}"),
        (RegistryErrorKind::RateLimited { .. }, _) => format!(
            "{registry} refuses more requests for now (rate limited), after the retries: try again later, or with credentials: {text}"
        ),
        (RegistryErrorKind::Tls(TlsFailure::UntrustedIssuer), _) => format!(
            "the TLS certificate of {registry} is not trusted: pass --ca-file with the CA that signed it (caFile in Nix; without it, the bundle NIX_SSL_CERT_FILE names is trusted): {text}"
        ),
        (RegistryErrorKind::Tls(TlsFailure::NameMismatch), _) => format!(
            "the TLS certificate of {registry} is not valid for that name: use the name or address it was issued for: {text}"
        ),
        (RegistryErrorKind::Tls(TlsFailure::Expired), _) => format!(
            "the TLS certificate of {registry} has expired or is not valid yet: check the registry's certificate and this machine's clock: {text}"
        ),
        (RegistryErrorKind::Tls(_), _) => format!("TLS with {registry} failed: {text}"),
        (RegistryErrorKind::Transport(_), _) if matches!(&e, RemoteError::Http(r) if r.is_connect()) => {
            format!("cannot reach {registry}: {text}")
        }
        (RegistryErrorKind::Transport(TransportFailure::Timeout), _) => {
            format!("{registry} sent nothing for too long (--timeout): {text}")
        }
        _ => format!("registry {registry}: {text}"),
    };
    Error::Registry {
        registry: registry.to_owned(),
        kind,
        message,
    }
}

/// `text` with the query of every URL in it cut to `?…`: an upload
/// location's query is the registry's opaque state (hundreds of
/// characters that say nothing to a reader, and are not for logs).
pub(super) fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, url) = rest.split_at(at);
        out.push_str(before);
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | ',' | '"' | '\''))
            .unwrap_or(url.len());
        match url[..end].find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?…");
            }
            None => out.push_str(&url[..end]),
        }
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            reqwest::header::RETRY_AFTER,
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a date past: at once"
        );
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn url_queries_are_cut() {
        assert_eq!(
            without_queries("error sending request for url (http://h:5000/v2/a/blobs/uploads/u?_state=abc%3D&digest=sha256%3A12): reset"),
            "error sending request for url (http://h:5000/v2/a/blobs/uploads/u?…): reset"
        );
        assert_eq!(
            without_queries("Server error: url https://r/token?scope=x, code: 500"),
            "Server error: url https://r/token?…, code: 500"
        );
        assert_eq!(without_queries("no url here"), "no url here");
    }

    #[test]
    fn limits_in_words() {
        assert_eq!(limit_text(16 << 20), "16 MiB");
        assert_eq!(limit_text(64 << 10), "64 KiB");
        assert_eq!(limit_text(100), "100 bytes");
    }
}
