//! Image references: `[registry[:port]/]repository[:tag][@digest]`, with the
//! grammar of the distribution spec and Docker's defaults (`docker.io`,
//! `library/` for one-component names, `latest` when neither tag nor digest
//! is given). Errors name the part that is wrong.

use std::fmt;

use crate::error::{Error, Result};
use crate::oci::digest::Sha256Digest;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`, `docker.io` by default.
    pub registry: String,
    /// `namespace/name`, lowercase path components.
    pub repository: String,
    /// The tag (`:latest`), if written.
    pub tag: Option<String>,
    /// The digest (`@sha256:...`), if written.
    pub digest: Option<Sha256Digest>,
}

/// The registry of references that name none.
pub(crate) const DOCKER_HUB: &str = "docker.io";

impl Reference {
    /// Parse a reference; see the module documentation for the forms.
    pub fn parse(text: &str) -> Result<Reference> {
        let mut r = Self::parse_as_written(text)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".to_owned());
        }
        Ok(r)
    }

    /// Parse a reference without Docker's default tag: `tag` is `None`
    /// unless the text gives one (a push without a tag sets the layout's
    /// own tags).
    pub fn parse_as_written(text: &str) -> Result<Reference> {
        let bad = |part: &str, why: String| {
            Error::Invalid(format!("invalid image reference {text:?}: {part} {why}"))
        };
        if text.is_empty() {
            return Err(bad("it", "is empty".into()));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                let digest = Sha256Digest::parse(d).ok_or_else(|| {
                    bad(
                        &format!("digest {d:?}"),
                        "is not sha256:<64 lowercase hex digits>".into(),
                    )
                })?;
                (r, Some(digest))
            }
            None => (text, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                crate::oci::reference::validate_tag(tag).map_err(|_| {
                    bad(
                        &format!("tag {tag:?}"),
                        "is not 1-128 characters of [A-Za-z0-9_.-] starting with a letter, digit or _".into(),
                    )
                })?;
                (&rest[..last_slash + i], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        validate_registry(&registry).map_err(|why| bad(&format!("registry {registry:?}"), why))?;
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository)
            .map_err(|why| bad(&format!("repository {repository:?}"), why))?;
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository at a digest.
    pub fn with_digest(&self, digest: &Sha256Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The same registry, another repository.
    pub fn in_repository(&self, repository: &str) -> Reference {
        Reference {
            repository: repository.to_owned(),
            ..self.clone()
        }
    }

    /// The host without port, for "is this local" checks.
    pub fn host(&self) -> &str {
        match self.registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.registry,
        }
    }

    /// Whether the registry is on this machine (plain HTTP is allowed there).
    pub fn is_local(&self) -> bool {
        matches!(self.host(), "localhost" | "127.0.0.1" | "[::1]")
            || self.host().starts_with("127.")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn validate_registry(registry: &str) -> std::result::Result<(), String> {
    let (host, port) = if registry.starts_with('[') {
        // [IPv6] or [IPv6]:port
        match registry.split_once(']') {
            Some((h, "")) => (&registry[..h.len() + 1], None),
            Some((h, rest)) => match rest.strip_prefix(':') {
                Some(p) => (&registry[..h.len() + 1], Some(p)),
                None => return Err("has text after its [IPv6 address] that is not :port".into()),
            },
            None => return Err("has an unclosed [".into()),
        }
    } else {
        match registry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty()
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n > 65535)
        {
            return Err(format!("has an invalid port {p:?}"));
        }
    }
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if host_ok {
        Ok(())
    } else {
        Err("is not a host name (letters, digits, '-' and '.', then an optional :port)".into())
    }
}

/// Path components: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn validate_repository(repository: &str) -> std::result::Result<(), String> {
    if repository.len() > 255 {
        return Err("is longer than 255 characters".into());
    }
    for comp in repository.split('/') {
        if comp.is_empty() {
            return Err("has an empty path component".into());
        }
        if comp.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("component {comp:?} must be lowercase"));
        }
        let b = comp.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return Err(format!(
                "component {comp:?} must start and end with a letter or digit"
            ));
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator: '.', '_', '__' or a run of '-'.
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &comp[start..i];
            if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
                return Err(format!(
                    "component {comp:?} has an invalid separator {sep:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Tags follow the distribution spec's grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid tag {tag:?}: a tag is 1-128 characters of [A-Za-z0-9_.-] and does not start with '.' or '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_defaults() {
        let r = p("nginx");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/nginx", Some("latest"))
        );
        assert_eq!(p("user/app:1.0").repository, "user/app");
        assert_eq!(p("docker.io/nginx").repository, "library/nginx");
    }

    #[test]
    fn registries_ports_tags_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("127.0.0.1:5000/team/app:v2@{d}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.digest.as_ref().map(|x| x.to_string()), Some(d.clone()));
        assert!(r.is_local());
        let r = p(&format!("localhost/app@{d}"));
        assert_eq!((r.registry.as_str(), r.tag), ("localhost", None));
        assert_eq!(
            p("registry.example.com:443/a/b/c").to_string(),
            "registry.example.com:443/a/b/c:latest"
        );
        assert!(!p("registry.example.com/x").is_local());
        assert_eq!(p("[::1]/repo").registry, "[::1]");
        assert_eq!(p("[::1]:5000/repo").registry, "[::1]:5000");
        assert!(p("[::1]:5000/repo").is_local());
    }

    #[test]
    fn errors_name_the_bad_part() {
        for (text, part) in [
            ("", "it is empty"),
            ("Nginx", "component \"Nginx\" must be lowercase"),
            ("localhost:99999/x", "invalid port"),
            ("localhost:5000/x:bad tag", "tag \"bad tag\""),
            ("x@sha256:abc", "digest \"sha256:abc\""),
            ("reg.io//x", "empty path component"),
            ("reg.io/a--_b", "invalid separator"),
            ("reg.io/-a", "must start and end"),
        ] {
            let e = Reference::parse(text).unwrap_err().to_string();
            assert!(e.contains(part), "{text:?}: {e}");
        }
    }
}
