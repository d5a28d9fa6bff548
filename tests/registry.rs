//! push / pull / tag / exists / inspect against a real Docker registry
//! (distribution 2.8) on 127.0.0.1 (`common::registry`), checked with
//! skopeo and with the registry's own access log.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::*;
use common::*;
use serde_json::{json, Value};

use common::nixoci_in as tool;

fn push_json(env: &Path, layout: &Path, reference: &str, extra: &[&str]) -> Value {
    let out = run(tool(env)
        .arg("push")
        .arg(layout)
        .arg(reference)
        .arg("--json")
        .args(extra));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn skopeo_raw_digest(reg: &Registry, reference: &str) -> String {
    require("skopeo");
    let out = run(Command::new("skopeo")
        .args(["inspect", reg.skopeo_tls(), "--raw"])
        .arg(format!("docker://{reference}")));
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out.stdout))
    )
}

#[test]
fn push_is_seen_by_skopeo_and_pull_gives_back_the_same_bytes() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 1, 2, 100_000);
    let reference = reg.reference("app:v1");
    let report = push_json(t.path(), &layout, &reference, &[]);
    assert_eq!(report["digest"], manifest_digest(&layout));
    assert_eq!(report["uploaded"], 3, "the config and 2 layers: {report}");
    assert_eq!(
        skopeo_raw_digest(&reg, &reference),
        manifest_digest(&layout)
    );

    let pulled = t.path().join("pulled");
    run(tool(t.path())
        .arg("pull")
        .arg(&reference)
        .arg(&pulled)
        .arg("-q"));
    run(nixoci().arg("verify").arg(&pulled));
    assert_eq!(blobs(&pulled), blobs(&layout));
    assert_eq!(
        read_json(&pulled.join("index.json"))["manifests"][0]["annotations"]
            ["org.opencontainers.image.ref.name"],
        "v1"
    );
}

#[test]
fn repush_uploads_nothing_and_shared_layers_are_not_sent_again() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let first = image(t.path(), "one", 7, 8, 200_000);
    let report = push_json(t.path(), &first, &reg.reference("app:one"), &[]);
    assert_eq!(report["uploaded"], 3);
    let uploads = reg.uploads();
    assert_eq!(uploads, 3, "one upload session per blob:\n{}", reg.log());

    // Unchanged: nothing is uploaded, by the report and by the registry's
    // log (the tag already names the image, so no blob is even checked).
    let again = push_json(t.path(), &first, &reg.reference("app:one"), &[]);
    assert_eq!(
        (
            again["uploaded"].as_u64(),
            again["skipped"].as_u64(),
            again["bytesSent"].as_u64(),
            again["upToDate"].as_bool()
        ),
        (Some(0), Some(0), Some(0), Some(true))
    );
    assert_eq!(
        reg.uploads(),
        uploads,
        "a re-push started uploads:\n{}",
        reg.log()
    );

    // A second image sharing the base layer: only its own layer and config go.
    let second = image(t.path(), "two", 7, 9, 200_000);
    let report = push_json(t.path(), &second, &reg.reference("app:two"), &[]);
    assert_eq!(
        (report["uploaded"].as_u64(), report["skipped"].as_u64()),
        (Some(2), Some(1)),
        "{report}"
    );
    assert_eq!(reg.uploads(), uploads + 2);

    // Into another repository of the registry: the shared blobs are mounted.
    let report = push_json(t.path(), &second, &reg.reference("elsewhere/app:two"), &[]);
    assert_eq!(
        (report["uploaded"].as_u64(), report["mounted"].as_u64()),
        (Some(0), Some(3)),
        "{report}"
    );
    assert_eq!(reg.uploads(), uploads + 2, "mounts are not uploads");
    assert!(
        reg.log().contains("mount=sha256"),
        "no mount request in the log"
    );
}

#[test]
fn htpasswd_auth_through_docker_config_and_clear_errors_without_secrets() {
    let reg = Registry::start(Setup {
        htpasswd: true,
        tls: false,
    });
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "auth", 3, 4, 10_000);
    let reference = reg.reference("private/app:latest");

    // Anonymous: refused with a message that says what to do.
    let err = run_fail(tool(t.path()).arg("push").arg(&layout).arg(&reference));
    assert!(
        err.contains("refused") && err.contains("credentials"),
        "{err}"
    );

    // Credentials from $DOCKER_CONFIG/config.json.
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    fs::create_dir_all(t.path().join("docker")).unwrap();
    write_json(
        &t.path().join("docker/config.json"),
        &json!({"auths": {reg.host(): {"auth": auth}}}),
    );
    let report = push_json(t.path(), &layout, &reference, &[]);
    assert_eq!(report["uploaded"], 3);
    run(tool(t.path()).arg("exists").arg(&reference));

    // Wrong password on the command line: clear error, no secret anywhere.
    let wrong = "wrong-Pa55word-xyz";
    let out = tool(t.path())
        .arg("push")
        .arg(&layout)
        .arg(reg.reference("private/other:latest"))
        .arg("--creds")
        .arg(format!("{USER}:{wrong}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("refused the credentials") && all.contains(USER),
        "{all}"
    );
    assert!(
        !all.contains(wrong) && !all.contains(PASSWORD),
        "a secret leaked: {all}"
    );

    // --password-stdin.
    let mut child = tool(t.path())
        .args(["pull", "--username", USER, "--password-stdin", "-q"])
        .arg(&reference)
        .arg(t.path().join("pulled"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(blobs(&t.path().join("pulled")), blobs(&layout));
}

#[test]
fn tls_with_a_private_ca_needs_ca_file() {
    let reg = Registry::start(Setup {
        htpasswd: false,
        tls: true,
    });
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "tls", 5, 6, 10_000);
    let reference = reg.reference("secure/app:latest");
    let err = run_fail(tool(t.path()).arg("push").arg(&layout).arg(&reference));
    assert!(
        err.contains("certificate") && err.contains("--ca-file"),
        "{err}"
    );
    let ca = reg.dir.path().join("ca.pem");
    let out = run(tool(t.path())
        .arg("push")
        .arg(&layout)
        .arg(&reference)
        .arg("--ca-file")
        .arg(&ca)
        .arg("--json"));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["digest"], manifest_digest(&layout));
    // skopeo trusts the same CA: the image is there.
    let certs = t.path().join("certs.d");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(&certs)
        .arg(format!("docker://{reference}")));
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw.stdout))
        ),
        manifest_digest(&layout)
    );
}

