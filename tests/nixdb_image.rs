//! `nixDatabase`, `nixUid` and `nixGid` in the JSON specs (issue 24): an
//! image built of store paths the host's real Nix 2.8 built into this
//! machine's store, unpacked, then checked by that Nix as a store rooted at
//! the unpacked tree (`local?root=DIR`): its contents verify against the
//! database, its references and NAR hashes are the host store's; with a
//! base image, with the image's own root filesystem layer, with owners;
//! reproducible; and each refusal with its message. Fails, never skips,
//! without Nix.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::*;
use serde_json::{json, Value};

/// Store paths Nix built on this machine: `app` refers to `lib` and to
/// busybox, `lib` to itself, `extra` to `app`.
struct Built {
    app: String,
    app_closure: Vec<String>,
    extra: String,
    extra_closure: Vec<String>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bb = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nixdb-image-busybox");
        if !bb.join("busybox").is_file() {
            let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            fs::copy(busybox(), tmp.path().join("busybox")).unwrap();
            // Another process may have put it there meanwhile: the same bytes.
            let _ = fs::rename(tmp.keep(), &bb);
        }
        let expr = format!(
            r#"let bb = builtins.path {{ path = {bb}; name = "busybox"; }};
                 mk = name: script: derivation {{ inherit name; system = "x86_64-linux";
                   builder = "${{bb}}/busybox"; args = [ "sh" "-c" script ]; }};
                 lib = mk "nixdb-image-lib" "${{bb}}/busybox mkdir -p $out/share; echo hi > $out/share/a; ${{bb}}/busybox ln -s $out/share/a $out/self";
                 app = mk "nixdb-image-app" "${{bb}}/busybox mkdir -p $out/bin; echo '${{lib}}/share/a ${{bb}}' > $out/bin/app; ${{bb}}/busybox chmod +x $out/bin/app";
                 extra = mk "nixdb-image-extra" "${{bb}}/busybox mkdir -p $out; echo ${{app}} > $out/uses-app";
             in {{ inherit app extra; }}"#,
            bb = bb.display()
        );
        let build = |attr: &str| {
            let out = run(nix_command("nix-build")
                .args(["--no-out-link", "-E", &expr, "-A", attr]));
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let requisites = |path: &str| -> Vec<String> {
            let out = run(nix_command("nix-store").args(["-q", "--requisites", path]));
            let mut v: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        let (app, extra) = (build("app"), build("extra"));
        let (app_closure, extra_closure) = (requisites(&app), requisites(&extra));
        assert_eq!(app_closure.len(), 3, "{app_closure:?}");
        assert_eq!(extra_closure.len(), 4, "{extra_closure:?}");
        Built {
            app,
            app_closure,
            extra,
            extra_closure,
        }
    })
}

