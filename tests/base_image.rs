//! Base images from a registry: `nixoci prefetch` and `ociPullImage` (a
//! fixed-output derivation run by Nix 2.8 in its sandbox) against a real
//! registry on 127.0.0.1, plain, and with TLS from a private CA and
//! credentials.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::{Registry, Setup, PASSWORD, USER};
use common::*;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A one-layer busybox image (`/bin/busybox`, echoing `words`), built by
/// `nixoci build` into `dir/name`.
fn busybox_image(dir: &Path, name: &str, words: &str) -> PathBuf {
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({
            "layers": [{"files": [{"source": busybox(), "destination": "/bin/busybox"}]}],
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/bin/busybox", "echo", words], "Env": ["BASE=1"]},
        }),
    );
    build(&spec, &dir.join(name))
}

fn push(layout: impl AsRef<std::ffi::OsStr>, reference: &str, extra: &[&str]) {
    run(nixoci()
        .arg("push")
        .arg(layout.as_ref())
        .arg(reference)
        .args(extra)
        .arg("-q"));
}

/// `nixoci prefetch REF --json` with `extra` arguments and environment.
fn prefetch(reference: &str, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let out = run(nixoci()
        .arg("prefetch")
        .arg(reference)
        .args(extra)
        .arg("--json")
        .envs(env.iter().copied()));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A name no earlier run used: a fixed-output derivation of the same name
/// and hash is never built again, and each run must really pull.
fn fresh_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// `nix-build tests/nix/base.nix -A pulled` with the prefetched arguments.
fn pull_in_nix(args: &Value, name: &str, ca: Option<&Path>, env: &[(&str, &str)]) -> Output {
    build_on(args, name, ca, env, "pulled", None)
}

/// `nix-build tests/nix/base.nix -A attr` over the base the prefetched
/// arguments name (`otherBase`: an archive or layout path).
fn build_on(
    args: &Value,
    name: &str,
    ca: Option<&Path>,
    env: &[(&str, &str)],
    attr: &str,
    other: Option<&Path>,
) -> Output {
    let mut c = nix_command("nix-build");
    c.current_dir(repo())
        .arg("tests/nix/base.nix")
        .arg("--arg")
        .arg("tool")
        .arg(env!("CARGO_BIN_EXE_nixoci"))
        .args(["--argstr", "name", name])
        .arg("--no-out-link")
        .args(["-A", attr])
        .envs(env.iter().copied());
    if let Some(o) = other {
        c.arg("--arg").arg("otherBase").arg(o);
    }
    for key in ["imageName", "imageDigest", "hash", "os", "arch", "variant"] {
        if let Some(v) = args[key].as_str() {
            c.args(["--argstr", key, v]);
        }
    }
    if args["allPlatforms"] == json!(true) {
        c.args(["--arg", "allPlatforms", "true"]);
    }
    if let Some(ca) = ca {
        // A Nix path: copied to the store, so the sandbox sees it.
        c.arg("--arg").arg("caFile").arg(ca);
    }
    c.output().unwrap()
}

fn built(out: &Output) -> PathBuf {
    assert!(
        out.status.success(),
        "nix-build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout.clone()).unwrap().trim())
}

fn nix_hash(path: &Path) -> String {
    let out = run(nix_command("nix").args(["hash", "path"]).arg(path));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn index_digest(layout: &Path) -> String {
    read_json(&layout.join("index.json"))["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Prefetch prints the image's digest and the hash Nix computes of the
/// layout a pull writes; ociPullImage pulls it in the sandbox; a second
/// pull into another store path gives the same bytes. From a
/// multi-platform image, the platform's image is pinned, not the index
/// (unless every platform is asked for).
#[test]
fn prefetch_then_pull_in_nix_by_digest() {
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let image = busybox_image(t.path(), "bb", "from the base");
    let reference = reg.reference("base/busybox:1");
    push(&image, &reference, &[]);

    let args = prefetch(&reference, &[], &[]);
    assert_eq!(args["imageName"], json!(reg.reference("base/busybox")));
    assert_eq!(args["imageDigest"], json!(index_digest(&image)));
    assert_eq!(args["os"], json!("linux"));
    assert_eq!(args["arch"], json!("amd64"));
    assert_eq!(args["layers"], json!(1));
    let first = built(&pull_in_nix(&args, &fresh_name("bb"), None, &[]));
    let second = built(&pull_in_nix(&args, &fresh_name("bb-again"), None, &[]));
    assert_ne!(first, second);
    assert_eq!(nix_hash(&first), args["hash"].as_str().unwrap());
    assert_eq!(nix_hash(&second), args["hash"].as_str().unwrap());
    run(nixoci().arg("verify").arg(&first));
    assert_eq!(index_digest(&first), index_digest(&image));
    // The registry's bytes: every blob of the pushed layout, as it was.
    assert_eq!(blobs(&first), blobs(&image));

    // The text form is the Nix attribute set to paste.
    let text = run(nixoci().arg("prefetch").arg(&reference));
    let text = String::from_utf8(text.stdout).unwrap();
    for key in ["imageName", "imageDigest", "hash", "os", "arch"] {
        let line = format!("  {key} = \"{}\";", args[key].as_str().unwrap());
        assert!(text.contains(&line), "{line} in\n{text}");
    }

    // Two platforms: each pins its own image; all of them pins the index.
    let multi = two_platform_layout(t.path(), "multi");
    let multi_ref = reg.reference("base/multi:1");
    push(format!("{}:multi", multi.display()), &multi_ref, &[]);
    let index = read_json(&blob_path(&multi, &index_digest(&multi)));
    let digest_of = |arch: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == json!(arch))
            .unwrap()["digest"]
            .clone()
    };
    let arm = prefetch(&multi_ref, &["--platform", "linux/arm64"], &[]);
    assert_eq!(arm["imageDigest"], digest_of("arm64"));
    assert_eq!(
        (&arm["os"], &arm["arch"]),
        (&json!("linux"), &json!("arm64"))
    );
    // This machine's platform by default.
    let host = prefetch(&multi_ref, &[], &[]);
    assert_eq!(host["imageDigest"], digest_of("amd64"));
    let all = prefetch(&multi_ref, &["--all-platforms"], &[]);
    assert_eq!(all["imageDigest"], json!(index_digest(&multi)));
    assert_eq!(all["allPlatforms"], json!(true));
    for args in [&arm, &all] {
        let out = built(&pull_in_nix(args, &fresh_name("multi"), None, &[]));
        assert_eq!(nix_hash(&out), args["hash"].as_str().unwrap());
        assert_eq!(json!(index_digest(&out)), args["imageDigest"]);
        run(nixoci().arg("verify").arg(&out));
    }
    // An image for arm64 on the whole index takes the arm64 image.
    let name = fresh_name("all");
    let arm_image = built(&build_on(&all, &name, None, &[], "onArm", None));
    run(nixoci().arg("verify").arg(&arm_image));
    let m = manifest_of(&arm_image);
    assert_eq!(
        m["annotations"]["org.opencontainers.image.base.digest"],
        arm["imageDigest"]
    );
    assert_eq!(config_of(&arm_image)["architecture"], json!("arm64"));
    // A platform the index lacks is an error naming it.
    let err = run_fail(
        nixoci()
            .arg("prefetch")
            .arg(&multi_ref)
            .args(["--platform", "linux/s390x"]),
    );
    assert!(err.contains("s390x"), "{err}");
    // An artifact, pinned the same way: into the Nix store, and out again
    // as its files.
    let files = t.path().join("artifact-in");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("report.txt"), "all green\n").unwrap();
    let art_ref = reg.reference("base/report:1");
    run(nixoci()
        .args(["artifact", "push"])
        .arg(&art_ref)
        .arg(format!("{}:text/plain", files.join("report.txt").display()))
        .arg("-q"));
    let art = prefetch(&art_ref, &[], &[]);
    assert!(
        art.get("os").is_none() && art.get("arch").is_none(),
        "{art}"
    );
    let stored = built(&pull_in_nix(&art, &fresh_name("report"), None, &[]));
    assert_eq!(nix_hash(&stored), art["hash"].as_str().unwrap());
    let out = t.path().join("artifact-out");
    run(nixoci().arg("unpack").arg(&stored).arg(&out).arg("-q"));
    assert_eq!(fs::read(out.join("report.txt")).unwrap(), b"all green\n");
    // A wrong hash fails the build and names the right one, as Nix does.
    let mut wrong = args.clone();
    wrong["hash"] = json!("sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let out = pull_in_nix(&wrong, &fresh_name("wrong"), None, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(args["hash"].as_str().unwrap()), "{err}");
}

/// A registry with TLS from a private CA and htpasswd auth: ociPullImage
/// pulls with `caFile` and the credentials from NIXOCI_CREDS (passed
/// through impureEnvVars, never written to the store); without the CA it
/// fails on the certificate, without credentials on the authentication, and
/// the password never shows.
#[test]
fn pull_in_nix_from_a_private_ca_with_credentials() {
    let reg = Registry::start(Setup {
        htpasswd: true,
        tls: true,
    });
    let ca = reg.dir.path().join("ca.pem");
    let creds = format!("{USER}:{PASSWORD}");
    let t = tempfile::tempdir().unwrap();
    let image = busybox_image(t.path(), "bb", "over tls");
    let reference = reg.reference("private/busybox:1");
    let ca_arg = ca.to_str().unwrap();
    push(
        &image,
        &reference,
        &["--ca-file", ca_arg, "--creds", &creds],
    );
    let env = [("NIXOCI_CREDS", creds.as_str())];
    let args = prefetch(&reference, &["--ca-file", ca_arg], &env);
    assert_eq!(args["imageDigest"], json!(index_digest(&image)));

    let out = built(&pull_in_nix(&args, &fresh_name("tls"), Some(&ca), &env));
    assert_eq!(nix_hash(&out), args["hash"].as_str().unwrap());
    assert_eq!(blobs(&out), blobs(&image));
    // The store holds no credentials: not in the derivation, not in the
    // output.
    let drv = run(nix_command("nix-store")
        .args(["--query", "--deriver"])
        .arg(&out));
    let drv = String::from_utf8(drv.stdout).unwrap();
    let drv_text = fs::read_to_string(drv.trim()).unwrap_or_default();
    assert!(!drv_text.contains(PASSWORD));
    assert!(
        drv_text.contains("NIXOCI_CREDS"),
        "impureEnvVars: {drv_text}"
    );

    let no_ca = pull_in_nix(&args, &fresh_name("tls-no-ca"), None, &env);
    assert!(!no_ca.status.success());
    let err = String::from_utf8_lossy(&no_ca.stderr);
    // The sandbox has no CA roots: the built-in public ones are trusted
    // (without them the client could not even start), and they do not
    // include the private CA.
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("No CA certificates"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD));
    // The same outside Nix, with the system's roots hidden.
    let pulled = t.path().join("pulled");
    run(nixoci()
        .arg("pull")
        .arg(&reference)
        .arg(&pulled)
        .args(["--ca-file", ca_arg, "-q"])
        .envs(env)
        .env("SSL_CERT_FILE", t.path().join("no-such-bundle.pem"))
        .env("SSL_CERT_DIR", t.path().join("no-such-dir")));
    assert_eq!(blobs(&pulled), blobs(&image));
    let no_creds = pull_in_nix(&args, &fresh_name("tls-no-creds"), Some(&ca), &[]);
    assert!(!no_creds.status.success());
    let err = String::from_utf8_lossy(&no_creds.stderr);
    assert!(
        err.contains("refused the credentials (anonymously)"),
        "{err}"
    );
    assert!(
        err.contains("NIXOCI_CREDS"),
        "the message names the way to give them: {err}"
    );
}

/// The hash prefetch prints is Nix's own hash of the tree (`nix hash
/// path`, and the NAR `nix-store --dump` writes, byte for byte), for
/// files, executables, symbolic links, hard links, empty directories, long
/// and non-UTF-8 names.
#[test]
fn nar_hash_is_the_nix_hash_of_the_tree() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("tree");
    make_fixture(&root, FixtureOptions::default());
    let mut ours = Vec::new();
    nixoci::test_support::nar_dump(&root, &mut ours).unwrap();
    let theirs = run(nix_command("nix-store").arg("--dump").arg(&root)).stdout;
    assert!(ours == theirs, "the NAR differs from nix-store --dump's");
    let hash = nixoci::test_support::nar_hash(&root).unwrap();
    assert_eq!(nixoci::test_support::nar_sri(&hash), nix_hash(&root));
}

/// A usr-merged busybox base (`/bin -> usr/bin`, `/tmp` 1777) with
/// settings of every kind in its config, built by `nixoci build` into
/// `dir/name`.
fn usr_merged_base(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(format!("{name}-root"));
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::copy(busybox(), root.join("usr/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/motd"), "from the base\n").unwrap();
    let spec = dir.join(format!("{name}.json"));
    write_json(
        &spec,
        &json!({
            "layers": [
                {"files": [{"source": root, "destination": "/"}]},
                {"files": [{"source": root.join("tmp"), "destination": "/tmp", "mode": "1777"}]},
            ],
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
                "Cmd": ["/bin/busybox", "sh"],
                "WorkingDir": "/tmp",
                "User": "0",
                "Labels": {"base": "yes", "layer": "base"},
                "ExposedPorts": ["8080/tcp"],
                "Volumes": ["/data"],
                "StopSignal": "SIGTERM",
            },
        }),
    );
    build(&spec, &dir.join(name))
}

