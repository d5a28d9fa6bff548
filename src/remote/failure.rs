//! What went wrong in one request to a registry, as the request saw it:
//! an answer with a status it did not expect ([`StatusError`], with the
//! registry's error codes from the distribution spec's error body), or no
//! usable answer at all (the transport: connecting, TLS, a timeout, a
//! reset). Nothing here retries or explains: [`super::errors`] does.

use std::fmt;

/// Why a request to a registry failed, on the registry's or the network's
/// side.
#[derive(Debug)]
pub(super) enum RemoteError {
    /// An answer with a status the request did not expect.
    Status(StatusError),
    /// No usable answer: connecting, TLS, a timeout, a reset, a body cut
    /// off.
    Http(reqwest::Error),
}

/// An unexpected answer: its status, the URL asked, the registry's error
/// codes and messages (distribution spec, "Error Codes"), else the start
/// of its body.
#[derive(Debug)]
pub(super) struct StatusError {
    pub(super) status: u16,
    pub(super) url: String,
    /// `(code, message)` of each error the body lists (`BLOB_UNKNOWN`,
    /// `blob unknown to registry`).
    pub(super) errors: Vec<(String, String)>,
    /// The start of the body, on one line, when it lists no errors.
    pub(super) body: String,
}

impl StatusError {
    /// Whether the registry gave one of `codes` as an error code.
    pub(super) fn has_code(&self, codes: &[&str]) -> bool {
        self.errors.iter().any(|(c, _)| codes.contains(&c.as_str()))
    }
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(f, "{} answered {} {reason}", self.url, self.status)?;
        if self.errors.is_empty() {
            if !self.body.is_empty() {
                write!(f, ": {}", self.body)?;
            }
        } else {
            let listed: Vec<String> = self
                .errors
                .iter()
                .map(|(code, message)| match message.as_str() {
                    "" => code.clone(),
                    m => format!("{code}: {m}"),
                })
                .collect();
            write!(f, ": {}", listed.join("; "))?;
        }
        Ok(())
    }
}

impl std::error::Error for StatusError {}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Status(s) => s.fmt(f),
            RemoteError::Http(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteError::Status(_) => None,
            RemoteError::Http(e) => e.source(),
        }
    }
}

/// The errors of a distribution-spec error body
/// (`{"errors":[{"code":..,"message":..}]}`); empty when it is not one.
pub(super) fn error_codes(body: &[u8]) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: Option<String>,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| {
            e.errors
                .into_iter()
                .map(|x| (x.code, x.message.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_and_their_text() {
        let errors = error_codes(
            br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#,
        );
        assert_eq!(
            errors,
            [("BLOB_UNKNOWN".into(), "blob unknown to registry".into())]
        );
        assert!(error_codes(b"<html>oops</html>").is_empty());
        let e = StatusError {
            status: 404,
            url: "http://r/v2/a/blobs/sha256:ab".into(),
            errors,
            body: String::new(),
        };
        assert!(e.has_code(&["MANIFEST_UNKNOWN", "BLOB_UNKNOWN"]));
        assert_eq!(
            e.to_string(),
            "http://r/v2/a/blobs/sha256:ab answered 404 Not Found: BLOB_UNKNOWN: blob unknown to registry"
        );
        let e = StatusError {
            status: 500,
            url: "http://r/token".into(),
            errors: Vec::new(),
            body: "internal error".into(),
        };
        assert_eq!(
            e.to_string(),
            "http://r/token answered 500 Internal Server Error: internal error"
        );
    }
}
