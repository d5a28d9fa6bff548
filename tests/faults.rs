//! Registry faults: a fault-injecting proxy (tests/faults/proxy.rs, tokio
//! and hyper on 127.0.0.1) between nixoci and a real registry (distribution
//! 2.8, `common::registry`) breaks uploads, downloads, PUTs, the token
//! endpoint, and says "later" (429). For every fault, once and always:
//!
//! - push completes after retries, or fails with a message naming the
//!   fault, and no tag of the registry names an incomplete image;
//! - pull completes with the right bytes, or fails naming the fault and
//!   leaves no layout (and no temporary) behind.
//!
//! And with a password and a token crossing every fault at
//! `RUST_LOG=trace`, neither appears in any output or file nixoci writes.
//! Through the library: a retried transfer counts its bytes once in the
//! progress it reports, and the sync functions, called from async code,
//! give an unreachable registry's error rather than panicking.
//! And a pull writes each blob on a thread of its own (seen with strace).
//! And a registry that pages its referrers answer (tests/faults/pages.rs):
//! every page is read, and a loop, a link to another host or no end is
//! refused.
//! The fault table of docs/reliability.md is what these tests check.

mod common;
#[path = "faults/pages.rs"]
mod pages;
#[path = "faults/proxy.rs"]
mod proxy;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::registry::{Registry, Setup};
use common::*;
use proxy::{Fault, FaultProxy, TokenAuth};

const ALWAYS: usize = usize::MAX;

/// A registry, the proxy in front of it, and an image to move.
struct Bench {
    reg: Registry,
    proxy: FaultProxy,
    t: tempfile::TempDir,
    layout: PathBuf,
}

impl Bench {
    fn new(auth: Option<TokenAuth>) -> Bench {
        let reg = Registry::start(Setup::default());
        let proxy = FaultProxy::start(reg.port, auth);
        let t = tempfile::tempdir().unwrap();
        // Two layers of 300 kB (uncompressed noise) and a config.
        let layout = image(t.path(), "app", 11, 12, 300_000);
        Bench {
            reg,
            proxy,
            t,
            layout,
        }
    }

    fn env(&self) -> &Path {
        self.t.path()
    }

    /// nixoci with this bench's private environment, few retries (quick
    /// to run out) and a short timeout (for the stall).
    fn tool(&self, args: &[&str]) -> Command {
        let mut c = nixoci_in(self.env());
        c.args(args)
            .args(["--retries", "2", "--timeout", "2", "--quiet"]);
        c
    }

    fn push(&self, repo_tag: &str) -> Output {
        self.push_layout(&self.layout, repo_tag)
    }

    fn push_layout(&self, layout: &Path, repo_tag: &str) -> Output {
        self.tool(&[
            "push",
            layout.to_str().unwrap(),
            &self.proxy.reference(repo_tag),
        ])
        .output()
        .unwrap()
    }

    /// An image of blobs no other has (so that a push of it uploads every
    /// blob: none can be mounted from another repository).
    fn fresh_image(&self, name: &str, seed: u64) -> PathBuf {
        image(self.env(), name, seed, seed + 1, 300_000)
    }

    /// Pull through the proxy into a new directory under a parent of its
    /// own, so that anything left beside it shows.
    fn pull(&self, repo_tag: &str, name: &str) -> (Output, PathBuf) {
        let dir = self.env().join("pulls").join(name).join("out");
        let out = self
            .tool(&["pull", &self.proxy.reference(repo_tag)])
            .arg(&dir)
            .output()
            .unwrap();
        (out, dir)
    }

    /// Every tag of `repo` in the registry (not through the proxy) names a
    /// complete image: `nixoci pull` of each gets every blob, and `verify`
    /// passes. Returns the tags.
    fn assert_tags_complete(&self, repo: &str) -> Vec<String> {
        require("skopeo");
        let out = Command::new("skopeo")
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}", self.reg.reference(repo)))
            .output()
            .unwrap();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("unknown") || err.contains("404"),
                "skopeo list-tags {repo}: {err}"
            );
            return Vec::new();
        }
        let tags: Vec<String> = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
            ["Tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        for tag in &tags {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("check");
            run(nixoci_in(self.env())
                .args(["pull", "--quiet"])
                .arg(self.reg.reference(&format!("{repo}:{tag}")))
                .arg(&out));
            run(nixoci().arg("verify").arg(&out));
        }
        tags
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `out` failed, and its message says one of `words`.
fn assert_failed_naming(out: &Output, words: &[&str], what: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what}: succeeded, should fail");
    // Shown with --nocapture: docs/reliability.md's fault table quotes these.
    eprintln!("{what}: {}", err.trim());
    assert!(
        words.iter().any(|w| err.contains(w)),
        "{what}: the message names none of {words:?}:\n{err}"
    );
}