#[test]
fn registry_killed_mid_push_then_restarted_and_pushed_again() {
    let mut reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "big", 11, 12, 24 << 20);
    let reference = reg.reference("big/app:latest");
    let child = tool(t.path())
        // Chunked uploads (above 8 MiB): data flows as PATCH requests, which
        // the access log shows while the push goes on.
        .args([
            "push",
            "--jobs",
            "1",
            "--retries",
            "2",
            "--chunked-above-mib",
            "8",
        ])
        .arg(&layout)
        .arg(&reference)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the registry once data is flowing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reg.log().contains("\"PATCH /v2/") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    reg.stop();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the push succeeded against a dead registry"
    );
    assert!(
        err.contains("cannot push") && err.contains(&reg.host()),
        "{err}"
    );

    reg.restart();
    let report = push_json(t.path(), &layout, &reference, &[]);
    assert_eq!(report["digest"], manifest_digest(&layout));
    let pulled = t.path().join("pulled");
    run(tool(t.path())
        .arg("pull")
        .arg(&reference)
        .arg(&pulled)
        .arg("-q"));
    run(nixoci().arg("verify").arg(&pulled));
    assert_eq!(blobs(&pulled), blobs(&layout));
}

#[test]
fn multi_platform_index_round_trips() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    two_platform_layout(t.path(), "L");
    let layout = t.path().join("L");
    let reference = reg.reference("multi/app:multi");
    let report = push_json(t.path(), &layout, &reference, &[]);
    assert_eq!(report["manifests"], 3);
    assert_eq!(
        report["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        skopeo_raw_digest(&reg, &reference),
        manifest_digest(&layout)
    );

    let all = t.path().join("all");
    run(tool(t.path())
        .arg("pull")
        .arg(&reference)
        .arg(&all)
        .arg("-q"));
    run(nixoci().arg("verify").arg(&all));
    assert_eq!(blobs(&all), blobs(&layout));

    let one = t.path().join("one");
    run(tool(t.path())
        .args(["pull", "--platform", "linux/arm64", "-q"])
        .arg(&reference)
        .arg(&one));
    run(nixoci().arg("verify").arg(&one));
    let index = read_json(&one.join("index.json"));
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");

    let text =
        String::from_utf8(run(tool(t.path()).arg("inspect").arg(&reference)).stdout).unwrap();
    assert!(
        text.contains("linux/amd64") && text.contains("linux/arm64"),
        "{text}"
    );
}

#[test]
fn interop_with_skopeo_both_ways() {
    require("skopeo");
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    // gzip layers: skopeo would compress uncompressed ones on the way.
    let layout = image_with(t.path(), "interop", 21, 22, 50_000, "gzip");

    // skopeo pushes, nixoci pulls.
    let by_skopeo = reg.reference("skopeo/app:latest");
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{by_skopeo}")));
    let pulled = t.path().join("pulled");
    run(tool(t.path())
        .arg("pull")
        .arg(&by_skopeo)
        .arg(&pulled)
        .arg("-q"));
    run(nixoci().arg("verify").arg(&pulled));
    assert_eq!(
        manifest_digest(&pulled),
        skopeo_raw_digest(&reg, &by_skopeo)
    );

    // nixoci pushes, skopeo copies out; the copy verifies and matches.
    let by_nixoci = reg.reference("nixoci/app:latest");
    push_json(t.path(), &layout, &by_nixoci, &[]);
    let copy = t.path().join("copy");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{by_nixoci}"))
        .arg(format!("oci:{}:latest", copy.display())));
    run(nixoci().arg("verify").arg(&copy));
    assert_eq!(blobs(&copy), blobs(&layout));
}

#[test]
fn tag_and_exists() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "tagged", 31, 32, 10_000);
    push_json(t.path(), &layout, &reg.reference("app:1.0"), &[]);
    let uploads = reg.uploads();
    let out = run(tool(t.path())
        .arg("tag")
        .arg(reg.reference("app:1.0"))
        .arg("stable"));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&manifest_digest(&layout)));
    assert_eq!(reg.uploads(), uploads, "tagging moved blobs");
    assert_eq!(
        skopeo_raw_digest(&reg, &reg.reference("app:stable")),
        manifest_digest(&layout)
    );
    assert_eq!(
        tool(t.path())
            .arg("exists")
            .arg(reg.reference("app:stable"))
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    assert_eq!(
        tool(t.path())
            .arg("exists")
            .arg(reg.reference("app:nope"))
            .status()
            .unwrap()
            .code(),
        Some(1)
    );
    assert_eq!(
        tool(t.path())
            .arg("exists")
            .arg(format!("127.0.0.1:{}/app:x", free_port()))
            .status()
            .unwrap()
            .code(),
        Some(2),
        "an unreachable registry is neither yes nor no"
    );
}

#[test]
fn bad_references_name_the_bad_part() {
    let t = tempfile::tempdir().unwrap();
    for (reference, part) in [
        ("127.0.0.1:5000/App:latest", "\"App\" must be lowercase"),
        ("127.0.0.1:99999/app", "invalid port"),
        ("localhost/app:bad:tag", "has an invalid separator \":\""),
        ("localhost/app@sha256:1234", "digest \"sha256:1234\""),
    ] {
        let err = run_fail(tool(t.path()).arg("exists").arg(reference));
        assert!(err.contains(part), "{reference}: {err}");
    }
}