fn manifest_of(layout: &Path) -> Value {
    read_json(&blob_path(layout, &index_digest(layout)))
}

fn config_of(layout: &Path) -> Value {
    let m = manifest_of(layout);
    read_json(&blob_path(layout, m["config"]["digest"].as_str().unwrap()))
}

fn layer_digests(layout: &Path) -> Vec<Value> {
    manifest_of(layout)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect()
}

/// An image built with Nix onto a base pulled by ociPullImage: the base's
/// layers first, byte for byte; its config inherited field by field, the
/// new settings winning; the base recorded in the annotations; it runs in
/// podman, the base's busybox reading the new layer's file. A layer
/// through the base's /bin link is refused, naming the base layer and
/// the path, and placed through the link with baseSymlinks = "follow"
/// (umoci unpack shows it). A budget the base's layers exhaust is named.
#[test]
fn nix_image_on_a_pulled_base() {
    require("umoci");
    let mut reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let base = usr_merged_base(t.path(), "base");
    let reference = reg.reference("base/merged:1");
    push(&base, &reference, &[]);
    let args = prefetch(&reference, &[], &[]);
    let base_layers = layer_digests(&base);
    // Fetched once; from then on everything builds offline.
    let name = fresh_name("pulled");
    built(&pull_in_nix(&args, &name, None, &[]));
    reg.stop();

    let image = built(&build_on(&args, &name, None, &[], "onBase", None));
    run(nixoci().arg("verify").arg(&image));
    let layers = layer_digests(&image);
    assert_eq!(layers[..base_layers.len()], base_layers[..]);
    assert!(layers.len() > base_layers.len());
    let annotations = &manifest_of(&image)["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.base.name"],
        args["imageName"]
    );
    assert_eq!(
        annotations["org.opencontainers.image.base.digest"],
        args["imageDigest"]
    );
    let c = &config_of(&image)["config"];
    assert_eq!(
        c["Env"],
        json!(["PATH=/usr/bin:/bin", "GREETING=hi", "NEW=1"])
    );
    assert_eq!(
        c["Entrypoint"],
        json!(["/bin/busybox", "cat", "/usr/share/hello.txt"])
    );
    assert_eq!(
        c.get("Cmd"),
        None,
        "an Entrypoint without Cmd drops the base's Cmd"
    );
    assert_eq!(c["WorkingDir"], json!("/tmp"));
    assert_eq!(c["User"], json!("0"));
    assert_eq!(c["Labels"], json!({"base": "yes", "layer": "new"}));
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(c["Volumes"], json!({"/data": {}}));
    assert_eq!(c["StopSignal"], json!("SIGTERM"));
    let history = config_of(&image)["history"].as_array().unwrap().len();
    assert_eq!(history, layers.len());
    let (_, out) = Podman::new().load_and_run(&image);
    assert_eq!(out, "hello from the new layer\n");
    // /tmp keeps the base's mode under the new layer (whose /usr/share
    // needed parents), and the new file is where it was put.
    let (_t, rootfs) = umoci_unpack(&image);
    assert_eq!(
        fs::read(rootfs.join("usr/share/hello.txt")).unwrap(),
        b"hello from the new layer\n"
    );
    assert!(fs::symlink_metadata(rootfs.join("bin"))
        .unwrap()
        .file_type()
        .is_symlink());

    let refused = build_on(&args, &name, None, &[], "throughLink", None);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("does not merge safely onto the base image"),
        "{err}"
    );
    assert!(
        err.contains("/bin: a directory, where its layer 1"),
        "{err}"
    );
    assert!(err.contains("has a symbolic link to usr/bin"), "{err}");
    assert!(err.contains("baseSymlinks = \"follow\""), "{err}");
    assert!(
        err.contains("-through-link-layer), blob sha256:"),
        "the new layer's output named: {err}"
    );
    let followed = built(&build_on(
        &args,
        &name,
        None,
        &[],
        "throughLinkFollowed",
        None,
    ));
    let (_t2, rootfs) = umoci_unpack(&followed);
    assert_eq!(
        fs::read(rootfs.join("usr/bin/hello")).unwrap(),
        b"hello from the new layer\n"
    );
    assert!(fs::symlink_metadata(rootfs.join("bin"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(rootfs.join("usr/bin/busybox").is_file());
    let (_, out) = Podman::new().load_and_run(&followed);
    assert_eq!(out, "hello from the new layer\n");

    // The base with a new config and no layer of its own.
    let only = built(&build_on(&args, &name, None, &[], "manifestOnly", None));
    assert_eq!(layer_digests(&only), base_layers);
    let (_, out) = Podman::new().load_and_run(&only);
    assert_eq!(out, "only the base\n");
    // remove: the base's /etc/motd is gone in the running container.
    let removal = built(&build_on(&args, &name, None, &[], "withRemoval", None));
    let (_, out) = Podman::new().load_and_run(&removal);
    assert_eq!(out, "absent\n");

    let few = build_on(&args, &name, None, &[], "tooFewForBase", None);
    assert!(!few.status.success());
    let err = String::from_utf8_lossy(&few.stderr);
    assert!(
        err.contains(
            "maxLayers: the image's budget leaves 1 layers for its closure, but its base image"
        ),
        "{err}"
    );
}

fn umoci_unpack(layout: &Path) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    (t, bundle.join("rootfs"))
}

/// A docker archive as the base: what `nixoci archive --format docker`
/// and `skopeo copy ... docker-archive:` write (dockerTools' format),
/// plain and gzipped: its layers first (as the archive holds them), its
/// config inherited; the image runs in podman.
#[test]
fn docker_archive_as_base() {
    require("skopeo");
    let t = tempfile::tempdir().unwrap();
    let base = usr_merged_base(t.path(), "base");
    let ours = t.path().join("ours.tar");
    run(nixoci()
        .arg("archive")
        .arg(&base)
        .args(["--format", "docker", "-o"])
        .arg(&ours)
        .arg("-q"));
    let skopeos = t.path().join("skopeo.tar");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:latest", base.display()))
        .arg(format!(
            "docker-archive:{}:example.org/base:1",
            skopeos.display()
        )));
    let gz = t.path().join("skopeo.tar.gz");
    run(Command::new("sh").arg("-c").arg(format!(
        "gzip -c {} > {}",
        skopeos.display(),
        gz.display()
    )));
    let hello = t.path().join("hello.txt");
    fs::write(&hello, "hello from the new layer\n").unwrap();
    let base_diff_ids = config_of(&base)["rootfs"]["diff_ids"].clone();
    for archive in [&ours, &skopeos, &gz] {
        let spec = t.path().join("on.json");
        write_json(
            &spec,
            &json!({
                "fromImage": archive,
                "layers": [{"files": [{"source": hello, "destination": "/usr/share/hello.txt"}]}],
                "config": {"Entrypoint": ["/bin/busybox", "cat", "/usr/share/hello.txt"]},
            }),
        );
        let out = t.path().join(format!(
            "on-{}",
            archive.file_name().unwrap().to_string_lossy()
        ));
        build(&spec, &out);
        run(nixoci().arg("verify").arg(&out));
        let config = config_of(&out);
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(json!(diff_ids[..2]), base_diff_ids, "{}", archive.display());
        assert_eq!(
            config["config"]["Labels"],
            json!({"base": "yes", "layer": "base"})
        );
        let annotations = &manifest_of(&out)["annotations"];
        if archive != &ours {
            assert_eq!(
                annotations["org.opencontainers.image.base.name"],
                json!("example.org/base:1")
            );
        }
        assert!(annotations
            .get("org.opencontainers.image.base.digest")
            .is_none());
        let (_, ran) = Podman::new().load_and_run(&out);
        assert_eq!(ran, "hello from the new layer\n", "{}", archive.display());
    }
    // Through Nix: ociImage { fromImage = ./base.tar.gz; }.
    let image = built(&build_on(
        &json!({}),
        &fresh_name("archive"),
        None,
        &[],
        "onArchive",
        Some(&gz),
    ));
    run(nixoci().arg("verify").arg(&image));
    assert_eq!(
        json!(config_of(&image)["rootfs"]["diff_ids"].as_array().unwrap()[..2]),
        base_diff_ids
    );
    let (_, ran) = Podman::new().load_and_run(&image);
    assert_eq!(ran, "hello from the new layer\n");
}

