//! What a registry says to `GET /v2/` (its ping): the status and the
//! `WWW-Authenticate` challenge, parsed; and the probe that tells whether a
//! registry on this machine speaks plain HTTP, whose answer is its ping.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::oci::reference::Reference;

/// What `GET /v2/` answered: its status and its `WWW-Authenticate`.
pub(super) struct Ping {
    pub(super) status: u16,
    pub(super) challenge: Option<String>,
}

/// The parameters of a `WWW-Authenticate` challenge: its scheme
/// (lowercase) and `key="value"` pairs (values may hold commas).
pub(super) fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
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

/// Whether the registry of `r` (on this machine) speaks plain HTTP: it does
/// when `http://HOST/v2/` answers as a registry does (200 or 401 with the
/// `Docker-Distribution-API-Version` header, or a JSON body). A TLS server
/// answers plain HTTP with a 400, so HTTPS is used for it. The answer is
/// the registry's ping: its status and challenge.
pub(super) async fn probe_plain_http(r: &Reference) -> Option<Ping> {
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