/// After a pull: either it succeeded and the layout is the pushed image,
/// byte for byte, or it failed and nothing at all is left in the parent.
fn assert_pull_sound(b: &Bench, out: &Output, dir: &Path, what: &str) {
    if out.status.success() {
        run(nixoci().arg("verify").arg(dir));
        assert_eq!(blobs(dir), blobs(&b.layout), "{what}: other bytes");
    } else {
        let left: Vec<_> = fs::read_dir(dir.parent().unwrap())
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{what}: left behind: {left:?}");
    }
}

#[test]
fn upload_faults_are_retried_or_named_and_no_tag_names_an_incomplete_image() {
    let b = Bench::new(None);
    // Once: retried, and the image arrives whole.
    for (fault, repo, seed) in [
        (Fault::ResetUpload, "reset-once", 100),
        (Fault::ServerErrorOnPut, "put500-once", 110),
    ] {
        let layout = b.fresh_image(repo, seed);
        b.proxy.inject(fault, 1);
        let out = b.push_layout(&layout, &format!("{repo}:v1"));
        assert!(out.status.success(), "{fault:?} once: {}", stderr(&out));
        assert_eq!(b.proxy.fired(), 1, "{fault:?} was injected");
        assert_eq!(b.assert_tags_complete(repo), ["v1"]);
    }
    // Always: the push fails, naming the fault, and sets no tag.
    for (fault, repo, seed, words) in [
        (
            Fault::ResetUpload,
            "reset-always",
            120,
            &["connection", "reset", "sending request", "error"][..],
        ),
        (Fault::ServerErrorOnPut, "put500-always", 130, &["500"][..]),
    ] {
        let layout = b.fresh_image(repo, seed);
        b.proxy.inject(fault, ALWAYS);
        let out = b.push_layout(&layout, &format!("{repo}:v1"));
        assert_failed_naming(&out, words, &format!("{fault:?} always"));
        assert!(b.proxy.fired() >= 3, "{fault:?}: tried 1 + 2 retries");
        assert_eq!(
            b.assert_tags_complete(repo),
            Vec::<String>::new(),
            "{fault:?}"
        );
    }
    // Over the failed pushes, the image is pushed whole.
    b.proxy.inject(Fault::None, 0);
    let out = b.push("put500-always:v1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.assert_tags_complete("put500-always"), ["v1"]);
}

/// Upload locations given as a path (the spec allows it; distribution
/// gives full URLs) are followed, for a blob sent in one request and for
/// one sent in chunks (PATCH after PATCH, each answered with the next
/// location), and the image arrives whole.
#[test]
fn upload_locations_given_as_paths_are_followed() {
    let b = Bench::new(None);
    // A 1.5 MB layer (chunked above 1 MiB) and a 300 kB one (one request).
    let layout = image(b.env(), "relative", 200, 201, 1_500_000);
    let small = b.fresh_image("relative-small", 210);
    for (layout, repo) in [(&layout, "relative"), (&small, "relative-small")] {
        b.proxy.inject(Fault::RelativeLocation, ALWAYS);
        let before = b.proxy.requests().len();
        let out = b
            .tool(&["push", "--chunked-above-mib", "1"])
            .arg(layout)
            .arg(b.proxy.reference(&format!("{repo}:v1")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{repo}: {}", stderr(&out));
        assert!(b.proxy.fired() >= 2, "{repo}: no location was rewritten");
        let patches = b.proxy.requests()[before..]
            .iter()
            .filter(|r| r.1 == "PATCH")
            .count();
        assert_eq!(patches > 0, repo == "relative", "{repo}: {patches} PATCHes");
        assert_eq!(b.assert_tags_complete(repo), ["v1"]);
    }
}

#[test]
fn too_many_requests_waits_as_long_as_retry_after_says() {
    let b = Bench::new(None);
    b.proxy.inject(Fault::TooManyRequests { retry_after: 2 }, 2);
    let out = nixoci_in(b.env())
        .args(["push", "--quiet", "--jobs", "1", "--retries", "3"])
        .arg(&b.layout)
        .arg(b.proxy.reference("busy:v1"))
        .env("RUST_LOG", "nixoci=warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.proxy.fired(), 2);
    assert_eq!(b.assert_tags_complete("busy"), ["v1"]);
    // The retry log says why it waited.
    assert!(
        stderr(&out).contains("Retry-After: 2 s"),
        "{}",
        stderr(&out)
    );
    // Each 429 is followed by nothing for the 2 s asked (one job: requests
    // go one at a time; the backoff alone would be 0.25 s, then 0.5 s).
    let log = b.proxy.requests();
    let mut gaps = Vec::new();
    for w in log.windows(2) {
        if w[0].3 {
            gaps.push(w[1].0 - w[0].0);
        }
    }
    assert_eq!(gaps.len(), 2, "{log:?}");
    for g in gaps {
        assert!(g >= Duration::from_millis(1900), "waited only {g:?}");
    }

    // A registry that asks for an hour: no retry, a message saying so.
    b.proxy
        .inject(Fault::TooManyRequests { retry_after: 3600 }, ALWAYS);
    let started = Instant::now();
    let out = b.push("busy:v2");
    assert_failed_naming(&out, &["Retry-After"], "Retry-After: 3600");
    assert!(stderr(&out).contains("3600 s"), "{}", stderr(&out));
    assert_eq!(b.proxy.fired(), 1, "asked once, not retried");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(b.assert_tags_complete("busy"), ["v1"]);
}

#[test]
fn download_faults_never_leave_a_wrong_blob() {
    let b = Bench::new(None);
    b.proxy.inject(Fault::None, 0);
    let out = b.push("app:v1");
    assert!(out.status.success(), "{}", stderr(&out));
    // (fault, whether a pull survives it once, what the message says when
    // it never stops)
    for (fault, once_ok, words) in [
        (Fault::ResetDownload, true, &["Connection reset"][..]),
        (
            Fault::StallDownload,
            true,
            &["sent nothing for too long (--timeout)"][..],
        ),
        (Fault::TruncateBlob, true, &["), found sha256:"][..]),
        (Fault::CorruptBlob, true, &["), found sha256:"][..]),
        (Fault::MissingBlob, false, &["blob unknown to registry"][..]),
    ] {
        for (times, name) in [(1, "once"), (ALWAYS, "always")] {
            b.proxy.inject(fault, times);
            let what = format!("{fault:?} {name}");
            let (out, dir) = b.pull("app:v1", &format!("{fault:?}-{name}"));
            assert!(b.proxy.fired() >= 1, "{what}: not injected");
            assert_pull_sound(&b, &out, &dir, &what);
            if times == ALWAYS {
                assert_failed_naming(&out, words, &what);
                let err = stderr(&out);
                assert!(err.contains("blob sha256:"), "{what}: names no blob: {err}");
            } else {
                assert_eq!(out.status.success(), once_ok, "{what}: {}", stderr(&out));
            }
        }
    }
}

/// A registry that drips a blob, a byte every 100 ms: each byte comes well
/// within `--timeout` (2 s), so only the minimum rate (1 KiB/s over each
/// `--timeout` period) ends it. Once: the pull retries and completes;
/// every time: it fails naming the blob and the rate, and leaves nothing.
/// The old code kept pulling (the blob would take 8 hours): a pull still
/// running after 5 minutes fails the test, whatever the machine's speed.
#[test]
fn a_dripping_download_is_cut_off_by_the_minimum_rate() {
    let b = Bench::new(None);
    let out = b.push("drip:v1");
    assert!(out.status.success(), "{}", stderr(&out));
    for (times, name) in [(1, "once"), (ALWAYS, "always")] {
        b.proxy.inject(Fault::DripDownload, times);
        let dir = b
            .env()
            .join("pulls")
            .join(format!("drip-{name}"))
            .join("out");
        let mut child = b
            .tool(&["pull", &b.proxy.reference("drip:v1")])
            .arg(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(300) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("drip {name}: the pull still runs after 5 minutes: no minimum rate");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let out = child.wait_with_output().unwrap();
        let what = format!("drip {name}");
        assert!(b.proxy.fired() >= 1, "{what}: not injected");
        assert_pull_sound(&b, &out, &dir, &what);
        if times == ALWAYS {
            assert_failed_naming(&out, &["less than 1 KiB/s"], &what);
            assert!(stderr(&out).contains("blob sha256:"), "{}", stderr(&out));
            assert!(b.proxy.fired() >= 3, "{what}: tried 1 + 2 retries");
        } else {
            assert!(out.status.success(), "{what}: {}", stderr(&out));
        }
    }
}

/// A registry without the referrers API whose fallback tag loses what
/// nixoci writes (as when other clients keep replacing the index): once,
/// `attach` writes it again and succeeds, listed; every time, it gives up
/// after its 10 writes, exit 1, saying why and what to do, and never
/// reports the referrer attached.
#[test]
fn a_lost_fallback_write_is_written_again_or_named() {
    let b = Bench::new(None);
    let out = b.push("refs:v1");
    assert!(out.status.success(), "{}", stderr(&out));
    for (times, name) in [(1, "once"), (ALWAYS, "always")] {
        let file = b.env().join(format!("note-{name}.txt"));
        fs::write(&file, format!("{name}\n")).unwrap();
        b.proxy.inject(Fault::LoseFallbackWrite, times);
        let out = b
            .tool(&[
                "attach",
                "--artifact-type",
                "text/plain",
                &b.proxy.reference("refs:v1"),
            ])
            .arg(&file)
            .output()
            .unwrap();
        b.proxy.inject(Fault::None, 0);
        let listed = nixoci_in(b.env())
            .args(["referrers", &b.proxy.reference("refs:v1")])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).lines().count();
        if times == 1 {
            assert!(out.status.success(), "{name}: {}", stderr(&out));
            assert_eq!(listed, 1, "{name}");
        } else {
            assert_failed_naming(
                &out,
                &["other clients replaced the fallback index each of the 10 times nixoci wrote it"],
                "fallback writes always lost",
            );
            assert!(
                stderr(&out).contains("run the command again"),
                "{}",
                stderr(&out)
            );
            assert_eq!(listed, 1, "only the first is listed");
        }
    }
}

/// A registry without the referrers API (distribution 2.8) whose
/// `GET /v2/NAME/referrers/DIGEST` answers 200 with something that is not
/// an image index (a page, an index's content type over a JSON error or
/// over a manifest, an index sent as `application/json`), or refuses it
/// otherwise than with a 404 (400, 405, 406, 501). nixoci asks that
/// API when a referrer's push is answered without `OCI-Subject`; none of
/// these makes it skip the fallback tag: `attach` lists the referrer
/// there (`fallback`), and `referrers` and `pull --referrers`, under the
/// same answer, read it from there.
#[test]
fn a_referrers_answer_that_is_no_index_means_no_api() {
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let b = Bench::new(None);
    const ERROR: &str = r#"{"errors":[{"code":"UNSUPPORTED","message":"no"}]}"#;
    let cases = [
        (200, "text/html", "<html><body>registry</body></html>"),
        (200, INDEX, ERROR),
        (
            200,
            INDEX,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
        ),
        (
            200,
            "application/json",
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        ),
        (400, "application/json", ERROR),
        (405, "application/json", ERROR),
        (406, "application/json", ERROR),
        (501, "text/plain", "not implemented"),
    ];
    for (i, (status, content_type, body)) in cases.into_iter().enumerate() {
        let what = format!("{status} {content_type} {body}");
        let repo = format!("noapi{i}");
        let out = b.push(&format!("{repo}:v1"));
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let file = b.env().join(format!("note-{i}.txt"));
        fs::write(&file, format!("note {i}\n")).unwrap();
        b.proxy.inject(
            Fault::ReferrersAnswer {
                status,
                content_type,
                body,
            },
            ALWAYS,
        );
        let image = b.proxy.reference(&format!("{repo}:v1"));
        let out = nixoci_in(b.env())
            .args(["attach", "--artifact-type", "text/plain", "--json", &image])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert!(
            b.proxy.fired() >= 1,
            "{what}: the referrers API was not asked"
        );
        let attached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(attached["listed"], "fallback", "{what}: {attached}");
        let fallback_tag = format!(
            "{repo}:sha256-{}",
            attached["subject"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        );
        let tagged = nixoci_in(b.env())
            .args(["exists", &b.reg.reference(&fallback_tag)])
            .output()
            .unwrap();
        assert!(
            tagged.status.success(),
            "{what}: no fallback tag {fallback_tag}"
        );
        let out = nixoci_in(b.env())
            .args(["referrers", "--json", &image])
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed["source"], "fallback", "{what}: {listed}");
        assert_eq!(
            listed["manifests"][0]["digest"], attached["digest"],
            "{what}: {listed}"
        );
        let pulled = b.env().join(format!("pulled-{i}"));
        let out = nixoci_in(b.env())
            .args(["pull", "--referrers", "--json", &image])
            .arg(&pulled)
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["referrers"],
            serde_json::json!([attached["digest"]]),
            "{what}: {report}"
        );
        assert_eq!(report.get("referrersApi"), None, "{what}: {report}");
        b.proxy.inject(Fault::None, 0);
    }
}

/// A registry that keeps referrers and says so, `OCI-Subject` on the PUT
/// of a referrer (go-containerregistry's, which serves the referrers API,
/// with the proxy adding the header it does not send): `attach` and
/// `push` of a layout with SBOMs take that answer, reported `api`, without
/// asking the referrers API and without a fallback tag.
#[test]
fn an_oci_subject_answer_is_taken_without_asking_the_api() {
    let reg = common::peers::ReferrersRegistry::start();
    let proxy = FaultProxy::start(reg.port, None);
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 13, 14, 1000);
    run(nixoci().arg("sbom").arg(&layout).arg("--attach"));
    proxy.inject(Fault::SubjectHeader, ALWAYS);
    let reference = proxy.reference("said/app:1");
    let out = run(nixoci_in(t.path())
        .args(["push", "--json"])
        .arg(&layout)
        .arg(&reference));
    let pushed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pushed["referrers"][0]["listed"], "api", "{pushed}");
    let note = t.path().join("note.txt");
    fs::write(&note, "note\n").unwrap();
    let out = run(nixoci_in(t.path())
        .args([
            "attach",
            "--artifact-type",
            "text/plain",
            "--json",
            &reference,
        ])
        .arg(&note));
    let attached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(attached["listed"], "api", "{attached}");
    assert_eq!(proxy.fired(), 2, "one header for each referrer's PUT");
    let asked: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|(_, method, path, _)| {
            path.contains("/referrers/") || (method == "PUT" && path.contains("/manifests/sha256-"))
        })
        .map(|(_, method, path, _)| format!("{method} {path}"))
        .collect();
    assert_eq!(asked, Vec::<String>::new());
}