/// A Nix command on the store rooted at `root` (the host's when `None`).
fn nix_at(program: &str, root: Option<&Path>) -> Command {
    let mut c = nix_command(program);
    if let Some(root) = root {
        c.arg("--store")
            .arg(format!("local?root={}", root.display()));
    }
    c
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `nix path-info --json` of `paths`: path -> (narHash, narSize,
/// registrationTime).
fn path_info(root: Option<&Path>, paths: &[String]) -> BTreeMap<String, (String, u64, u64)> {
    let out = run(nix_at("nix", root)
        .args([
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "--json",
        ])
        .args(paths));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_owned(),
                (
                    p["narHash"].as_str().unwrap().to_owned(),
                    p["narSize"].as_u64().unwrap(),
                    p["registrationTime"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// `nix-store -q --references path` on the store at `root` (or the host's).
fn references(root: Option<&Path>, path: &str) -> BTreeSet<String> {
    let out = run(nix_at("nix-store", root).args(["-q", "--references", path]));
    stdout(&out).lines().map(str::to_owned).collect()
}

/// `nix-store --verify --check-contents` on the store at `root`.
fn verify(root: &Path) -> Output {
    nix_at("nix-store", Some(root))
        .args(["--verify", "--check-contents"])
        .output()
        .unwrap()
}

/// Build the image `spec` (JSON) in `dir`, with `env` set, and return the
/// layout.
fn build_in(dir: &Path, spec: &Value, env: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("image.json");
    write_json(&path, spec);
    let out = dir.join("layout");
    let mut c = nixoci();
    c.envs(env.iter().copied());
    run(c.arg("build").arg(&path).arg("-o").arg(&out).arg("--quiet"));
    assert_crane_accepts(&out);
    out
}

/// The stderr of a build of `spec` in `dir` that must fail.
fn build_fails(dir: &Path, spec: &Value) -> String {
    let path = dir.join("refused.json");
    write_json(&path, spec);
    run_fail(
        nixoci()
            .arg("build")
            .arg(&path)
            .arg("-o")
            .arg(dir.join("refused"))
            .arg("--quiet"),
    )
}

/// `nixoci unpack` of the layout's image into `dir/name`.
fn unpack(layout: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    run(nixoci()
        .arg("unpack")
        .arg(format!("{}:latest", layout.display()))
        .arg(&to)
        .arg("-q"));
    to
}

/// Nix takes the unpacked tree `root` as a valid store holding `paths`:
/// the contents verify, and each path's NAR hash and size are those of
/// the host store.
fn assert_valid_store(root: &Path, paths: &[String]) {
    let out = verify(root);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nix-store --verify: {err}");
    assert!(err.contains("checking store hashes"), "{err}");
    assert!(
        !err.contains("modified") && !err.contains("disappeared"),
        "{err}"
    );
    let host = path_info(None, paths);
    let image = path_info(Some(root), paths);
    assert_eq!(image.len(), paths.len(), "{image:?}");
    for p in paths {
        assert_eq!((&image[p].0, image[p].1), (&host[p].0, host[p].1), "{p}");
    }
}

fn layer_digests(layout: &Path) -> Vec<String> {
    let m = read_json(&blob_path(layout, &manifest_digest(layout)));
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// The tar headers of the layout's last layer: path -> (uid, gid, mode).
fn last_layer_owners(layout: &Path) -> BTreeMap<String, (u64, u64, u32)> {
    let digest = layer_digests(layout).pop().unwrap();
    let bytes = fs::read(blob_path(layout, &digest)).unwrap();
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut tar)
        .unwrap();
    tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                (h.uid().unwrap(), h.gid().unwrap(), h.mode().unwrap()),
            )
        })
        .collect()
}

/// Issue 24: a layer with a closure and `nixDatabase`, unpacked: Nix
/// verifies its contents, lists the app's references and gives the host
/// store's NAR hashes; a file changed afterwards fails the check.
#[test]
fn nix_verifies_an_image_with_a_database() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let layout = build_in(
        t.path(),
        &json!({"layers": [{"closure": b.app_closure, "nixDatabase": true}]}),
        &[],
    );
    let root = unpack(&layout, t.path(), "root");
    assert_valid_store(&root, &b.app_closure);
    assert_eq!(references(Some(&root), &b.app), references(None, &b.app));
    assert_eq!(references(Some(&root), &b.app).len(), 2);
    assert_eq!(
        fs::read_to_string(root.join("nix/var/nix/db/schema")).unwrap(),
        "10"
    );
    assert_eq!(
        fs::read_link(root.join("nix/var/nix/gcroots/profiles")).unwrap(),
        Path::new("/nix/var/nix/profiles")
    );

    // The check can fail: one file of the app changed.
    let file = root.join(b.app.trim_start_matches('/')).join("bin/app");
    fs::write(&file, "changed\n").unwrap();
    let out = verify(&root);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("path '{}' was modified", b.app)),
        "{err}"
    );
}

