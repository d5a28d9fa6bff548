//! A fault-injecting HTTP proxy in front of a real registry
//! (`common::registry`), for tests/faults.rs: tokio and hyper on
//! 127.0.0.1, forwarding every request to the registry and breaking the
//! ones the current [`Fault`] names, as many times as it is told.
//!
//! It can also stand in front as a token service ([`TokenAuth`]): it asks
//! for a Bearer token, hands one out at `/token` for the right password,
//! and forwards requests with that token (without it) to the registry,
//! which needs none. So the credentials and the token cross every fault.

use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// What the proxy breaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Nothing: every request is forwarded as it is.
    None,
    /// A blob upload (PATCH or PUT with a body): reset the connection (RST)
    /// once half of the body has arrived.
    ResetUpload,
    /// A blob download: send the headers and half of the body, then reset
    /// the connection.
    ResetDownload,
    /// Any PUT (an upload's commit, a manifest): answer 500.
    ServerErrorOnPut,
    /// Any request to a repository: answer 429 with `Retry-After`.
    TooManyRequests { retry_after: u64 },
    /// A blob download: send the headers and half of the body, then
    /// nothing, ever.
    StallDownload,
    /// A blob download: the headers, then the blob one byte every 100 ms
    /// (10 bytes a second, however fast the machine), never stalling for
    /// as long as a timeout.
    DripDownload,
    /// A blob download: half of the blob, with a Content-Length that says
    /// so (a clean, short response).
    TruncateBlob,
    /// A blob download: the blob with its middle byte changed.
    CorruptBlob,
    /// A blob the manifest names is gone: GET and HEAD of blobs answer
    /// 404 BLOB_UNKNOWN.
    MissingBlob,
    /// Any request to a repository: answer 503 Service Unavailable, with
    /// no `Retry-After` (a registry that is down behind its load
    /// balancer).
    Unavailable,
    /// Upload locations (`Location` of a POST, PATCH or PUT) are given as
    /// a path, not a full URL, as the spec allows.
    RelativeLocation,
    /// The token endpoint answers 500.
    TokenFails,
    /// A PUT of a referrers fallback tag (`/manifests/sha256-…`): answered
    /// 201 and not forwarded, as if another client had replaced the index
    /// at once.
    LoseFallbackWrite,
    /// A GET of the referrers API (`/v2/NAME/referrers/DIGEST`): answered
    /// with this status, `Content-Type` and body, and not forwarded
    /// (registry 2.8 would answer 404), as a server that answers every
    /// path with a page, or with something other than an image index,
    /// or refuses the route its own way, does.
    ReferrersAnswer {
        status: u16,
        content_type: &'static str,
        body: &'static str,
    },
    /// A manifest PUT whose body has a `subject`: the answer carries
    /// `OCI-Subject` with its digest, as a registry that keeps referrers
    /// says so (distribution spec 1.1). Not a fault: what such a registry
    /// in front of go-containerregistry's (which sends none) would say.
    SubjectHeader,
    /// A GET of the referrers API: the registry's answer (its entries
    /// sorted by digest, so that pages cut from two answers agree), cut
    /// into pages of `per_page` entries, the page asked for given by the
    /// query's `page` (none: the first), each but the last with a `Link`
    /// to the next (`rel="next"`) in the form `link` says. Not a fault: a
    /// registry that pages its answer, as the distribution spec allows.
    PageReferrers { per_page: usize, link: PageLink },
}

/// How a page of [`Fault::PageReferrers`] links to the next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PageLink {
    /// Relative to the page's URL, by turns a path (`</v2/…?page=N>`)
    /// and a query alone (`<?page=N>`).
    Relative,
    /// A full URL that names the proxy: `<http://127.0.0.1:PORT/v2/…>`.
    Absolute,
    /// As `Relative`, but the last page links back to the first (the
    /// URL nixoci asked first, without a query).
    Loop,
    /// A full URL that names another host, `localhost` (the same server,
    /// under another name, as a link to another server looks).
    OtherHost,
    /// As `Relative`, and past the last page empty pages, each linking
    /// to the next, without end.
    Endless,
}

/// The proxy as a token service: `user`/`password` get `token`.
#[derive(Clone)]
pub struct TokenAuth {
    pub user: String,
    pub password: String,
    pub token: String,
}