#[test]
fn a_token_endpoint_failing_once_is_retried() {
    let auth = TokenAuth {
        user: "ci".into(),
        password: "pw-a-0f3e".into(),
        token: "tok-a-77c1".into(),
    };
    let b = Bench::new(Some(auth));
    let creds = "ci:pw-a-0f3e";
    b.proxy.inject(Fault::TokenFails, 1);
    let out = b
        .tool(&[
            "push",
            b.layout.to_str().unwrap(),
            &b.proxy.reference("tok:v1"),
        ])
        .env("NIXOCI_CREDS", creds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.proxy.fired(), 1);
    assert_eq!(b.assert_tags_complete("tok"), ["v1"]);

    b.proxy.inject(Fault::TokenFails, ALWAYS);
    let (out, dir) = {
        let dir = b.env().join("pulls/tok/out");
        let out = b
            .tool(&["pull", &b.proxy.reference("tok:v1")])
            .arg(&dir)
            .env("NIXOCI_CREDS", creds)
            .output()
            .unwrap();
        (out, dir)
    };
    assert_failed_naming(&out, &["500"], "token endpoint always failing");
    assert_pull_sound(&b, &out, &dir, "token endpoint always failing");
    // The wrong password is told apart from a failing token service.
    b.proxy.inject(Fault::None, 0);
    let out = nixoci_in(b.env())
        .args(["exists", &b.proxy.reference("tok:v1")])
        .env("NIXOCI_CREDS", "ci:wrong")
        .output()
        .unwrap();
    assert_failed_naming(&out, &["refused the credentials"], "wrong password");
}

