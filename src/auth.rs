//! Registry credentials, found where Docker, podman and skopeo keep them:
//! the command line, the containers `auth.json` (`$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`), and Docker's `config.json`
//! (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`) with its `auths`,
//! `credHelpers` and `credsStore` (`docker-credential-*` helpers).
//!
//! Secrets are held in [`Secret`], whose `Debug` and `Display` print `***`:
//! they never reach output, logs or error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A password or token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic { username: String, password: Secret },
}

impl Credentials {
    /// Parse `user:pass` (as `--creds` takes it).
    pub fn from_user_pass(s: &str) -> Result<Credentials> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials::Basic {
                username: u.to_owned(),
                password: Secret::new(p),
            }),
            _ => Err(Error::Invalid(
                "--creds takes USER:PASSWORD (the user name may not be empty)".into(),
            )),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// The files searched, in order: containers auth.json first (as podman and
/// skopeo do), then Docker's config.json.
pub fn config_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        files.push(f);
    } else if let Some(d) = env("XDG_RUNTIME_DIR") {
        files.push(d.join("containers/auth.json"));
    }
    if let Some(d) = env("DOCKER_CONFIG") {
        files.push(d.join("config.json"));
    } else if let Some(h) = env("HOME") {
        files.push(h.join(".docker/config.json"));
    }
    files
}

/// The keys a registry may be stored under.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if registry == crate::reference::DOCKER_HUB {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
        keys.push("registry-1.docker.io".into());
    }
    keys
}

/// Credentials for `registry` from the configuration files (anonymous if
/// none names it).
pub fn lookup(registry: &str) -> Result<Credentials> {
    lookup_in(registry, &config_files())
}

/// [`lookup`] in the given files (missing files are skipped).
pub fn lookup_in(registry: &str, files: &[PathBuf]) -> Result<Credentials> {
    let keys = keys_for(registry);
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(file, e)),
        };
        let config: ConfigFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{}: not a valid credentials file: {e}",
                file.display()
            ))
        })?;
        // Helpers know Docker Hub by its historical index address.
        let server = if registry == crate::reference::DOCKER_HUB {
            "https://index.docker.io/v1/"
        } else {
            registry
        };
        if let Some(helper) = keys.iter().find_map(|k| config.cred_helpers.get(k)) {
            return helper_get(helper, server, file);
        }
        if let Some(entry) = keys.iter().find_map(|k| config.auths.get(k)) {
            if let Some(c) = entry_credentials(entry, file)? {
                return Ok(c);
            }
        }
        if let Some(store) = &config.creds_store {
            match helper_get(store, server, file)? {
                Credentials::Anonymous => {}
                found => return Ok(found),
            }
        }
    }
    Ok(Credentials::Anonymous)
}

fn entry_credentials(entry: &AuthEntry, file: &Path) -> Result<Option<Credentials>> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: an \"auth\" entry is not base64 of USER:PASSWORD",
                    file.display()
                ))
            })?;
        let (u, p) = decoded.split_once(':').ok_or_else(|| {
            Error::Invalid(format!(
                "{}: an \"auth\" entry is not base64 of USER:PASSWORD",
                file.display()
            ))
        })?;
        return Ok(Some(Credentials::Basic {
            username: u.to_owned(),
            password: Secret::new(p),
        }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        }));
    }
    if let Some(t) = &entry.identity_token {
        // Docker's convention: an identity token is sent as the password
        // of the user "<token>".
        return Ok(Some(Credentials::Basic {
            username: "<token>".into(),
            password: Secret::new(t.clone()),
        }));
    }
    Ok(None)
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// `docker-credential-NAME get`, given the registry on standard input.
fn helper_get(name: &str, registry: &str, file: &Path) -> Result<Credentials> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Invalid(format!(
                "{}: credential helper {program} cannot be run ({e}); install it or remove it from the file",
                file.display()
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Invalid(format!("credential helper {program}: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout);
        // "credentials not found" is an answer, not a failure.
        if msg.to_lowercase().contains("not found") || out.stdout.is_empty() {
            return Ok(Credentials::Anonymous);
        }
        return Err(Error::Invalid(format!(
            "credential helper {program} failed for {registry} ({})",
            out.status
        )));
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout).map_err(|_| {
        Error::Invalid(format!(
            "credential helper {program} gave an answer that is not its JSON"
        ))
    })?;
    Ok(Credentials::Basic {
        username: reply.username,
        password: Secret::new(reply.secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credentials::from_user_pass("bob:hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("x").to_string(), "***");
    }

    #[test]
    fn auth_entries_and_key_forms() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        // "dXNlcjpwYXNz" is base64 of "user:pass".
        std::fs::write(
            &f,
            r#"{"auths":{"https://reg.example:5000":{"auth":"dXNlcjpwYXNz"},"other.example":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let files = vec![dir.path().join("missing.json"), f];
        assert_eq!(
            lookup_in("reg.example:5000", &files).unwrap(),
            Credentials::Basic {
                username: "user".into(),
                password: Secret::new("pass")
            }
        );
        assert_eq!(
            lookup_in("other.example", &files).unwrap(),
            Credentials::Basic {
                username: "u".into(),
                password: Secret::new("p")
            }
        );
        assert_eq!(
            lookup_in("nowhere.example", &files).unwrap(),
            Credentials::Anonymous
        );
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(
            &f,
            r#"{"credHelpers":{"reg.example":"nixoci-test-nonexistent"}}"#,
        )
        .unwrap();
        let e = lookup_in("reg.example", &[f]).unwrap_err().to_string();
        assert!(
            e.contains("docker-credential-nixoci-test-nonexistent"),
            "{e}"
        );
    }
}
