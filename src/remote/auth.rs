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
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A password or token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its text.
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
    /// No credentials: the registry's anonymous access.
    Anonymous,
    /// A user name and a password (or token), sent as the registry asks.
    Basic {
        /// The user name.
        username: String,
        /// The password or token.
        password: Secret,
    },
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
    if registry == crate::oci::reference::DOCKER_HUB {
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
        let server = if registry == crate::oci::reference::DOCKER_HUB {
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

/// How long a credential helper may take, unless
/// `NIXOCI_CREDENTIAL_HELPER_TIMEOUT` (seconds) says otherwise. Long enough
/// for a helper that asks for a passphrase (`pass`, a keyring unlock).
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// The most a credential helper may print: its answer is a small JSON
/// object.
const HELPER_MAX_OUTPUT: u64 = 1 << 20;

/// The helper wait: `NIXOCI_CREDENTIAL_HELPER_TIMEOUT` (seconds, decimals
/// allowed) or [`HELPER_TIMEOUT`].
fn helper_timeout() -> Result<Duration> {
    match std::env::var("NIXOCI_CREDENTIAL_HELPER_TIMEOUT") {
        Err(_) => Ok(HELPER_TIMEOUT),
        Ok(v) => super::errors::parse_seconds(v.trim()).ok_or_else(|| {
            Error::Invalid(format!(
                "NIXOCI_CREDENTIAL_HELPER_TIMEOUT={v:?}: expected a number of seconds (0 to 86400, like 30 or 0.5)"
            ))
        }),
    }
}

/// What a helper run gave: its exit status and standard output, or why it
/// was stopped.
enum HelperRun {
    Exited(std::process::ExitStatus, Vec<u8>),
    TimedOut,
    TooMuchOutput,
}

/// `docker-credential-NAME get`, given the registry on standard input.
///
/// The helper runs in a process group of its own: when it does not answer
/// within the timeout, or prints more than [`HELPER_MAX_OUTPUT`], the group
/// (the helper and anything it started) is killed. Its output is never
/// shown: it may hold the secret.
fn helper_get(name: &str, registry: &str, file: &Path) -> Result<Credentials> {
    let program = format!("docker-credential-{name}");
    let timeout = helper_timeout()?;
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Error::Invalid(format!(
                "{}: credential helper {program} cannot be run ({e}); install it or remove it from the file",
                file.display()
            ))
        })?;
    let run = run_helper(&mut child, registry, timeout);
    let (status, stdout) = match run {
        HelperRun::Exited(status, stdout) => (status, stdout),
        HelperRun::TimedOut => {
            return Err(Error::Invalid(format!(
                "credential helper {program} did not answer within {} s for {registry} and was stopped; \
                 check that it works (`echo {registry} | {program} get`), or allow it more time with \
                 NIXOCI_CREDENTIAL_HELPER_TIMEOUT=SECONDS (named in {})",
                timeout.as_secs_f64(),
                file.display()
            )))
        }
        HelperRun::TooMuchOutput => {
            return Err(Error::Invalid(format!(
                "credential helper {program} printed more than 1 MiB for {registry} and was stopped; \
                 its answer is a small JSON object: check the helper (named in {})",
                file.display()
            )))
        }
    };
    if !status.success() {
        let msg = String::from_utf8_lossy(&stdout);
        // "credentials not found" is an answer, not a failure.
        if msg.to_lowercase().contains("not found") || stdout.is_empty() {
            return Ok(Credentials::Anonymous);
        }
        return Err(Error::Invalid(format!(
            "credential helper {program} failed for {registry} ({status})"
        )));
    }
    let reply: HelperReply = serde_json::from_slice(&stdout).map_err(|_| {
        Error::Invalid(format!(
            "credential helper {program} gave an answer that is not its JSON"
        ))
    })?;
    Ok(Credentials::Basic {
        username: reply.username,
        password: Secret::new(reply.secret),
    })
}

/// Feed the helper, read at most [`HELPER_MAX_OUTPUT`] + 1 bytes of its
/// output, and wait for it until `timeout`; on timeout or too much output,
/// kill its process group and reap it.
fn run_helper(child: &mut std::process::Child, registry: &str, timeout: Duration) -> HelperRun {
    let deadline = Instant::now() + timeout;
    if let Some(mut stdin) = child.stdin.take() {
        let registry = registry.to_owned();
        // A helper that does not read must not block us: write from a thread.
        std::thread::spawn(move || {
            let _ = stdin.write_all(registry.as_bytes());
        });
    }
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        // The reader may outlive the helper when something the helper
        // started keeps the pipe open: it is never joined, only listened to.
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let r = stdout.take(HELPER_MAX_OUTPUT + 1).read_to_end(&mut buf);
            let _ = tx.send(r.map(|_| buf));
        });
    }
    let kill = |child: &mut std::process::Child| {
        // The group id is the helper's PID (process_group(0) above).
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) with a negative PID signals that process group;
            // no memory is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let stdout = match rx.recv_timeout(remaining()) {
        Ok(Ok(buf)) if buf.len() as u64 > HELPER_MAX_OUTPUT => {
            kill(child);
            return HelperRun::TooMuchOutput;
        }
        Ok(Ok(buf)) => buf,
        // A read error: judged by the exit status below, with no output.
        Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => Vec::new(),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            kill(child);
            return HelperRun::TimedOut;
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return HelperRun::Exited(status, stdout),
            Ok(None) if remaining().is_zero() => {
                kill(child);
                return HelperRun::TimedOut;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => {
                kill(child);
                return HelperRun::TimedOut;
            }
        }
    }
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