/// Regressions from review: a tag with a digest sets the tag; a missing
/// manifest is "not found" whatever its digest spells; --platform is
/// checked on a single-platform image; `exists` on a bad reference is
/// "cannot tell" (2), never "no".
#[test]
fn tag_with_digest_platform_mismatch_and_not_found() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "td", 41, 42, 10_000);
    let digest = manifest_digest(&layout);
    push_json(
        t.path(),
        &layout,
        &format!("{}@{digest}", reg.reference("td:v9")),
        &[],
    );
    assert_eq!(
        skopeo_raw_digest(&reg, &reg.reference("td:v9")),
        digest,
        "the tag was set"
    );

    let missing = format!("{}@sha256:4010{}", reg.reference("td"), "0".repeat(60));
    let err = run_fail(
        tool(t.path())
            .arg("pull")
            .arg(&missing)
            .arg(t.path().join("p")),
    );
    assert!(
        err.contains("not found") && !err.contains("credentials"),
        "{err}"
    );

    let err = run_fail(
        tool(t.path())
            .args(["pull", "--platform", "linux/arm64"])
            .arg(reg.reference("td:v9"))
            .arg(t.path().join("p")),
    );
    assert!(
        err.contains("linux/amd64") && err.contains("not linux/arm64"),
        "{err}"
    );
    assert!(!t.path().join("p").exists());

    assert_eq!(
        tool(t.path())
            .arg("exists")
            .arg("Bad/Reference")
            .status()
            .unwrap()
            .code(),
        Some(2)
    );
}

/// Run `cmd` and give up after `limit` (killing it by PID): a hang is a
/// test failure, not a hung test run.
fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    // Output goes to files: a pipe nobody reads until the end could block
    // the command.
    let files = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (files.path().join("out"), files.path().join("err"));
    let start = Instant::now();
    let mut child = cmd
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = std::process::Output {
                status,
                stdout: fs::read(&out_path).unwrap(),
                stderr: fs::read(&err_path).unwrap(),
            };
            return output;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still ran after {limit:?}:\nstderr: {}",
                String::from_utf8_lossy(&fs::read(&err_path).unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue "Defects found trying nixoci as a new user would": a credential
/// helper that hangs hung nixoci forever. The wait is bounded
/// (NIXOCI_CREDENTIAL_HELPER_TIMEOUT), the helper and what it started are
/// killed, and the error names the helper.
#[test]
fn a_hanging_credential_helper_is_killed_and_named() {
    let t = tempfile::tempdir().unwrap();
    // No registry is needed: credentials are looked up before any request
    // that needs them, and nothing listens on this port.
    let registry = format!("127.0.0.1:{}", free_port());
    let pid_file = t.path().join("helper.pid");
    let bin = fake_helper(
        t.path(),
        "hangs",
        &registry,
        &format!("echo $$ > {}\nsleep 60\necho '{{}}'", pid_file.display()),
    );
    let out = output_within(
        tool(t.path())
            .env("PATH", path_with(&bin))
            .env("NIXOCI_CREDENTIAL_HELPER_TIMEOUT", "0.5")
            .arg("pull")
            .arg(format!("{registry}/app:latest"))
            .arg(t.path().join("pulled")),
        Duration::from_secs(50),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("docker-credential-hangs")
            && err.contains("did not answer within 0.5 s")
            && err.contains("NIXOCI_CREDENTIAL_HELPER_TIMEOUT"),
        "{err}"
    );
    let pid = fs::read_to_string(&pid_file).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!proc_dir.exists(), "the helper (pid {pid}) still runs");
    assert!(!t.path().join("pulled").exists());
}

/// A helper that prints without end is cut off at 1 MiB; what it printed
/// (a secret, possibly) is not shown.
#[test]
fn a_credential_helper_with_endless_output_is_bounded() {
    let t = tempfile::tempdir().unwrap();
    let registry = format!("127.0.0.1:{}", free_port());
    let secret = "helper-Secret-9f8e7d";
    let bin = fake_helper(
        t.path(),
        "chatty",
        &registry,
        &format!("printf '{{\"Username\":\"u\",\"Secret\":\"{secret}\"'\nexec yes"),
    );
    let out = output_within(
        tool(t.path())
            .env("PATH", path_with(&bin))
            .arg("pull")
            .arg(format!("{registry}/app:latest"))
            .arg(t.path().join("pulled")),
        Duration::from_secs(50),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("docker-credential-chatty") && err.contains("more than 1 MiB"),
        "{err}"
    );
    assert!(!err.contains(secret), "a secret leaked: {err}");
}

/// Issue "Defects found trying nixoci as a new user would": `inspect out`
/// of a missing directory went to Docker Hub as docker.io/library/out. The
/// rule (docs/registries.md, "Layout or reference?"): an existing path, or one written as a path
/// (`./x`, `../x`, `/x`), is local; a name whose first component is a
/// registry host is a reference; anything else is an error naming both
/// readings, and no request is made.
#[test]
fn dir_or_ref_arguments_follow_one_rule() {
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "out", 51, 52, 1000);
    let inspect = |arg: &str| {
        let mut c = tool(t.path());
        c.current_dir(t.path()).arg("inspect").arg(arg);
        c
    };

    // A bare name that is no directory: both readings named, no request
    // (the message is the rule's own, not a network error).
    for (arg, hub) in [
        ("missing", "docker.io/library/missing:latest"),
        ("missing:v1", "docker.io/library/missing:v1"),
        ("team/missing", "docker.io/team/missing:latest"),
    ] {
        let err = run_fail(&mut inspect(arg));
        assert!(
            err.contains(&format!("no directory {arg:?}"))
                && err.contains(hub)
                && !err.contains("cannot reach")
                && !err.contains("dns"),
            "{arg}: {err}"
        );
    }
    // Written as a path: local only.
    let err = run_fail(&mut inspect("./missing"));
    assert!(
        err.contains("./missing") && err.contains("no such image layout directory"),
        "{err}"
    );
    // An existing layout, bare or with :TAG, is local; :TAG picks the tag.
    let whole = String::from_utf8(run(&mut inspect("out")).stdout).unwrap();
    assert!(whole.contains(&manifest_digest(&layout)), "{whole}");
    let tagged = run(inspect("out:latest").arg("--json"));
    let v: Value = serde_json::from_slice(&tagged.stdout).unwrap();
    assert_eq!(v[0]["tag"], "latest");
    assert_eq!(v[0]["digest"], manifest_digest(&layout).as_str());
    let err = run_fail(&mut inspect("out:nope"));
    assert!(err.contains("\"nope\"") && err.contains("latest"), "{err}");
    // An existing file that is not a layout.
    fs::write(t.path().join("afile"), "x").unwrap();
    let err = run_fail(&mut inspect("afile"));
    assert!(
        err.contains("afile") && err.contains("not an OCI image layout"),
        "{err}"
    );

    // Commands that take only a reference refuse a bare name that is a
    // local directory (the user meant the layout), naming the Docker Hub
    // spelling.
    for cmd in [
        vec!["pull", "out", "elsewhere"],
        vec!["tag", "out", "v2"],
        vec!["push", "out", "out"],
    ] {
        let err = run_fail(tool(t.path()).current_dir(t.path()).args(&cmd));
        assert!(
            err.contains("\"out\" is a local directory") && err.contains("docker.io/library/out"),
            "{cmd:?}: {err}"
        );
    }
    let out = tool(t.path())
        .current_dir(t.path())
        .args(["exists", "out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a local directory"));

    // Arguments swapped: the layout comes first.
    let err = run_fail(tool(t.path()).current_dir(t.path()).args([
        "push",
        "127.0.0.1:5000/app:v1",
        "./out",
    ]));
    assert!(
        err.contains("no such image layout directory") && err.contains("LAYOUT[:TAG] first"),
        "{err}"
    );
    // LAYOUT:TAG with an empty tag, and a missing layout, for archive and
    // unpack alike.
    for cmd in [
        vec!["archive", "out:", "-o", "a.tar"],
        vec!["unpack", "out:", "rootfs"],
    ] {
        let err = run_fail(tool(t.path()).current_dir(t.path()).args(&cmd));
        assert!(err.contains("empty tag"), "{cmd:?}: {err}");
    }
    for cmd in [
        vec!["archive", "nothere:v1", "-o", "a.tar"],
        vec!["unpack", "nothere", "rootfs"],
    ] {
        let err = run_fail(tool(t.path()).current_dir(t.path()).args(&cmd));
        assert!(
            err.contains("nothere") && err.contains("no such image layout directory"),
            "{cmd:?}: {err}"
        );
    }
    assert!(!t.path().join("a.tar").exists() && !t.path().join("rootfs").exists());
}