/// Issue 24: two builds in other directories, with other umasks and
/// other mtimes on their inputs, give the same layer.
#[test]
fn the_database_layer_is_the_same_twice() {
    let b = built();
    let digests: Vec<Vec<String>> = [("077", 1_000_000), ("022", 2_000_000)]
        .into_iter()
        .map(|(umask, mtime)| {
            let t = tempfile::tempdir().unwrap();
            file(t.path(), "conf", b"x\n", 0o644);
            run(Command::new("touch")
                .arg("-d")
                .arg(format!("@{mtime}"))
                .arg(t.path().join("conf")));
            let spec = t.path().join("image.json");
            write_json(
                &spec,
                &json!({"layers": [{
                    "closure": b.app_closure,
                    "files": [{"source": "conf", "destination": "/etc/conf"}],
                    "nixDatabase": true, "nixUid": 1000, "nixGid": 100
                }]}),
            );
            let out = t.path().join("layout");
            run(Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "umask {umask} && exec \"$0\" build \"$1\" -o \"$2\" --quiet"
                ))
                .arg(env!("CARGO_BIN_EXE_nixoci"))
                .arg(&spec)
                .arg(&out)
                .env_remove("SOURCE_DATE_EPOCH"));
            let h = last_layer_owners(&out);
            assert_eq!(h["nix/var/nix/db/db.sqlite"], (1000, 100, 0o644));
            layer_digests(&out)
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
}

/// Issue 24: `nixUid`/`nixGid` own `/nix`, `/nix/store` and the database,
/// in the tar headers and in umoci's unpack; the store paths keep root.
#[test]
fn nix_uid_and_gid_own_nix_and_the_database() {
    require("umoci");
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let layout = build_in(
        t.path(),
        &json!({"layers": [{"closure": b.app_closure, "nixDatabase": true, "nixUid": 1000, "nixGid": 1000}]}),
        &[],
    );
    let h = last_layer_owners(&layout);
    for p in [
        "nix/",
        "nix/store/",
        "nix/var/",
        "nix/var/nix/",
        "nix/var/nix/db/",
        "nix/var/nix/gcroots/",
        "nix/var/nix/profiles/",
    ] {
        assert_eq!(h[p], (1000, 1000, 0o755), "{p}");
    }
    assert_eq!(h["nix/var/nix/db/db.sqlite"], (1000, 1000, 0o644));
    assert_eq!(h["nix/var/nix/db/schema"], (1000, 1000, 0o644));
    let app = b.app.trim_start_matches('/');
    assert_eq!(h[&format!("{app}/")], (0, 0, 0o555));
    assert_eq!(h[&format!("{app}/bin/app")], (0, 0, 0o555));

    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let owner = |p: &str| {
        let m = fs::symlink_metadata(rootfs.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    for p in ["nix", "nix/store", "nix/var/nix/db/db.sqlite"] {
        assert_eq!(owner(p), (1000, 1000), "{p}");
    }
    assert_eq!(owner(app), (0, 0));
}

/// Issue 24: the image spec's `nixDatabase` goes into its last layer and
/// registers the store paths of the layers below it.
#[test]
fn the_image_database_covers_the_layers_below() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let layout = build_in(
        t.path(),
        &json!({"layers": [{"closure": b.app_closure}], "nixDatabase": true, "nixUid": 1000}),
        &[],
    );
    let h = last_layer_owners(&layout);
    assert_eq!(layer_digests(&layout).len(), 2);
    assert_eq!(h["nix/var/nix/db/db.sqlite"], (1000, 0, 0o644));
    assert!(
        h.keys()
            .all(|p| !p.starts_with("nix/store/") || p == "nix/store/"),
        "the store paths stay in the layer below: {h:?}"
    );
    let root = unpack(&layout, t.path(), "root");
    assert_valid_store(&root, &b.app_closure);
    assert_eq!(references(Some(&root), &b.app), references(None, &b.app));
}

/// Issue 24: on a base built with a database, the base's paths and the new
/// ones are all registered; on a base without one, its paths (on this
/// machine) are registered too.
#[test]
fn from_image_keeps_or_adds_the_base_paths() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let with_db = t.path().join("with-db");
    let without_db = t.path().join("without-db");
    fs::create_dir_all(&with_db).unwrap();
    fs::create_dir_all(&without_db).unwrap();
    let base_with = build_in(
        &with_db,
        &json!({"layers": [{"closure": b.app_closure, "nixDatabase": true}]}),
        &[],
    );
    let base_without = build_in(
        &without_db,
        &json!({"layers": [{"closure": b.app_closure}]}),
        &[],
    );
    for (name, base) in [("on-db", &base_with), ("on-plain", &base_without)] {
        let dir = t.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        let layout = build_in(
            &dir,
            &json!({"fromImage": base, "layers": [{"closure": b.extra_closure, "nixDatabase": true}]}),
            &[],
        );
        let h = last_layer_owners(&layout);
        assert!(
            !h.keys()
                .any(|p| p.starts_with(b.app.trim_start_matches('/'))),
            "{name}: the base's paths are not repeated"
        );
        let root = unpack(&layout, &dir, "root");
        assert_valid_store(&root, &b.extra_closure);
        assert_eq!(
            references(Some(&root), &b.extra),
            BTreeSet::from([b.app.clone()]),
            "{name}"
        );
    }
}