/// Issue "Hardening", secrets: every registry command at `RUST_LOG=trace`
/// (nixoci's and its HTTP stack's most verbose logging), with a password
/// and a bearer token, through every fault above, once and always; the
/// signing commands with an encrypted key and a plain one. Neither the
/// password, nor the token, nor the Basic header made of them, nor the
/// key's passphrase, nor a line of the plain private key appears on
/// stdout, stderr, or in any file nixoci wrote.
#[test]
fn secrets_never_appear_in_output_logs_or_files_whatever_fails() {
    use std::io::Write as _;
    const PASSWORD: &str = "pw-Zq81-never-shown";
    const TOKEN: &str = "tok-Hh27-never-shown";
    let auth = TokenAuth {
        user: "ci".into(),
        password: PASSWORD.into(),
        token: TOKEN.into(),
    };
    let b = Bench::new(Some(auth));
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("ci:{PASSWORD}"),
    );
    // The signing commands too: an encrypted key (its passphrase a secret)
    // and a plain one (its PEM body a secret), kept outside the files
    // checked below.
    const KEY_PASSPHRASE: &str = "kp-Vd93-never-shown";
    let keys = tempfile::tempdir().unwrap();
    let encrypted = keys.path().join("enc");
    let made = nixoci_in(b.env())
        .args(["generate-key-pair", "-q", "--output-key-prefix"])
        .arg(&encrypted)
        .env("COSIGN_PASSWORD", KEY_PASSPHRASE)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let plain = keys.path().join("plain.key");
    common::sign::openssl_private_key(&plain);
    let plain_pem = fs::read_to_string(&plain).unwrap();
    let mut secrets = vec![PASSWORD, TOKEN, basic.as_str(), KEY_PASSPHRASE];
    secrets.extend(plain_pem.lines().filter(|l| !l.starts_with("-----")));
    let key_path = |k: &str| keys.path().join(k).to_str().unwrap().to_owned();
    let sbom = b.env().join("sbom.json");
    fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    let files = b.env().join("files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("report.txt"), b"report").unwrap();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut traced = false;
    // Every command without a fault and under every fault that never stops
    // (the error paths); push and pull under the faults that happen once.
    let mut run_all = |label: &str, every: bool| {
        let r = |t: &str| b.proxy.reference(t);
        let scratch = b.env().join(format!("out-{label}"));
        let d = |n: &str| scratch.join(n).to_str().unwrap().to_owned();
        let layout = b.layout.to_str().unwrap();
        let commands: Vec<Vec<String>> = [
            vec!["push", layout, &r("s:v1")],
            vec!["pull", &r("s:v1"), &d("pulled")],
            vec!["pull", "--referrers", &r("s:v1"), &d("pulled-refs")],
            vec!["exists", &r("s:v1")],
            vec!["inspect", &r("s:v1")],
            vec!["tag", &r("s:v1"), "v2"],
            vec!["prefetch", &r("s:v1")],
            vec!["diff", layout, &r("s:v1")],
            vec![
                "attach",
                "--artifact-type",
                "application/spdx+json",
                &r("s:v1"),
                sbom.to_str().unwrap(),
            ],
            vec!["referrers", &r("s:v1")],
            vec!["artifact", "push", &r("a:v1"), files.to_str().unwrap()],
            vec!["artifact", "pull", &r("a:v1"), &d("artifact")],
            vec!["sign", "--key", &key_path("enc.key"), &r("s:v1")],
            vec![
                "sign",
                "--format",
                "bundle",
                "--key",
                &key_path("enc.key"),
                &r("s:v1"),
            ],
            vec!["sign", "--key", &key_path("plain.key"), &r("s:v1")],
            vec![
                "verify-signature",
                "--key",
                &key_path("enc.pub"),
                &r("s:v1"),
            ],
            vec![
                "push",
                "--sign-key",
                &key_path("enc.key"),
                layout,
                &r("s:v4"),
            ],
        ]
        .iter()
        .filter(|c| every || c[0] == "push" || c[0] == "pull")
        .map(|c| c.iter().map(|s| s.to_string()).collect())
        .collect();
        for c in &commands {
            let mut cmd = nixoci_in(b.env());
            cmd.args(c)
                .env("RUST_LOG", "trace")
                .env("NIXOCI_CREDS", format!("ci:{PASSWORD}"))
                .env("COSIGN_PASSWORD", KEY_PASSPHRASE);
            cmd.args(["--retries", "1", "--timeout", "1"]);
            let out = cmd.output().unwrap();
            traced |= String::from_utf8_lossy(&out.stderr).contains("TRACE");
            outputs.push((format!("{label}: {c:?}"), [out.stdout, out.stderr].concat()));
        }
        // And once with the password on standard input.
        let mut child = nixoci_in(b.env())
            .args([
                "push",
                "--username",
                "ci",
                "--password-stdin",
                layout,
                &r("s:v3"),
            ])
            .env("RUST_LOG", "trace")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        outputs.push((
            format!("{label}: push --password-stdin"),
            [out.stdout, out.stderr].concat(),
        ));
    };
    run_all("no-fault", true);
    // The signing commands did sign, so their logs covered the key's use.
    let verified = nixoci_in(b.env())
        .args(["verify-signature", "--key", &key_path("enc.pub")])
        .arg(b.proxy.reference("s:v1"))
        .env("NIXOCI_CREDS", format!("ci:{PASSWORD}"))
        .output()
        .unwrap();
    assert!(
        verified.status.success() && String::from_utf8_lossy(&verified.stdout).contains("verified"),
        "the signing commands signed nothing: {verified:?}"
    );
    for fault in [
        Fault::ResetUpload,
        Fault::ResetDownload,
        Fault::ServerErrorOnPut,
        Fault::TooManyRequests { retry_after: 1 },
        Fault::StallDownload,
        Fault::TruncateBlob,
        Fault::CorruptBlob,
        Fault::MissingBlob,
        Fault::TokenFails,
    ] {
        for (times, name) in [(1, "once"), (ALWAYS, "always")] {
            b.proxy.inject(fault, times);
            run_all(&format!("{fault:?}-{name}"), times == ALWAYS);
        }
    }
    assert!(
        traced,
        "RUST_LOG=trace logged nothing: the test would prove nothing"
    );
    for (what, bytes) in &outputs {
        let text = String::from_utf8_lossy(bytes);
        for s in &secrets {
            assert!(!text.contains(s), "{what}: a secret in the output:\n{text}");
        }
    }
    // Every file under the private home, cache and outputs.
    let mut checked = 0;
    for e in walkdir::WalkDir::new(b.env()) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let bytes = fs::read(e.path()).unwrap();
            checked += 1;
            for s in &secrets {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                    "{}: holds a secret",
                    e.path().display()
                );
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} files written: nothing was tested"
    );
}