struct State {
    port: u16,
    upstream: String,
    upstream_host: String,
    auth: Option<TokenAuth>,
    fault: Mutex<Fault>,
    /// How many more requests the fault breaks.
    remaining: AtomicUsize,
    /// How many it broke since [`FaultProxy::inject`].
    fired: AtomicUsize,
    /// Every request seen: when, method, path, and whether it was broken.
    log: Mutex<Vec<(Instant, String, String, bool)>>,
    client: reqwest::Client,
}

/// The proxy; stopped when dropped.
pub struct FaultProxy {
    pub port: u16,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// A proxy to the registry on `127.0.0.1:upstream_port`, forwarding
    /// everything until [`FaultProxy::inject`].
    pub fn start(upstream_port: u16, auth: Option<TokenAuth>) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            port,
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            upstream_host: format!("127.0.0.1:{upstream_port}"),
            auth,
            fault: Mutex::new(Fault::None),
            remaining: AtomicUsize::new(0),
            fired: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        });
        let s = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let fd = stream.as_raw_fd();
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { handle(s, fd, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            port,
            state,
            runtime: Some(runtime),
        }
    }

    /// Break the next `times` requests that `fault` applies to
    /// (`usize::MAX`: all of them); resets [`FaultProxy::fired`].
    pub fn inject(&self, fault: Fault, times: usize) {
        *self.state.fault.lock().unwrap() = fault;
        self.state.remaining.store(times, Ordering::SeqCst);
        self.state.fired.store(0, Ordering::SeqCst);
    }

    /// How many requests the fault broke since it was injected.
    pub fn fired(&self) -> usize {
        self.state.fired.load(Ordering::SeqCst)
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// The requests seen, oldest first: (when, method, path, broken).
    pub fn requests(&self) -> Vec<(Instant, String, String, bool)> {
        self.state.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Whether `fault` applies to request number `n` of the log, and if so
/// whether it still breaks one (counted, and marked in the log).
fn fires(s: &State, n: usize, fault: Fault, applies: bool) -> bool {
    if !applies || *s.fault.lock().unwrap() != fault {
        return false;
    }
    let taken = s
        .remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if taken {
        s.fired.fetch_add(1, Ordering::SeqCst);
        s.log.lock().unwrap()[n].3 = true;
    }
    taken
}

/// Make the next close of the connection a reset (RST) rather than a FIN.
fn reset_on_close(fd: i32) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: fd is the connection being served (alive while its request
    // is handled), and linger a valid struct of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn full(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(Full::new(body.into()).map_err(|e| match e {}).boxed())
        .unwrap()
}

fn registry_error(status: u16, code: &str, message: &str) -> Response<Body> {
    full(
        status,
        &[("Content-Type", "application/json".into())],
        format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#),
    )
}

/// A body of `head`, then either an error (the connection is reset) or
/// nothing more, ever (a stall).
fn broken_body(fd: i32, head: Bytes, stall: bool) -> Body {
    type Frames = Pin<
        Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Sync>,
    >;
    let first = futures_util::stream::once(async move { Ok(Frame::data(head)) });
    let rest: Frames = if stall {
        Box::pin(futures_util::stream::pending())
    } else {
        Box::pin(futures_util::stream::once(async move {
            // Let the first half reach the client before the reset.
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset_on_close(fd);
            Err(std::io::Error::other("fault: connection reset"))
        }))
    };
    let frames: Frames = Box::pin(futures_util::StreamExt::chain(first, rest));
    BodyExt::boxed(StreamBody::new(frames))
}

/// A body of `bytes`, one byte every 100 ms.
fn drip_body(bytes: Bytes) -> Body {
    let frames = futures_util::stream::unfold(0usize, move |i| {
        let bytes = bytes.clone();
        async move {
            if i >= bytes.len() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(Frame::data(bytes.slice(i..i + 1))), i + 1))
        }
    });
    BodyExt::boxed(StreamBody::new(frames))
}