/// Issue "Defects found trying nixoci as a new user would": re-pushing an
/// unchanged image pinged the registry once per job, HEADed every blob and
/// PUT the manifest again. When the tag already names the local digest
/// nothing is written, and the report says so; for an image index too.
#[test]
fn repush_of_an_unchanged_image_or_index_writes_nothing() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let writes = |r: &[String]| -> Vec<String> {
        r.iter()
            .filter(|l| !l.starts_with("GET ") && !l.starts_with("HEAD "))
            .cloned()
            .collect()
    };
    two_platform_layout(t.path(), "multi");
    let single = image(t.path(), "single", 61, 62, 50_000);
    for (layout, repo) in [(single, "same/app"), (t.path().join("multi"), "same/multi")] {
        let reference = reg.reference(&format!("{repo}:v1"));
        let start = reg.requests().len();
        let first = push_json(t.path(), &layout, &reference, &["--jobs", "4"]);
        assert_eq!(first["upToDate"], false, "{first}");
        let pushed = reg.requests()[start..].to_vec();
        assert_eq!(
            pushed.iter().filter(|l| *l == "GET /v2/").count(),
            1,
            "one ping per push: {pushed:#?}"
        );

        let start = reg.requests().len();
        let again = push_json(t.path(), &layout, &reference, &["--jobs", "4"]);
        let repush = reg.requests()[start..].to_vec();
        assert_eq!(writes(&repush), Vec::<String>::new(), "{repush:#?}");
        assert!(
            repush.len() <= 2,
            "a ping and one HEAD of the tag are enough: {repush:#?}"
        );
        assert_eq!(
            (
                &again["upToDate"],
                &again["manifests"],
                &again["uploaded"],
                &again["bytesSent"],
                &again["tags"]
            ),
            (
                &json!(true),
                &json!(0),
                &json!(0),
                &json!(0),
                &json!([{"tag": "v1", "action": "unchanged"}])
            ),
            "{again}"
        );
        assert_eq!(again["digest"], manifest_digest(&layout));

        // Another tag for an image the repository has: one write, the tag.
        let start = reg.requests().len();
        let other = push_json(
            t.path(),
            &layout,
            &reg.reference(&format!("{repo}:v2")),
            &[],
        );
        let retag = reg.requests()[start..].to_vec();
        assert_eq!(
            writes(&retag),
            vec![format!("PUT /v2/{repo}/manifests/v2")],
            "{retag:#?}"
        );
        assert_eq!(other["tags"], json!([{"tag": "v2", "action": "set"}]));
        assert_eq!(
            skopeo_raw_digest(&reg, &reg.reference(&format!("{repo}:v2"))),
            manifest_digest(&layout)
        );
    }
}

/// What a [`Hostile`] registry answers.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

enum Body {
    Bytes(Vec<u8>),
    /// 200 MB, streamed (never held in memory); with `declared`, a
    /// Content-Length says so up front.
    Endless {
        declared: bool,
    },
    /// One byte every 100 ms, for as long as the client reads.
    Drip,
}

const ENDLESS: u64 = 200 << 20;