/// Each blob's progress as a bar draws it: what `blob_advance` added, less
/// what `blob_rewind` took back, and the most it ever showed.
#[derive(Default)]
struct Bars(std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64, u64)>>);

impl nixoci::progress::Progress for Bars {
    fn blob_start(&self, digest: &str, size: u64) {
        self.0
            .lock()
            .unwrap()
            .insert(digest.to_owned(), (size, 0, 0));
    }
    fn blob_advance(&self, digest: &str, n: u64) {
        let mut bars = self.0.lock().unwrap();
        let (_, now, most) = bars.get_mut(digest).expect("started");
        *now += n;
        *most = (*most).max(*now);
    }
    fn blob_rewind(&self, digest: &str, n: u64) {
        let mut bars = self.0.lock().unwrap();
        let (_, now, _) = bars.get_mut(digest).expect("started");
        *now = now.checked_sub(n).expect("took back more than it added");
    }
}

impl Bars {
    /// Every bar ended full and never went past its end; returns how many
    /// bars there were.
    fn assert_full_never_past(&self, what: &str) -> usize {
        let bars = self.0.lock().unwrap();
        for (digest, (size, now, most)) in bars.iter() {
            assert_eq!(now, size, "{what}: {digest} ends at {now} of {size}");
            assert!(most <= size, "{what}: {digest} reached {most} of {size}");
        }
        bars.len()
    }
}

