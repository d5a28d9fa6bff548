//! How registry commands fail: the settings read from the environment
//! (`NIXOCI_DOCUMENT_TIMEOUT`), the CA roots, and the kinds of registry
//! failure, each with its own exit status and message
//! (docs/reference/commands.md, "Exit status"), against a real registry (distribution 2.8,
//! `common::registry`), with the fault proxy of `tests/faults.rs` for
//! 429 and 503.

mod common;
#[allow(dead_code)]
#[path = "faults/proxy.rs"]
mod proxy;

use std::fs;
use std::process::Output;

use common::registry::*;
use common::*;

use common::nixoci_in as tool;
use proxy::{Fault, FaultProxy};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A bad `NIXOCI_DOCUMENT_TIMEOUT` stops the command before it sends
/// anything, naming the variable: `1e30` made `Duration::from_secs_f64`
/// panic (exit 101) at the first document read, and `-1`, `nan` or `abc`
/// were silently taken as the default.
#[test]
fn a_bad_document_timeout_is_an_error_naming_the_variable() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 1, 2, 1_000);
    run(tool(t.path())
        .arg("push")
        .arg(&layout)
        .arg(reg.reference("app:v1"))
        .arg("-q"));
    for bad in ["1e30", "-1", "nan", "abc", "0", "inf", "86401", ""] {
        for cmd in [&["pull"][..], &["inspect"], &["tag"], &["push"]] {
            let mut c = tool(t.path());
            c.env("NIXOCI_DOCUMENT_TIMEOUT", bad).args(cmd);
            match cmd[0] {
                "pull" => c
                    .arg(reg.reference("app:nothere"))
                    .arg(t.path().join("out")),
                "inspect" => c.arg(reg.reference("app:nothere")),
                "tag" => c.arg(reg.reference("app:nothere")).arg("v2"),
                _ => c.arg(&layout).arg(reg.reference("app:v3")),
            };
            let out = c.output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{bad:?} {cmd:?}: {err}");
            assert!(
                err.contains(&format!("NIXOCI_DOCUMENT_TIMEOUT={bad:?}"))
                    && err.contains("expected a number of seconds"),
                "{bad:?} {cmd:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // Nothing was sent: the tag the push would have set is not there.
    let out = tool(t.path())
        .args(["exists", "-q"])
        .arg(reg.reference("app:v3"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A good value is taken.
    let out = tool(t.path())
        .env("NIXOCI_DOCUMENT_TIMEOUT", " 0.5 ")
        .arg("inspect")
        .arg(reg.reference("app:v1"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// With no CA roots on the machine (`SSL_CERT_FILE` and `SSL_CERT_DIR`
/// naming nothing, as in the Nix sandbox), `--ca-file` is trusted, and
/// without it the certificate is refused as untrusted (the client still
/// starts: the built-in roots are trusted, not "no CA certificates").
/// nixoci hands those roots to its HTTP client and leaves its environment
/// alone: the credential helper it runs sees the `SSL_CERT_FILE` the
/// caller set. The old code pointed `SSL_CERT_FILE` at a file of its own
/// with `set_var`, unsound once threads run, and seen by every child.
#[test]
fn builtin_roots_are_trusted_without_changing_the_environment() {
    let reg = Registry::start(Setup {
        htpasswd: false,
        tls: true,
    });
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "tls", 5, 6, 1_000);
    let reference = reg.reference("secure/app:v1");
    let seen = t.path().join("seen");
    let path = path_with(&fake_helper(
        t.path(),
        "envdump",
        &reg.host(),
        &format!(
            "printf '%s' \"${{SSL_CERT_FILE-unset}}\" > {}\necho 'credentials not found in native keychain'\nexit 1",
            seen.display()
        ),
    ));
    let no_bundle = t.path().join("no-such-bundle.pem");
    let hidden = |c: &mut std::process::Command| {
        c.env("PATH", &path)
            .env("SSL_CERT_FILE", &no_bundle)
            .env("SSL_CERT_DIR", t.path().join("no-such-dir"));
    };
    let mut c = tool(t.path());
    hidden(&mut c);
    run(c
        .arg("push")
        .arg(&layout)
        .arg(&reference)
        .arg("--ca-file")
        .arg(reg.dir.path().join("ca.pem"))
        .arg("-q"));
    assert_eq!(
        fs::read_to_string(&seen).unwrap(),
        no_bundle.to_str().unwrap(),
        "the helper saw another SSL_CERT_FILE than the caller's"
    );
    fs::remove_file(&seen).unwrap();

    let mut c = tool(t.path());
    hidden(&mut c);
    let out = c
        .arg("pull")
        .arg(&reference)
        .arg(t.path().join("out"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("is not trusted") && err.contains("--ca-file"),
        "{err}"
    );
    assert!(!err.contains("No CA certificates"), "{err}");
    assert_eq!(
        fs::read_to_string(&seen).unwrap(),
        no_bundle.to_str().unwrap()
    );
}

/// `out` failed with exit status `code`, and its message says each of
/// `words`.
fn assert_failed(out: &Output, code: i32, words: &[&str], what: &str) {
    let err = stderr(out);
    // Shown with --nocapture: the messages docs/reference/commands.md's exit
    // statuses describe.
    eprintln!("{what}: exit {:?}: {}", out.status.code(), err.trim());
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    for w in words {
        assert!(err.contains(w), "{what}: the message lacks {w:?}: {err}");
    }
}

/// Each kind of registry failure has its own exit status
/// (docs/reference/commands.md, "Exit status"), which the old code did not give (every failure was 1):
/// a refused password 20, no such repository or tag 21, nothing listening
/// 24; an error of nixoci's own is still 1, and a usage error 2.
#[test]
fn credentials_not_found_and_unreachable_have_their_own_exit_status() {
    let reg = Registry::start(Setup {
        htpasswd: true,
        tls: false,
    });
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 1, 2, 1_000);
    let creds = format!("{USER}:{PASSWORD}");
    run(tool(t.path())
        .arg("push")
        .arg(&layout)
        .arg(reg.reference("app:v1"))
        .args(["--creds", &creds, "-q"]));

    let wrong = format!("{USER}:not-the-password");
    let out = tool(t.path())
        .arg("push")
        .arg(&layout)
        .arg(reg.reference("app:v2"))
        .args(["--creds", &wrong])
        .output()
        .unwrap();
    assert_failed(
        &out,
        20,
        &["refused the credentials (as tester)", "401 Unauthorized"],
        "wrong password",
    );
    assert!(!stderr(&out).contains("not-the-password"));
    let out = tool(t.path())
        .arg("pull")
        .arg(reg.reference("app:v1"))
        .arg(t.path().join("anon"))
        .output()
        .unwrap();
    assert_failed(
        &out,
        20,
        &["refused the credentials (anonymously)"],
        "no credentials",
    );

    for (what, reference) in [
        ("unknown repository", "nothere/app:v1"),
        ("unknown tag", "app:v9"),
    ] {
        let out = tool(t.path())
            .arg("pull")
            .arg(reg.reference(reference))
            .arg(t.path().join("out"))
            .args(["--creds", &creds])
            .output()
            .unwrap();
        assert_failed(&out, 21, &[": not found: ", "404 Not Found"], what);
        assert!(!t.path().join("out").exists());
    }
    let out = tool(t.path())
        .arg("referrers")
        .arg(reg.reference("app:v9"))
        .args(["--creds", &creds])
        .output()
        .unwrap();
    assert_failed(&out, 21, &["no such image in the registry"], "referrers");

    let nobody = format!("127.0.0.1:{}/app:v1", free_port());
    let out = tool(t.path())
        .arg("inspect")
        .arg(&nobody)
        .args(["--retries", "0"])
        .output()
        .unwrap();
    assert_failed(
        &out,
        24,
        &["cannot reach 127.0.0.1:", "Connection refused"],
        "connection refused",
    );

    // Not a registry failure: 1; a usage error: 2.
    let out = tool(t.path())
        .arg("push")
        .arg(t.path().join("nothere"))
        .arg(reg.reference("app:v3"))
        .output()
        .unwrap();
    assert_failed(&out, 1, &["no such image layout directory"], "no layout");
    let out = tool(t.path())
        .args(["push", "--jobs", "0"])
        .arg(&layout)
        .arg(reg.reference("app:v3"))
        .output()
        .unwrap();
    assert_failed(&out, 2, &["--jobs"], "usage");
}

/// A registry asking for fewer requests (429), after the retries or at
/// once when it asks for a longer wait than nixoci takes: 22; one
/// answering 503 every time: 25.
#[test]
fn rate_limits_and_server_errors_have_their_own_exit_status() {
    let reg = Registry::start(Setup::default());
    let proxy = FaultProxy::start(reg.port, None);
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 1, 2, 1_000);
    let push = |tag: &str| {
        tool(t.path())
            .arg("push")
            .arg(&layout)
            .arg(proxy.reference(&format!("app:{tag}")))
            .args(["--retries", "1", "--timeout", "2"])
            .output()
            .unwrap()
    };
    proxy.inject(Fault::TooManyRequests { retry_after: 3600 }, usize::MAX);
    assert_failed(
        &push("v1"),
        22,
        &["asks to be asked again in 3600 s (Retry-After)"],
        "429, an hour",
    );
    proxy.inject(Fault::TooManyRequests { retry_after: 0 }, usize::MAX);
    assert_failed(
        &push("v1"),
        22,
        &["rate limited", "429 Too Many Requests"],
        "429 after the retries",
    );
    assert!(proxy.fired() >= 2, "tried 1 + 1 retry");
    proxy.inject(Fault::Unavailable, usize::MAX);
    assert_failed(
        &push("v1"),
        25,
        &["registry 127.0.0.1:", "503 Service Unavailable"],
        "503",
    );
    assert!(proxy.fired() >= 2, "tried 1 + 1 retry");
    proxy.inject(Fault::None, 0);
    run(tool(t.path())
        .arg("push")
        .arg(&layout)
        .arg(proxy.reference("app:v1"))
        .arg("-q"));
}

/// TLS failures, told apart by rustls' error types (not its wording): a
/// certificate signed by a CA not trusted, and one not issued for the
/// name used (the registry's is for 127.0.0.1, asked for as localhost):
/// 23, each with what to do, and not retried.
#[test]
fn tls_failures_have_their_own_exit_status() {
    let reg = Registry::start(Setup {
        htpasswd: false,
        tls: true,
    });
    let t = tempfile::tempdir().unwrap();
    let out = tool(t.path())
        .arg("inspect")
        .arg(reg.reference("app:v1"))
        .env("RUST_LOG", "nixoci=warn")
        .output()
        .unwrap();
    assert_failed(&out, 23, &["is not trusted: pass --ca-file"], "untrusted");
    assert!(!stderr(&out).contains("retry"), "retried: {}", stderr(&out));
    let out = tool(t.path())
        .arg("inspect")
        .arg(format!("localhost:{}/app:v1", reg.port))
        .arg("--ca-file")
        .arg(reg.dir.path().join("ca.pem"))
        .output()
        .unwrap();
    assert_failed(&out, 23, &["is not valid for that name"], "name mismatch");
}