/// Issue 24: a base whose database Nix itself wrote, holding a store path
/// this machine does not have: its rows are kept as they are (Nix's own
/// registration time shows it) beside the new layer's paths, and Nix
/// verifies them all.
#[test]
fn a_base_database_written_by_nix_is_kept() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let scratch = t.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let bb = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nixdb-image-busybox");
    let expr = format!(
        r#"let bb = builtins.path {{ path = {bb}; name = "busybox"; }};
           in derivation {{ name = "nixdb-image-ghost"; system = "x86_64-linux";
             builder = "${{bb}}/busybox"; args = [ "sh" "-c" "echo ${{bb}} > $out" ]; }}"#,
        bb = bb.display()
    );
    let ghost = stdout(&run(nix_at("nix-build", Some(&scratch)).args([
        "--no-out-link",
        "-E",
        &expr,
    ])))
    .trim()
    .to_owned();
    assert!(
        !Path::new(&ghost).exists(),
        "{ghost} must be in the scratch store only"
    );
    let base_dir = t.path().join("base");
    fs::create_dir_all(&base_dir).unwrap();
    let base = build_in(
        &base_dir,
        &json!({"layers": [{"files": [
            {"source": scratch.join("nix"), "destination": "/nix"},
            // What SQLite would read with the new file: removed by it.
            {"text": "", "destination": "/nix/var/nix/db/db.sqlite-wal"},
            {"text": "stale", "destination": "/nix/var/nix/db/db.sqlite-shm"}
        ]}]}),
        &[],
    );
    // As a layout, and as a docker archive.
    let archive = t.path().join("base.tar");
    run(nixoci()
        .arg("archive")
        .arg(&base)
        .args(["--format", "docker", "-o"])
        .arg(&archive)
        .arg("-q"));
    for (name, from) in [("on-layout", &base), ("on-archive", &archive)] {
        let dir = t.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        let layout = build_in(
            &dir,
            &json!({"fromImage": from, "layers": [{"closure": b.app_closure, "nixDatabase": true}]}),
            &[],
        );
        let root = unpack(&layout, &dir, "root");
        for side in ["db.sqlite-wal", "db.sqlite-shm"] {
            assert!(
                !root.join("nix/var/nix/db").join(side).exists(),
                "{name}: {side}"
            );
        }
        let out = verify(&root);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.contains("checking store hashes"),
            "{name}: {err}"
        );
        assert!(
            !err.contains("modified") && !err.contains("disappeared"),
            "{name}: {err}"
        );
        let theirs = path_info(Some(&scratch), std::slice::from_ref(&ghost));
        let mine = path_info(Some(&root), std::slice::from_ref(&ghost));
        assert_eq!(mine, theirs, "{name}");
        assert!(
            mine[&ghost].2 > 1000,
            "{name}: Nix's registration time: {mine:?}"
        );
        assert_eq!(
            references(Some(&root), &ghost),
            references(Some(&scratch), &ghost),
            "{name}"
        );
        assert_valid_store(&root, &b.app_closure);
    }
}