/// A transfer cut off mid-way and retried counts its bytes once: the try
/// that failed takes back what it reported, so a bar ends at 100% and
/// never passes it (it reached 150% before). Through the library, whose
/// progress events the command line's bars draw.
#[test]
fn a_retried_transfer_counts_its_bytes_once() {
    let b = Bench::new(None);
    let mut opts = nixoci::RemoteOptions::default();
    opts.retries = 2;
    opts.jobs = 2;
    let target = nixoci::oci::reference::Reference::parse(&b.proxy.reference("bars:v1")).unwrap();
    b.proxy.inject(Fault::ResetUpload, 1);
    let bars = std::sync::Arc::new(Bars::default());
    nixoci::push(&b.layout, None, &target, &opts, bars.clone()).unwrap();
    assert_eq!(b.proxy.fired(), 1, "the upload was cut");
    assert_eq!(
        bars.assert_full_never_past("push"),
        3,
        "two layers and a config"
    );

    b.proxy.inject(Fault::ResetDownload, 1);
    let bars = std::sync::Arc::new(Bars::default());
    let dir = b.env().join("bars-pulled");
    let o = nixoci::PullOptions::default();
    nixoci::pull(&target, &dir, &o, &opts, bars.clone()).unwrap();
    assert_eq!(b.proxy.fired(), 1, "the download was cut");
    assert_eq!(bars.assert_full_never_past("pull"), 3);
    assert_eq!(blobs(&dir), blobs(&b.layout));
}