/// A registry that lies, on 127.0.0.1: one thread per connection, replies
/// from `route(method, path)`, counting the body bytes it managed to send.
struct Hostile {
    port: u16,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Hostile {
    fn start(route: fn(u16, &str, &str, &str) -> Reply) -> Hostile {
        use std::io::Read;
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        // The accept loop ends with the test process.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let mut first = text.lines().next().unwrap_or_default().split(' ');
                    let method = first.next().unwrap_or_default().to_owned();
                    let path = first.next().unwrap_or_default().to_owned();
                    let reply = route(port, &method, &path, &text.to_lowercase());
                    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
                    for (k, v) in &reply.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    match &reply.body {
                        Body::Bytes(b) => out.push_str(&format!("Content-Length: {}\r\n", b.len())),
                        Body::Endless { declared: true } => {
                            out.push_str(&format!("Content-Length: {ENDLESS}\r\n"))
                        }
                        Body::Endless { declared: false } | Body::Drip => {}
                    }
                    out.push_str("\r\n");
                    if conn.write_all(out.as_bytes()).is_err() || method == "HEAD" {
                        return;
                    }
                    match reply.body {
                        Body::Bytes(b) => {
                            let _ = conn.write_all(&b);
                        }
                        Body::Drip => {
                            while conn.write_all(b" ").is_ok() {
                                counter.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                        Body::Endless { .. } => {
                            let chunk = vec![b' '; 64 << 10];
                            let mut n = 0;
                            while n < ENDLESS && conn.write_all(&chunk).is_ok() {
                                n += chunk.len() as u64;
                                counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
        });
        Hostile { port, sent }
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// Body bytes sent since the last call.
    fn take_sent(&self) -> u64 {
        self.sent.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

fn json_reply(status: u16, media_type: &str, body: Vec<u8>) -> Reply {
    Reply {
        status,
        headers: vec![
            ("Content-Type".into(), media_type.into()),
            (
                "Docker-Distribution-API-Version".into(),
                "registry/2.0".into(),
            ),
        ],
        body: Body::Bytes(body),
    }
}

/// The small config the `cfg` image's manifest names with its true digest
/// and size, and the blob route serves without end.
const CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

fn hostile_routes(_port: u16, _method: &str, path: &str, _head: &str) -> Reply {
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let endless = |status, declared| Reply {
        status,
        headers: vec![("Content-Type".into(), MANIFEST.into())],
        body: Body::Endless { declared },
    };
    let config_digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(CONFIG))
    );
    match path {
        "/v2/" => json_reply(200, "application/json", b"{}".to_vec()),
        "/v2/big/manifests/latest" => endless(200, false),
        "/v2/declared/manifests/latest" => endless(200, true),
        "/v2/err/manifests/latest" => endless(404, false),
        "/v2/cfg/manifests/latest" => json_reply(
            200,
            MANIFEST,
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": CONFIG.len()},
                "layers": []
            }))
            .unwrap(),
        ),
        p if p.starts_with("/v2/cfg/blobs/") => endless(200, false),
        // A config or a layer declaring more than can be: refused before
        // any blob is asked for.
        "/v2/hugecfg/manifests/latest" | "/v2/hugelayer/manifests/latest" => {
            let huge = 1u64 << 40;
            let (config_size, layer_size) = if path.contains("hugecfg") {
                (huge, 1)
            } else {
                (CONFIG.len() as u64, huge << 10)
            };
            json_reply(
                200,
                MANIFEST,
                serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{}", "1".repeat(64)), "size": layer_size}]
                }))
                .unwrap(),
            )
        }
        p if p.starts_with("/v2/hugecfg/blobs/") || p.starts_with("/v2/hugelayer/blobs/") => {
            endless(200, false)
        }
        "/v2/drip/manifests/latest" => Reply {
            status: 200,
            headers: vec![("Content-Type".into(), MANIFEST.into())],
            body: Body::Drip,
        },
        _ => json_reply(404, "application/json", br#"{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}"#.to_vec()),
    }
}

fn token_routes(port: u16, _method: &str, path: &str, _head: &str) -> Reply {
    if path == "/v2/" {
        return Reply {
            status: 401,
            headers: vec![(
                "WWW-Authenticate".into(),
                format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"hostile\""),
            )],
            body: Body::Bytes(b"{}".to_vec()),
        };
    }
    if path.starts_with("/token") {
        return Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Endless { declared: false },
        };
    }
    json_reply(404, "application/json", b"{}".to_vec())
}

/// Issue "Defects found trying nixoci as a new user would": `pull` read a
/// 200 MB manifest whole from a hostile registry. Every document read from
/// the network is bounded by the limits `verify` uses (16 MiB for
/// manifests, indexes and configs, the descriptor's size for a config),
/// token responses and error bodies too; the error names the reference and
/// the limit, and nothing is written.
#[test]
fn hostile_registry_documents_are_bounded() {
    let evil = Hostile::start(hostile_routes);
    let t = tempfile::tempdir().unwrap();
    let pulled = t.path().join("pulled");
    let check = |cmd: &str, reference: &str, expect: &[&str]| {
        let mut c = tool(t.path());
        c.arg(cmd).arg(reference);
        match cmd {
            "pull" => c.arg(&pulled),
            "tag" => c.arg("other"),
            _ => &mut c,
        };
        let out = output_within(&mut c, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        let sent = evil.take_sent();
        assert!(!out.status.success(), "{cmd} {reference}: succeeded");
        for e in expect {
            assert!(err.contains(e), "{cmd} {reference}: no {e:?} in: {err}");
        }
        assert!(
            sent < 48 << 20,
            "{cmd} {reference}: the server sent {sent} bytes before nixoci stopped reading"
        );
        let written: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("pulled"))
            .collect();
        assert!(written.is_empty(), "written: {written:?}");
    };
    let limit = "16 MiB";
    // A manifest without end, with and without a Content-Length saying so.
    for repo in ["big", "declared"] {
        let r = evil.reference(&format!("{repo}:latest"));
        for cmd in ["pull", "inspect", "tag", "exists"] {
            check(cmd, &r, &[&r, limit]);
        }
    }
    // An error body without end: still "not found", read only in part.
    let r = evil.reference("err:latest");
    check("pull", &r, &["not found"]);
    let out = output_within(
        tool(t.path()).arg("pull").arg(&r).arg(&pulled),
        Duration::from_secs(60),
    );
    assert!(
        out.stderr.len() < 2000,
        "a long error: {} bytes",
        out.stderr.len()
    );
    // A config without end behind a manifest that gives its true size.
    let r = evil.reference("cfg:latest");
    check(
        "inspect",
        &r,
        &["config", &format!("{} bytes", CONFIG.len())],
    );
    check(
        "pull",
        &r,
        &[&format!("{} bytes", CONFIG.len()), "found more"],
    );

    // A config declaring 1 TiB, and layers declaring more than the disk
    // holds: refused before anything is fetched or written.
    let r = evil.reference("hugecfg:latest");
    check("pull", &r, &["config", limit]);
    let r = evil.reference("hugelayer:latest");
    check("pull", &r, &["free", "refused before writing"]);
    // A manifest dripping a byte at a time: stopped by the deadline.
    let r = evil.reference("drip:latest");
    let out = output_within(
        tool(t.path())
            .env("NIXOCI_DOCUMENT_TIMEOUT", "2")
            .arg("inspect")
            .arg(&r),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("did not arrive within 2 s") && err.contains(&r),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(24), "a timeout: {err}");

    // A local server answering /v2/ with a 500 over plain HTTP: that
    // status is what the error reports, not a failed TLS handshake.
    let broken = Hostile::start(|_, _, _, _| Reply {
        status: 500,
        headers: vec![],
        body: Body::Bytes(b"internal error".to_vec()),
    });
    let out = output_within(
        tool(t.path())
            .arg("inspect")
            .arg(broken.reference("app:latest"))
            .args(["--retries", "0"]),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("500") && !err.contains("tls"), "{err}");

    // A token endpoint that never stops.
    let token = Hostile::start(token_routes);
    let r = token.reference("app:latest");
    let out = output_within(
        tool(t.path()).arg("pull").arg(&r).arg(&pulled),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("token") && err.contains("1 MiB") && err.contains(&token.reference("")),
        "{err}"
    );
    assert!(token.take_sent() < 48 << 20);
    assert!(!pulled.exists());
}