/// Build `spec` (a JSON value) in `dir` as `name`; the command's output.
fn try_build(dir: &Path, name: &str, spec: Value) -> Output {
    let path = dir.join(format!("{name}.json"));
    write_json(&path, &spec);
    nixoci()
        .arg("build")
        .arg(&path)
        .arg("-o")
        .arg(dir.join(name))
        .arg("-q")
        .output()
        .unwrap()
}

/// Each merge-safety case with `nixoci build`: refused with the base
/// layer, the path and the new layer named, nothing written; the allowed
/// cases pass; `"symlinks": "follow"` places /bin/x at /usr/bin/x; parent
/// directories keep the base's mode (/tmp 1777); the config rules field by
/// field; the platform picked from a multi-platform base, and a platform
/// the base is not for refused.
#[test]
fn merge_safety_and_config_rules() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let base = usr_merged_base(d, "base");
    let f = d.join("f.txt");
    fs::write(&f, "new\n").unwrap();
    let dir_src = d.join("adir");
    fs::create_dir_all(dir_src.join("sub")).unwrap();
    fs::write(dir_src.join("sub/x"), "x\n").unwrap();
    let elsewhere = d.join("elsewhere");
    std::os::unix::fs::symlink("/opt", &elsewhere).unwrap();
    let to_usr_bin = d.join("to-usr-bin");
    std::os::unix::fs::symlink("/usr/bin", &to_usr_bin).unwrap();
    let on = |files: Value| json!({"fromImage": base, "layers": [{"files": files}]});
    let following = |files: Value| json!({"fromImage": {"path": base, "symlinks": "follow"}, "layers": [{"files": files}]});
    // A file or another link where the base has /bin -> usr/bin: /bin/sh
    // would vanish, with or without following the base's links.
    let over_link = "where its layer 1 (sha256:";
    let gone = "a directory: it would replace the link, and what the link leads to would be gone from /bin";
    for (name, spec, want) in [
        (
            "file-over-link",
            on(json!([{"source": f, "destination": "/bin"}])),
            format!("/bin: a file, {over_link}"),
        ),
        (
            "link-over-link",
            on(json!([{"source": elsewhere, "destination": "/bin"}])),
            format!("/bin: a symbolic link to /opt, {over_link}"),
        ),
        (
            "file-over-link-followed",
            following(json!([{"source": f, "destination": "/bin"}])),
            format!("/bin: a file, {over_link}"),
        ),
        (
            "link-over-link-followed",
            following(json!([{"source": elsewhere, "destination": "/bin"}])),
            format!("/bin: a symbolic link to /opt, {over_link}"),
        ),
    ] {
        let out = try_build(d, name, spec);
        assert!(!out.status.success(), "{name} built");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&want) && err.contains(gone),
            "{name}: {want:?} in\n{err}"
        );
        assert!(
            err.contains(&format!("{name}.json: layers[0], blob sha256:")),
            "{name}: the new layer named: {err}"
        );
        assert!(!d.join(name).exists(), "{name}: an output was left");
    }
    for (name, files, want) in [
        (
            "dir-over-link",
            json!([{"source": dir_src, "destination": "/bin/"}]),
            "/bin: a directory, where its layer 1 (sha256:",
        ),
        (
            "through-link",
            json!([{"source": f, "destination": "/bin/f"}]),
            "/bin/f: under /bin, which is a symbolic link to usr/bin in its layer 1",
        ),
        (
            "file-over-dir",
            json!([{"source": f, "destination": "/tmp"}]),
            "/tmp: a file, where its layer 2 (sha256:",
        ),
        (
            "dir-over-file",
            json!([{"source": dir_src, "destination": "/usr/bin/busybox/"}]),
            "/usr/bin/busybox: a directory, where its layer 1 (sha256:",
        ),
    ] {
        let out = try_build(d, name, on(files));
        assert!(!out.status.success(), "{name} built");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{name}: {want:?} in\n{err}");
        assert!(
            err.contains(&format!("{name}.json: layers[0], blob sha256:")),
            "{name}: the new layer named: {err}"
        );
        assert!(
            err.contains("does not merge safely onto the base image"),
            "{err}"
        );
        assert!(!d.join(name).exists(), "{name}: an output was left");
    }
    // Allowed: a file over a base file, new directories, a file in /tmp
    // (whose 1777 mode the layer keeps), a link to where the link leads.
    let ok = try_build(
        d,
        "ok",
        on(json!([
            {"source": f, "destination": "/usr/bin/busybox-note"},
            {"source": f, "destination": "/tmp/note"},
            {"source": f, "destination": "/opt/app/f"},
            {"source": to_usr_bin, "destination": "/bin"},
        ])),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let tmp_entry = {
        let m = manifest_of(&d.join("ok"));
        let top = m["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let data = fs::read(blob_path(&d.join("ok"), &top)).unwrap();
        let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&data[..]));
        let mut mode = None;
        for e in tar.entries().unwrap() {
            let e = e.unwrap();
            if e.path().unwrap().to_string_lossy().trim_end_matches('/') == "tmp" {
                mode = Some(e.header().mode().unwrap() & 0o7777);
            }
        }
        mode
    };
    assert_eq!(tmp_entry, Some(0o1777), "the layer keeps /tmp's mode");
    // Followed: /bin/f lands in /usr/bin/f, /bin stays the link.
    let followed = try_build(
        d,
        "followed",
        json!({
            "fromImage": {"path": base, "symlinks": "follow"},
            "layers": [{"files": [{"source": f, "destination": "/bin/f"}, {"source": dir_src, "destination": "/bin/tools/"}]}],
        }),
    );
    assert!(
        followed.status.success(),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    let root = d.join("followed-root");
    run(nixoci()
        .arg("unpack")
        .arg(d.join("followed"))
        .arg(&root)
        .arg("-q"));
    assert_eq!(fs::read(root.join("usr/bin/f")).unwrap(), b"new\n");
    assert_eq!(fs::read(root.join("usr/bin/tools/sub/x")).unwrap(), b"x\n");
    assert_eq!(
        fs::read_link(root.join("bin")).unwrap(),
        PathBuf::from("usr/bin")
    );

    // remove: a whiteout deletes the base's file; a path the base lacks, or
    // one the layer also places, is refused.
    let removed = try_build(
        d,
        "removed",
        json!({"fromImage": base, "layers": [{"remove": ["/etc/motd"]}]}),
    );
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let root = d.join("removed-root");
    run(nixoci()
        .arg("unpack")
        .arg(d.join("removed"))
        .arg(&root)
        .arg("-q"));
    assert!(!root.join("etc/motd").exists() && root.join("etc").is_dir());
    let (_u, umoci_root) = umoci_unpack(&d.join("removed"));
    assert!(!umoci_root.join("etc/motd").exists() && umoci_root.join("usr/bin/busybox").exists());
    let missing = try_build(
        d,
        "missing",
        json!({"fromImage": base, "layers": [{"remove": ["/etc/nothing"]}]}),
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("remove[0]")
            && err.contains("/etc/nothing: the base image")
            && err.contains("has nothing there to remove"),
        "{err}"
    );
    let both = try_build(
        d,
        "both",
        json!({"fromImage": base, "layers": [{"remove": ["/etc/motd"], "files": [{"source": f, "destination": "/etc/motd"}]}]}),
    );
    assert!(!both.status.success());
    let err = String::from_utf8_lossy(&both.stderr);
    assert!(
        err.contains("/etc/motd is removed (remove) and also placed"),
        "{err}"
    );
    // Through the base's links, the paths are compared where they land:
    // /bin/busybox removed and /usr/bin/busybox placed meet at
    // /usr/bin/busybox, either way round.
    for (name, remove, place, want) in [
        (
            "both-followed",
            "/bin/busybox",
            "/usr/bin/busybox",
            "/bin/busybox (at /usr/bin/busybox through the base's symbolic links) is removed (remove) and also placed",
        ),
        (
            "both-followed-reversed",
            "/usr/bin/busybox",
            "/bin/busybox",
            "/usr/bin/busybox is removed (remove) and also placed",
        ),
    ] {
        let out = try_build(
            d,
            name,
            json!({"fromImage": {"path": base, "symlinks": "follow"},
                   "layers": [{"remove": [remove], "files": [{"source": f, "destination": place}]}]}),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} built");
        assert!(
            err.contains(want) && err.contains("at /usr/bin/busybox): do one or the other"),
            "{name}: {err}"
        );
        assert!(!d.join(name).exists(), "{name}: an output was left");
    }

    // Config: Entrypoint and Cmd both set; Env merged in place; the base's
    // Labels kept and merged.
    let cfg = try_build(
        d,
        "cfg",
        json!({
            "fromImage": base,
            "config": {"Entrypoint": ["/bin/busybox"], "Cmd": ["echo", "x"], "Env": ["GREETING=bye"], "WorkingDir": "/", "User": "1000", "StopSignal": "SIGINT", "Labels": {"extra": "1"}, "ExposedPorts": ["9090/tcp"], "Volumes": ["/cache"]},
        }),
    );
    assert!(
        cfg.status.success(),
        "{}",
        String::from_utf8_lossy(&cfg.stderr)
    );
    let c = &config_of(&d.join("cfg"))["config"];
    assert_eq!(c["Env"], json!(["PATH=/usr/bin:/bin", "GREETING=bye"]));
    assert_eq!(
        (&c["Entrypoint"], &c["Cmd"]),
        (&json!(["/bin/busybox"]), &json!(["echo", "x"]))
    );
    assert_eq!(
        (&c["WorkingDir"], &c["User"], &c["StopSignal"]),
        (&json!("/"), &json!("1000"), &json!("SIGINT"))
    );
    assert_eq!(
        c["Labels"],
        json!({"base": "yes", "layer": "base", "extra": "1"})
    );
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}, "9090/tcp": {}}));
    assert_eq!(c["Volumes"], json!({"/cache": {}, "/data": {}}));
    // Only Cmd: the base's Entrypoint (none here) stays, Cmd replaced.
    let cmd = try_build(
        d,
        "cmd",
        json!({"fromImage": base, "config": {"Cmd": ["/bin/busybox", "true"]}}),
    );
    assert!(cmd.status.success());
    assert_eq!(
        config_of(&d.join("cmd"))["config"]["Cmd"],
        json!(["/bin/busybox", "true"])
    );
    // Nothing set: the base's config as it was.
    let same = try_build(d, "same", json!({"fromImage": base}));
    assert!(same.status.success());
    assert_eq!(
        config_of(&d.join("same"))["config"],
        config_of(&base)["config"]
    );
    assert_eq!(layer_digests(&d.join("same")), layer_digests(&base));

    // A multi-platform base: the image's platform picks; a platform the base
    // is not for is refused.
    let multi = two_platform_layout(d, "multi");
    let arm = try_build(
        d,
        "arm",
        json!({"fromImage": {"path": multi, "tag": "multi"}, "architecture": "arm64"}),
    );
    assert!(
        arm.status.success(),
        "{}",
        String::from_utf8_lossy(&arm.stderr)
    );
    let index = read_json(&blob_path(&multi, &index_digest(&multi)));
    let arm_manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == json!("arm64"))
        .unwrap()["digest"]
        .clone();
    assert_eq!(
        manifest_of(&d.join("arm"))["annotations"]["org.opencontainers.image.base.digest"],
        arm_manifest
    );
    assert_eq!(config_of(&d.join("arm"))["architecture"], json!("arm64"));
    let wrong = try_build(
        d,
        "wrong",
        json!({"fromImage": base, "architecture": "arm64"}),
    );
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("amd64") && err.contains("arm64"), "{err}");

    // Bad bases: not an image; an archive with a name that climbs out.
    let nothing = try_build(d, "nothing", json!({"fromImage": d.join("f.txt")}));
    assert!(!nothing.status.success());
    let err = String::from_utf8_lossy(&nothing.stderr);
    assert!(
        err.contains("f.txt") && err.contains("not a readable tar archive")
            || err.contains("neither a docker archive"),
        "{err}"
    );
    let evil = d.join("evil.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&evil).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = b"../escape";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"x\n"[..]).unwrap();
        b.finish().unwrap();
    }
    let out = try_build(d, "evil", json!({"fromImage": evil}));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("../escape") && err.contains("refused"),
        "{err}"
    );
    assert!(!d.parent().unwrap().join("escape").exists());
}