/// A port of 127.0.0.1 nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// What the library's sync functions (`pull`, and so every registry call,
/// which all run through one `with_runtime`) give for a registry on a closed
/// port, wherever they are called from: an error naming it, not a panic
/// (they built and entered a runtime of their own, which panics inside
/// another: "Cannot start a runtime from within a runtime").
fn assert_unreachable(port: u16) {
    let at = format!("127.0.0.1:{port}");
    let r = nixoci::oci::reference::Reference::parse(&format!("{at}/app:v1")).unwrap();
    let mut opts = nixoci::RemoteOptions::default();
    opts.retries = 0;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = nixoci::PullOptions::default();
    let progress = std::sync::Arc::new(nixoci::progress::Silent);
    let err = nixoci::pull(&r, &out, &o, &opts, progress)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&at) && err.contains("cannot reach"), "{err}");
    assert!(!out.exists(), "a failed pull leaves no layout");
}

#[tokio::test]
async fn sync_calls_from_a_current_thread_runtime_return_errors() {
    assert_unreachable(closed_port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_calls_from_a_multi_thread_runtime_return_errors() {
    assert_unreachable(closed_port());
}

#[test]
fn sync_calls_from_a_runtimes_block_on_and_outside_return_errors() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { assert_unreachable(closed_port()) });
    assert_unreachable(closed_port());
}