/// A registry with token auth: the token from the realm is what opens the
/// manifests and blobs (the requests nixoci now makes itself).
fn bearer_routes(port: u16, method: &str, path: &str, head: &str) -> Reply {
    let challenge = || Reply {
        status: 401,
        headers: vec![(
            "WWW-Authenticate".into(),
            format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"t\""),
        )],
        body: Body::Bytes(br#"{"errors":[{"code":"UNAUTHORIZED","message":"token"}]}"#.to_vec()),
    };
    if path == "/v2/" {
        return challenge();
    }
    if path.starts_with("/token?") {
        assert!(path.contains("scope=repository%3Aapp%3Apull"), "{path}");
        return json_reply(200, "application/json", br#"{"token":"t0k-abc"}"#.to_vec());
    }
    if !head.contains("\r\nauthorization: bearer t0k-abc\r\n") {
        return challenge();
    }
    let mut reply = hostile_routes(port, method, &path.replace("/v2/app/", "/v2/cfg/"), head);
    if path.starts_with("/v2/app/blobs/") {
        reply.body = Body::Bytes(CONFIG.to_vec());
    }
    reply
}

#[test]
fn bearer_token_from_the_realm_opens_manifests_and_blobs() {
    let reg = Hostile::start(bearer_routes);
    let t = tempfile::tempdir().unwrap();
    let r = reg.reference("app:latest");
    let out = run(tool(t.path()).arg("inspect").arg(&r).arg("--json"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v[0]["images"][0]["config"],
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(CONFIG))
        )
    );
    run(tool(t.path()).arg("exists").arg(&r));
}

/// A layout records every tag (and, with platformTags, each platform's
/// tag) beside its one index.json descriptor; a push to a repository
/// without a tag sets them all, each naming the right digest, and a
/// re-push writes nothing.
#[test]
fn push_without_a_tag_sets_every_tag_the_layout_records() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    two_platform_layout(t.path(), "unused");
    write_json(
        &t.path().join("tagged.json"),
        &json!({"manifests": ["amd64", "arm64"], "tags": ["latest", "2.0"], "platformTags": true}),
    );
    let layout = t.path().join("tagged");
    run(nixoci()
        .arg("layout")
        .arg(t.path().join("tagged.json"))
        .arg("-o")
        .arg(&layout)
        .arg("-q"));
    assert_crane_accepts(&layout);
    let index = read_json(&blob_path(&layout, &manifest_digest(&layout)));
    let child = |i: usize| index["manifests"][i]["digest"].as_str().unwrap().to_owned();
    let expected = [
        ("latest", manifest_digest(&layout)),
        ("2.0", manifest_digest(&layout)),
        ("latest-linux-amd64", child(0)),
        ("latest-linux-arm64", child(1)),
        ("2.0-linux-amd64", child(0)),
        ("2.0-linux-arm64", child(1)),
    ];
    let repo = reg.reference("every/tag");
    let first = push_json(t.path(), &layout, &repo, &[]);
    let set: Vec<Value> = expected
        .iter()
        .map(|(tag, _)| json!({"tag": tag, "action": "set"}))
        .collect();
    assert_eq!(first["tags"], json!(set), "{first}");
    for (tag, digest) in &expected {
        assert_eq!(
            skopeo_raw_digest(&reg, &format!("{repo}:{tag}")),
            *digest,
            "{tag}"
        );
    }
    let start = reg.requests().len();
    let again = push_json(t.path(), &layout, &repo, &[]);
    let repush = reg.requests()[start..].to_vec();
    assert!(
        repush
            .iter()
            .all(|l| l.starts_with("GET ") || l.starts_with("HEAD ")),
        "{repush:#?}"
    );
    assert_eq!(again["upToDate"], true, "{again}");
    // A tag in the destination sets that tag only.
    let one = push_json(t.path(), &layout, &format!("{repo}:only"), &[]);
    assert_eq!(one["tags"], json!([{"tag": "only", "action": "set"}]));
}