/// A base from a Docker registry speaks Docker's media types (schema 2):
/// its layers keep their bytes and digests and take the OCI names in the
/// new image's OCI manifest, which oci-image-tool accepts.
#[test]
fn docker_media_types_of_a_base_become_oci() {
    require("skopeo");
    require("oci-image-tool");
    let reg = Registry::start(Setup::default());
    let t = tempfile::tempdir().unwrap();
    let base = usr_merged_base(t.path(), "base");
    let reference = reg.reference("base/v2s2:1");
    run(Command::new("skopeo")
        .args(["copy", "--format", "v2s2", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", base.display()))
        .arg(format!("docker://{reference}")));
    let pulled = t.path().join("pulled");
    run(nixoci().arg("pull").arg(&reference).arg(&pulled).arg("-q"));
    assert_eq!(
        manifest_of(&pulled)["mediaType"],
        json!("application/vnd.docker.distribution.manifest.v2+json")
    );
    let out = try_build(
        t.path(),
        "on",
        json!({"fromImage": pulled, "config": {"Cmd": ["/bin/busybox", "true"]}}),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on = t.path().join("on");
    let m = manifest_of(&on);
    let pulled_layers = manifest_of(&pulled)["layers"].clone();
    for (new, old) in m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(pulled_layers.as_array().unwrap())
    {
        assert_eq!(
            new["mediaType"],
            json!("application/vnd.oci.image.layer.v1.tar+gzip")
        );
        assert_eq!(
            old["mediaType"],
            json!("application/vnd.docker.image.rootfs.diff.tar.gzip")
        );
        assert_eq!(
            (&new["digest"], &new["size"]),
            (&old["digest"], &old["size"])
        );
    }
    run(nixoci().arg("verify").arg(&on));
    run(Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", "name=latest"])
        .arg(&on));
}

/// A copy of the layout `from` at `to` whose config is `change`d (the
/// manifest and index rewritten to match).
fn with_config(from: &Path, to: &Path, change: impl Fn(&mut Value)) {
    run(Command::new("cp").arg("-r").arg(from).arg(to));
    let put = |bytes: &[u8]| {
        let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        fs::write(to.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut config = config_of(to);
    change(&mut config);
    let (digest, size) = put(&serde_json::to_vec(&config).unwrap());
    let mut manifest = manifest_of(to);
    manifest["config"]["digest"] = json!(digest);
    manifest["config"]["size"] = json!(size);
    let (digest, size) = put(&serde_json::to_vec(&manifest).unwrap());
    let mut index = read_json(&to.join("index.json"));
    index["manifests"][0]["digest"] = json!(digest);
    index["manifests"][0]["size"] = json!(size);
    write_json(&to.join("index.json"), &index);
}

/// Regression: a bad `Env` in the image's own config was blamed on the
/// base image, and named no spec file; a base next to the spec's
/// directory printed as `./../base`. The spec is named; the base only
/// when its config is to blame; paths as the spec writes them.
#[test]
fn config_errors_name_the_spec_and_blame_what_is_wrong() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    usr_merged_base(d, "base");
    with_config(&d.join("base"), &d.join("bad-base"), |c| {
        c["config"]["Env"] = json!(["PATH=/usr/bin", "BROKEN"]);
    });
    let specs = d.join("specs");
    fs::create_dir(&specs).unwrap();
    fs::write(specs.join("f.txt"), "new\n").unwrap();
    let fail = |name: &str, spec: Value| {
        write_json(&specs.join(format!("{name}.json")), &spec);
        run_fail(nixoci().current_dir(&specs).args([
            "build",
            &format!("{name}.json"),
            "-o",
            name,
            "-q",
        ]))
    };
    let own = fail(
        "own-env",
        json!({"fromImage": "../base", "config": {"Env": ["NOEQUALS"]}}),
    );
    assert!(
        own.contains("own-env.json: the image config is not valid: config.Env[0] must be NAME=VALUE with a name, not \"NOEQUALS\""),
        "{own}"
    );
    assert!(!own.contains("base image"), "{own}");
    let inherited = fail(
        "inherited-env",
        json!({"fromImage": "../bad-base", "config": {"Env": ["A=1"]}}),
    );
    assert!(
        inherited.contains("inherited-env.json: the config it inherits from the base image ../bad-base is not valid: config.Env[1] must be NAME=VALUE with a name, not \"BROKEN\""),
        "{inherited}"
    );
    let platform = fail(
        "platform",
        json!({"fromImage": "../base", "architecture": "arm64"}),
    );
    assert!(
        platform.contains("platform.json: the image's architecture is \"arm64\", but the base image ../base's is \"amd64\""),
        "{platform}"
    );
    let merge = fail(
        "merge",
        json!({"fromImage": "../base", "layers": [{"files": [{"source": "f.txt", "destination": "/bin"}]}]}),
    );
    assert!(
        merge.contains("merge.json: layers[0], blob sha256:")
            && merge.contains("does not merge safely onto the base image ../base:"),
        "{merge}"
    );
    let missing = fail("missing", json!({"fromImage": "../nothing"}));
    assert!(
        missing.contains("missing.json: fromImage: base image ../nothing: cannot read it"),
        "{missing}"
    );
    for text in [&own, &inherited, &platform, &merge, &missing] {
        assert!(!text.contains(" ./"), "{text}");
    }
}