/// pull hashes and writes each blob on a thread of its own, not on the
/// thread that drives the downloads (the main thread, which ran them all
/// before: `--jobs` overlapped only the waiting on the network). Under
/// strace, the blob files of a pull with `--jobs 4` of an image of three
/// blobs get their bytes from three threads, none of them the main one;
/// the layers are 300 kB each, written in writes of over 100 kB (the
/// writer's buffer is 256 KiB), which tells them from the small documents
/// the main thread writes after the downloads.
#[test]
fn pull_writes_each_blob_on_a_thread_of_its_own() {
    require("strace");
    let b = Bench::new(None);
    let out = b.push("threads:v1");
    assert!(out.status.success(), "{}", stderr(&out));
    // One log per thread (`-ff`: LOG.TID), so that no call is split
    // between lines.
    let logs = b.env().join("strace");
    fs::create_dir(&logs).unwrap();
    let dir = b.env().join("threads-pulled");
    let pull = {
        let mut c = nixoci_in(b.env());
        c.args(["pull", "--quiet", "--jobs", "4"])
            .arg(b.reg.reference("threads:v1"))
            .arg(&dir);
        c
    };
    let mut traced = Command::new("strace");
    traced
        .args(["-ff", "-qq", "-y", "-e", "trace=execve,write", "-o"])
        .arg(logs.join("log"))
        .arg(pull.get_program())
        .args(pull.get_args());
    for (k, v) in pull.get_envs() {
        match v {
            Some(v) => traced.env(k, v),
            None => traced.env_remove(k),
        };
    }
    run(&mut traced);
    assert_eq!(blobs(&dir), blobs(&b.layout));
    let (mut main, mut writers) = (None, Vec::new());
    for entry in fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        let thread = path.extension().unwrap().to_string_lossy().into_owned();
        let log = fs::read_to_string(&path).unwrap();
        if log.lines().any(|l| l.starts_with("execve(")) {
            main = Some(thread.clone());
        }
        let wrote_a_layer = log.lines().any(|l| {
            l.starts_with("write(")
                && l.contains("/blobs/sha256/")
                && l.rsplit_once(" = ")
                    .is_some_and(|(_, n)| n.trim().parse::<u64>().is_ok_and(|n| n > 100_000))
        });
        if wrote_a_layer {
            writers.push(thread);
        }
    }
    let main = main.expect("strace shows the execve");
    assert!(
        !writers.contains(&main),
        "the main thread {main} wrote a layer: {writers:?}"
    );
    assert_eq!(writers.len(), 2, "the two layers written by {writers:?}");
}