/// The `blobs` of a push or pull `--json` report are listed in digest
/// order, whatever order the parallel transfers ended in, so two runs
/// report alike.
#[test]
fn transfer_reports_list_blobs_in_digest_order() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "ordered", 11, 12, 50_000);
    let reference = reg.reference("ordered:v1");
    let digests = |report: &Value| -> Vec<String> {
        report["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    push_json(t.path(), &layout, &reference, &[]);
    // A second image on the same base: its base layer is skipped (the
    // registry has it), the rest uploaded; skipped blobs used to be listed
    // first.
    let second = image(t.path(), "second", 11, 13, 50_000);
    let report = push_json(
        t.path(),
        &second,
        &reg.reference("ordered:v2"),
        &["--jobs", "4"],
    );
    assert_eq!(
        (report["skipped"].as_u64(), report["uploaded"].as_u64()),
        (Some(1), Some(2))
    );
    let pushed = digests(&report);
    let mut sorted = pushed.clone();
    sorted.sort();
    assert_eq!(pushed, sorted);
    let reference = reg.reference("ordered:v2");
    let out = run(tool(t.path())
        .arg("pull")
        .arg(&reference)
        .arg(t.path().join("pulled"))
        .arg("--json"));
    let pulled = digests(&serde_json::from_slice(&out.stdout).unwrap());
    assert_eq!(pulled, sorted);
}

/// `nixoci attach` and `nixoci referrers` on registry 2.8 (no referrers
/// API: the fallback tag): two artifacts attached and listed, filtered by
/// type; an artifact manifest as OCI 1.1 has it (artifactType, the empty
/// config, titled files, subject); the same attachment again lists it once
/// and writes nothing but the manifest; a malformed media type, a
/// directory and two files of one name are refused before anything is
/// sent.
#[test]
fn attach_and_list_referrers() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 1, 2, 1000);
    let reference = reg.reference("ref/app:1");
    push_json(t.path(), &layout, &reference, &[]);
    let subject = manifest_digest(&layout);
    let sig = t.path().join("sig.json");
    fs::write(&sig, "{\"signed\": true}\n").unwrap();
    let report_txt = t.path().join("report.txt");
    fs::write(&report_txt, "all tests passed\n").unwrap();
    let attach = |args: &[&str]| -> Value {
        let out = run(tool(t.path())
            .arg("attach")
            .arg(&reference)
            .args(args)
            .arg("--json"));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let sig_arg = format!("{}:application/json", sig.display());
    let first = attach(&[
        "--artifact-type",
        "application/vnd.example.sig",
        &sig_arg,
        "--annotation",
        "k=v",
    ]);
    assert_eq!(first["subject"], json!(subject));
    assert_eq!(first["listed"], json!("fallback"));
    let second = attach(&[
        "--artifact-type",
        "text/plain",
        report_txt.to_str().unwrap(),
    ]);
    assert_eq!(second["listed"], json!("fallback"));

    // The artifact manifest, as the registry holds it.
    let m = run(Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!(
            "http://{}/v2/ref/app/manifests/{}",
            reg.host(),
            first["digest"].as_str().unwrap()
        )));
    let m: Value = serde_json::from_slice(&m.stdout).unwrap();
    assert_eq!(m["artifactType"], json!("application/vnd.example.sig"));
    assert_eq!(
        m["config"]["mediaType"],
        json!("application/vnd.oci.empty.v1+json")
    );
    assert_eq!(m["config"]["size"], json!(2));
    assert_eq!(m["subject"]["digest"], json!(subject));
    assert_eq!(m["layers"][0]["mediaType"], json!("application/json"));
    assert_eq!(
        m["layers"][0]["annotations"]["org.opencontainers.image.title"],
        json!("sig.json")
    );
    assert_eq!(m["annotations"]["k"], json!("v"));

    let list = |extra: &[&str]| -> Value {
        let out = run(tool(t.path())
            .arg("referrers")
            .arg(&reference)
            .args(extra)
            .arg("--json"));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let all = list(&[]);
    assert_eq!(all["source"], json!("fallback"));
    assert_eq!(all["manifests"].as_array().unwrap().len(), 2, "{all}");
    let sigs = list(&["--artifact-type", "application/vnd.example.sig"]);
    assert_eq!(sigs["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(sigs["manifests"][0]["digest"], first["digest"]);
    assert_eq!(sigs["manifests"][0]["annotations"]["k"], json!("v"));

    // Again: listed once.
    let again = attach(&[
        "--artifact-type",
        "application/vnd.example.sig",
        &sig_arg,
        "--annotation",
        "k=v",
    ]);
    assert_eq!(again["digest"], first["digest"]);
    assert_eq!(again["listed"], json!("unchanged"));
    assert_eq!(list(&[])["manifests"].as_array().unwrap().len(), 2);

    // pull --referrers brings them into the layout, which verifies, and a
    // push of it to another repository carries them along.
    let pulled = t.path().join("pulled");
    let out = run(tool(t.path())
        .arg("pull")
        .arg(&reference)
        .arg(&pulled)
        .args(["--referrers", "--json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["referrers"].as_array().unwrap().len(), 2, "{report}");
    // index.json keeps the image alone (crane push takes it); the
    // referrers are in the layout nested at referrers/, after the image.
    let index = read_json(&pulled.join("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    let nested = read_json(&pulled.join("referrers/index.json"));
    assert_eq!(nested["manifests"].as_array().unwrap().len(), 3, "{nested}");
    assert_eq!(nested["manifests"][0], index["manifests"][0]);
    run(tool(t.path()).arg("verify").arg(&pulled));
    let copy = reg.reference("ref/copy:1");
    let pushed = push_json(t.path(), &pulled, &copy, &[]);
    assert_eq!(pushed["referrers"].as_array().unwrap().len(), 2, "{pushed}");
    let copied = run(tool(t.path()).arg("referrers").arg(&copy).arg("--json"));
    let copied: Value = serde_json::from_slice(&copied.stdout).unwrap();
    let digests = |v: &Value| -> Vec<Value> {
        let mut d: Vec<Value> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].clone())
            .collect();
        d.sort_by_key(|x| x.to_string());
        d
    };
    assert_eq!(digests(&copied), digests(&list(&[])));

    // Refused before anything is sent.
    let bad_name = t.path().join("bad\nname");
    fs::write(&bad_name, "x").unwrap();
    let before = reg.log().lines().count();
    let err = run_fail(
        tool(t.path())
            .arg("attach")
            .arg(&reference)
            .args(["--artifact-type", "a/b"])
            .arg(&bad_name),
    );
    assert!(
        err.contains("artifact file name") && err.contains("control character"),
        "{err}"
    );
    let err = run_fail(
        tool(t.path())
            .args(["artifact", "push"])
            .arg(reg.reference("ref/bad:1"))
            .arg(&bad_name),
    );
    assert!(
        err.contains("artifact file name") && err.contains("control character"),
        "{err}"
    );
    for (args, want) in [
        (
            vec!["--artifact-type", "not a type", sig.to_str().unwrap()],
            "is not type/subtype",
        ),
        (
            vec!["--artifact-type", "a/b", t.path().to_str().unwrap()],
            "not a regular file",
        ),
        (
            vec![
                "--artifact-type",
                "a/b",
                sig.to_str().unwrap(),
                sig.to_str().unwrap(),
            ],
            "two files are named \"sig.json\"",
        ),
        (
            vec![
                "--artifact-type",
                "a/b",
                &format!("{}:text/plain; charset=utf-8", sig.display()),
            ],
            "is not type/subtype",
        ),
    ] {
        let err = run_fail(tool(t.path()).arg("attach").arg(&reference).args(&args));
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let after: Vec<String> = reg.log().lines().skip(before).map(str::to_owned).collect();
    assert!(
        !after
            .iter()
            .any(|l| l.contains("\"PUT ") || l.contains("\"POST ")),
        "sent: {after:?}"
    );
}

/// The manifest PUTs of referrers fallback tags (`/manifests/sha256-…`)
/// among a registry's requests.
fn fallback_tag_writes(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("/manifests/sha256-"))
        .collect()
}

/// The artifact type of each referrer a layout records, by digest: the
/// descriptors with an `artifactType` in `index.json`, and in the nested
/// referrers layout's (`referrers/index.json`) when there is one.
fn recorded_artifact_types(layout: &Path) -> std::collections::BTreeMap<String, String> {
    ["index.json", "referrers/index.json"]
        .iter()
        .map(|f| layout.join(f))
        .filter(|f| f.is_file())
        .flat_map(|f| read_json(&f)["manifests"].as_array().unwrap().clone())
        .filter_map(|d| {
            let t = d["artifactType"].as_str()?.to_owned();
            Some((d["digest"].as_str().unwrap().to_owned(), t))
        })
        .collect()
}

/// With a registry that keeps referrers (go-containerregistry's, which
/// serves the referrers API but answers no `OCI-Subject`), nixoci uses its
/// API and writes no fallback tag: a layout's SBOMs on `push` and `attach`
/// are reported `api` (the registry's referrers API answered, asked once
/// per repository), `referrers` and `pull --referrers` read the API, with
/// each referrer's own artifact type (that registry lists the config's
/// media type, the empty one, and ignores the `artifactType` filter), and
/// a second push writes nothing.
#[test]
fn the_referrers_api_when_the_registry_has_one() {
    let reg = common::peers::ReferrersRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let layout = image(t.path(), "app", 3, 4, 1000);
    for format in ["spdx", "cyclonedx"] {
        run(tool(t.path())
            .arg("sbom")
            .arg(&layout)
            .args(["--attach", "--format", format]));
    }
    let via = |repo: &str| reg.reference(repo);
    let pushed = push_json(t.path(), &layout, &via("api/app:1"), &[]);
    let subject = pushed["digest"].as_str().unwrap().to_owned();
    let referrers = pushed["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 2, "{pushed}");
    for r in referrers {
        assert_eq!(r["listed"], json!("api"), "{pushed}");
    }
    let probes = |requests: &[String]| {
        requests
            .iter()
            .filter(|r| r.starts_with("GET /v2/api/app/referrers/"))
            .count()
    };
    assert_eq!(probes(&reg.requests()), 1, "{:#?}", reg.requests());
    // A second push writes nothing.
    let writes = reg.writes().len();
    let again = push_json(t.path(), &layout, &via("api/app:1"), &[]);
    assert_eq!(again["upToDate"], json!(true), "{again}");
    assert_eq!(reg.writes()[writes..], [] as [String; 0]);
    let note = t.path().join("note.txt");
    fs::write(&note, "attached\n").unwrap();
    let out = run(tool(t.path())
        .arg("attach")
        .arg(via("api/app:1"))
        .args(["--artifact-type", "text/plain"])
        .arg(&note)
        .arg("--json"));
    let attached: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(attached["listed"], json!("api"), "{attached}");
    assert_eq!(attached["subject"], json!(subject), "{attached}");
    // Listed by the registry, each with its own type; filtered here.
    let list = |filter: &[&str]| -> Value {
        let out = run(tool(t.path())
            .arg("referrers")
            .arg(via("api/app:1"))
            .args(filter)
            .arg("--json"));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let all = list(&[]);
    assert_eq!(all["source"], json!("api"), "{all}");
    let mut types: Vec<&str> = all["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.cyclonedx+json",
            "text/plain"
        ],
        "{all}"
    );
    for (filter, want) in [
        ("text/plain", vec![attached["digest"].clone()]),
        (
            "application/spdx+json",
            referrers
                .iter()
                .filter(|r| r["artifactType"] == json!("application/spdx+json"))
                .map(|r| r["digest"].clone())
                .collect(),
        ),
        ("application/vnd.oci.empty.v1+json", vec![]),
    ] {
        let listed = list(&["--artifact-type", filter]);
        assert_eq!(listed["source"], json!("api"), "{listed}");
        let digests: Vec<Value> = listed["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].clone())
            .collect();
        assert_eq!(digests, want, "{filter}: {listed}");
    }
    // pull --referrers through the API: the layout records each
    // referrer's own type; pushed elsewhere, the registry lists them.
    let pulled = t.path().join("pulled");
    let out = run(tool(t.path())
        .arg("pull")
        .arg(via("api/app:1"))
        .arg(&pulled)
        .args(["--referrers", "--json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["referrersApi"], json!(true), "{report}");
    assert_eq!(report["referrers"].as_array().unwrap().len(), 3, "{report}");
    let recorded = recorded_artifact_types(&pulled);
    for m in all["manifests"].as_array().unwrap() {
        assert_eq!(
            recorded
                .get(m["digest"].as_str().unwrap())
                .map(String::as_str),
            m["artifactType"].as_str(),
            "{recorded:?}"
        );
    }
    let copied = push_json(t.path(), &pulled, &via("api/copy:1"), &[]);
    let listed: Vec<&Value> = copied["referrers"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 3, "{copied}");
    assert!(
        listed.iter().all(|r| r["listed"] == json!("api")),
        "{copied}"
    );
    // Again: the registry lists them already; nothing is written.
    let writes = reg.writes().len();
    let again = push_json(t.path(), &pulled, &via("api/copy:1"), &[]);
    assert_eq!(again["upToDate"], json!(true), "{again}");
    assert!(
        again["referrers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["listed"] == json!("unchanged")),
        "{again}"
    );
    assert_eq!(reg.writes()[writes..], [] as [String; 0]);
    assert_eq!(fallback_tag_writes(&reg.requests()), Vec::<&String>::new());
}