/// Issue 24: a path the layer removes from the base leaves the database
/// (the base's row for it is dropped), and a base row that still refers
/// to it is an error naming the layer.
#[test]
fn removed_base_paths_leave_the_database() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let base_dir = t.path().join("base");
    fs::create_dir_all(&base_dir).unwrap();
    let base = build_in(
        &base_dir,
        &json!({"layers": [{"closure": b.extra_closure, "nixDatabase": true}]}),
        &[],
    );
    let layout = build_in(
        t.path(),
        &json!({"fromImage": base, "layers": [{"remove": [b.extra], "nixDatabase": true}]}),
        &[],
    );
    let root = unpack(&layout, t.path(), "root");
    assert!(!root.join(b.extra.trim_start_matches('/')).exists());
    assert_valid_store(&root, &b.app_closure);
    let out = nix_at("nix-store", Some(&root))
        .args(["-q", "--references", &b.extra])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("path '{}' is not valid", b.extra)),
        "{err}"
    );

    let err = build_fails(
        t.path(),
        &json!({"fromImage": base, "layers": [{"remove": [b.app], "nixDatabase": true}]}),
    );
    assert!(
        err.contains("layers[0]: nixDatabase")
            && err.contains(&format!(
                "{} refers to {}, which is not among the store paths given",
                b.extra, b.app
            )),
        "{err}"
    );
}

/// Issue 24: each refusal, with its message.
#[test]
fn refusals_are_named() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();

    let err = build_fails(
        d,
        &json!({"layers": [{"closure": b.app_closure, "nixUid": 1000}]}),
    );
    assert!(
        err.contains("layers[0]")
            && err.contains("\"nixUid\" and \"nixGid\" go with \"nixDatabase\""),
        "{err}"
    );
    let err = build_fails(
        d,
        &json!({"layers": [{"closure": b.app_closure}], "nixGid": 5}),
    );
    assert!(
        err.contains("the image's root filesystem layer")
            && err.contains("\"nixUid\" and \"nixGid\" go with \"nixDatabase\""),
        "{err}"
    );

    let err = build_fails(
        d,
        &json!({"layers": [{
            "closure": b.app_closure, "nixDatabase": true,
            "files": [{"text": "x", "destination": "/nix/var/nix/db/big-lock"}]
        }]}),
    );
    assert!(
        err.contains("layers[0]")
            && err.contains("/nix/var/nix/db/big-lock: files[0] (inline text) places it, and nixDatabase writes the Nix database at /nix/var/nix/db"),
        "{err}"
    );

    let err = build_fails(
        d,
        &json!({"layers": [{
            "closure": b.app_closure, "nixDatabase": true,
            "directories": [{"path": "/nix/store", "mode": "1775"}]
        }]}),
    );
    assert!(
        err.contains("/nix/store: directories[0] places it, and nixDatabase makes it a directory 0755 owned by 0:0"),
        "{err}"
    );

    // The app without lib and busybox: a reference out of the image.
    let err = build_fails(
        d,
        &json!({"layers": [{"closure": [b.app], "nixDatabase": true}]}),
    );
    let left_out: Vec<&String> = b.app_closure.iter().filter(|p| **p != b.app).collect();
    assert!(
        err.contains("layers[0]: nixDatabase")
            && left_out.iter().any(|r| err.contains(&format!(
                "{} refers to {r}, which is not among the store paths given; give the whole closure of {}",
                b.app, b.app
            ))),
        "{err}"
    );

    // A base holding a store path that is not on this machine, without a
    // database listing it.
    let ghost = "/nix/store/00000000000000000000000000000000-ghost";
    let base_dir = d.join("ghost-base");
    fs::create_dir_all(&base_dir).unwrap();
    let base = build_in(
        &base_dir,
        &json!({"layers": [{"files": [{"text": "boo\n", "destination": format!("{ghost}/boo")}]}]}),
        &[],
    );
    let first = &layer_digests(&base)[0]["sha256:".len()..][..12];
    let err = build_fails(
        d,
        &json!({"fromImage": base, "layers": [{"closure": b.app_closure, "nixDatabase": true}]}),
    );
    assert!(
        err.contains(&format!(
            "1 store path of the image is not on this machine, and no base image's Nix database lists it: {ghost} (from the base image {}'s layer 1 (sha256:{first}))",
            base.display()
        )) && err.contains("nix-store --realise"),
        "{err}"
    );
}