/// Page `page` (from 1) of `answer`, an image index, cut into pages of
/// `per_page` entries sorted by digest; and the number of the page its
/// `Link` names, if any ([`PageLink`]).
fn page_of(answer: &[u8], page: usize, per_page: usize, link: PageLink) -> (Bytes, Option<usize>) {
    let mut index: serde_json::Value = serde_json::from_slice(answer).unwrap();
    let mut entries = index["manifests"].as_array().cloned().unwrap_or_default();
    entries.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    let pages = entries.len().div_ceil(per_page).max(1);
    let from = (page.saturating_sub(1) * per_page).min(entries.len());
    let to = (page * per_page).min(entries.len());
    index["manifests"] = entries[from..to].to_vec().into();
    let next = match link {
        _ if page < pages => Some(page + 1),
        PageLink::Loop => Some(1),
        PageLink::Endless => Some(page + 1),
        _ => None,
    };
    (serde_json::to_vec(&index).unwrap().into(), next)
}

async fn handle(s: Arc<State>, fd: i32, req: Request<Incoming>) -> Result<Response<Body>, String> {
    let method = req.method().as_str().to_owned();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let n = {
        let mut log = s.log.lock().unwrap();
        log.push((Instant::now(), method.clone(), path.clone(), false));
        log.len() - 1
    };
    let bare = path.split('?').next().unwrap_or_default().to_owned();
    let blob_get = (method == "GET" || method == "HEAD")
        && bare.contains("/blobs/sha256:")
        && !bare.contains("/uploads/");

    if let Some(auth) = &s.auth {
        if bare == "/token" {
            if fires(&s, n, Fault::TokenFails, true) {
                return Ok(full(500, &[], "fault: token service failed"));
            }
            let expected = format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{}:{}", auth.user, auth.password)
                )
            );
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if given != Some(expected.as_str()) {
                return Ok(full(401, &[], "wrong credentials"));
            }
            return Ok(full(
                200,
                &[("Content-Type", "application/json".into())],
                format!(r#"{{"token":"{}"}}"#, auth.token),
            ));
        }
        let bearer = format!("Bearer {}", auth.token);
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if given != Some(bearer.as_str()) {
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{}/token",service="faults""#,
                s.port
            );
            return Ok(full(
                401,
                &[
                    ("WWW-Authenticate", challenge),
                    ("Content-Type", "application/json".into()),
                ],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}"#,
            ));
        }
    }

    let repository_request = bare.starts_with("/v2/") && bare != "/v2/";
    let current = *s.fault.lock().unwrap();
    if let Fault::TooManyRequests { retry_after } = current {
        if fires(
            &s,
            n,
            Fault::TooManyRequests { retry_after },
            repository_request,
        ) {
            return Ok(full(
                429,
                &[
                    ("Retry-After", retry_after.to_string()),
                    ("Content-Type", "application/json".into()),
                ],
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"fault: slow down"}]}"#,
            ));
        }
    }
    if fires(&s, n, Fault::Unavailable, repository_request) {
        return Ok(full(503, &[], "fault: service unavailable"));
    }
    let fallback_put = method == "PUT" && bare.contains("/manifests/sha256-");
    if fires(&s, n, Fault::LoseFallbackWrite, fallback_put) {
        return Ok(full(201, &[], ""));
    }
    if let Fault::ReferrersAnswer {
        status,
        content_type,
        body,
    } = current
    {
        let referrers_get = method == "GET" && bare.contains("/referrers/");
        if fires(&s, n, current, referrers_get) {
            return Ok(full(status, &[("Content-Type", content_type.into())], body));
        }
    }
    // The page of the referrers to send, the registry's whole answer
    // being asked for.
    let mut forwarded = path.clone();
    let mut paged = None;
    if let Fault::PageReferrers { per_page, link } = current {
        let referrers_get = method == "GET" && bare.contains("/referrers/");
        if fires(&s, n, current, referrers_get) {
            let page: usize = path
                .split_once('?')
                .and_then(|(_, q)| q.split('&').find_map(|p| p.strip_prefix("page=")))
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            paged = Some((page, per_page, link));
            forwarded = bare.clone();
        }
    }
    if fires(&s, n, Fault::ServerErrorOnPut, method == "PUT") {
        return Ok(full(500, &[], "fault: internal server error on PUT"));
    }
    if fires(&s, n, Fault::MissingBlob, blob_get) {
        return Ok(registry_error(
            404,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        ));
    }

    // The request, forwarded.
    let upload = (method == "PATCH" || method == "PUT") && bare.contains("/blobs/uploads/");
    let (parts, mut incoming) = req.into_parts();
    let declared: Option<usize> = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut body = Vec::new();
    let reset = declared.is_some_and(|n| n > 0) && fires(&s, n, Fault::ResetUpload, upload);
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            body.extend_from_slice(&data);
        }
        if reset && body.len() * 2 >= declared.unwrap_or(0) {
            reset_on_close(fd);
            return Err("fault: connection reset during the upload".into());
        }
    }
    let mut up = s
        .client
        .request(parts.method.clone(), format!("{}{forwarded}", s.upstream));
    for (k, v) in &parts.headers {
        let skip = matches!(
            k.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) || (k.as_str() == "authorization" && s.auth.is_some());
        if !skip {
            up = up.header(k, v);
        }
    }
    let subject = (method == "PUT" && bare.contains("/manifests/"))
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| v["subject"]["digest"].as_str().map(str::to_owned));
    let res = up.body(body).send().await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let mut bytes = res.bytes().await.map_err(|e| e.to_string())?;
    let mut next_link = None;
    if let (Some((page, per_page, link)), 200) = (paged, status) {
        let (body, next) = page_of(&bytes, page, per_page, link);
        bytes = body;
        next_link = next.map(|next| {
            let target = match link {
                PageLink::Absolute => format!("http://127.0.0.1:{}{bare}?page={next}", s.port),
                PageLink::OtherHost => format!("http://localhost:{}{bare}?page={next}", s.port),
                _ if next == 1 => bare.clone(),
                _ if next % 2 == 0 => format!("{bare}?page={next}"),
                _ => format!("?page={next}"),
            };
            format!("<{target}>; rel=\"next\"")
        });
    }

    let mut out = Response::builder().status(status);
    for (k, v) in &headers {
        if matches!(k.as_str(), "connection" | "transfer-encoding") {
            continue;
        }
        if k.as_str() == "location" {
            // The registry names itself in upload locations: name the proxy,
            // or nothing (a path).
            let l = v.to_str().unwrap_or_default();
            let l = if fires(&s, n, Fault::RelativeLocation, true) {
                l.replace(&format!("http://{}", s.upstream_host), "")
            } else {
                l.replace(&s.upstream_host, &format!("127.0.0.1:{}", s.port))
            };
            out = out.header(k, l);
            continue;
        }
        if k.as_str() == "content-length" && method == "GET" {
            continue; // set below, from what is sent
        }
        out = out.header(k, v);
    }
    if let Some(link) = next_link {
        out = out.header("Link", link);
    }
    if let Some(digest) = subject {
        if status == 201 && fires(&s, n, Fault::SubjectHeader, true) {
            out = out.header("OCI-Subject", digest);
        }
    }
    let blob_body = method == "GET" && blob_get && status == 200 && bytes.len() >= 2;
    let half = bytes.slice(..bytes.len() / 2);
    let body = if blob_body && fires(&s, n, Fault::ResetDownload, true) {
        out = out.header("content-length", bytes.len());
        broken_body(fd, half, false)
    } else if blob_body && fires(&s, n, Fault::StallDownload, true) {
        out = out.header("content-length", bytes.len());
        broken_body(fd, half, true)
    } else if blob_body && fires(&s, n, Fault::DripDownload, true) {
        out = out.header("content-length", bytes.len());
        drip_body(bytes)
    } else if blob_body && fires(&s, n, Fault::TruncateBlob, true) {
        out = out.header("content-length", half.len());
        Full::new(half).map_err(|e: Infallible| match e {}).boxed()
    } else if blob_body && fires(&s, n, Fault::CorruptBlob, true) {
        let mut changed = bytes.to_vec();
        let mid = changed.len() / 2;
        changed[mid] ^= 0xff;
        out = out.header("content-length", changed.len());
        Full::new(Bytes::from(changed))
            .map_err(|e: Infallible| match e {})
            .boxed()
    } else {
        if method == "GET" {
            out = out.header("content-length", bytes.len());
        }
        Full::new(bytes).map_err(|e: Infallible| match e {}).boxed()
    };
    Ok(out.body(body).unwrap())
}
