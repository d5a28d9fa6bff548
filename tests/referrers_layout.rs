//! Issue 23, "`sbom = true` must not break `crane push`": a layout carrying
//! referrers (SBOMs attached with `nixoci sbom --attach`, by `ociImage {
//! sbom = true; }`, or brought in by `nixoci pull --referrers`) keeps its one
//! image alone in `index.json` and its referrers in the layout nested at
//! `referrers/` (its `blobs/sha256` a link to the layout's own). Checked
//! with the real tools: `crane push DIR` (then `crane digest` and `crane
//! validate --remote`), `nixoci push` and `oras cp -r --from-oci-layout
//! DIR/referrers:TAG`, on registry 2.8 (fallback tag) and on a registry
//! with the referrers API; `podman load -i` of the directory tarred;
//! skopeo, umoci and oci-image-tool; `verify` of the nested layout and of
//! what it refuses; and layouts of the older shape (referrers in
//! `index.json`, as an older nixoci and `oras cp --to-oci-layout` write
//! them), still read.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::peers::*;
use common::registry::*;
use common::*;
use serde_json::{json, Value};

/// A store path the image holds, so that its SBOM lists a package.
const STORE_PATH: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-app-1.0";

/// The artifact types `nixoci sbom --attach` gives the two formats.
const SBOM_TYPES: [&str; 2] = ["application/spdx+json", "application/vnd.cyclonedx+json"];

/// A layout built by the CLI (busybox at /bin, an app under a store path,
/// its entrypoint printing `hi`), tagged `latest`, with both SBOMs
/// attached; at `dir/name`.
fn image_with_sboms(dir: &Path, name: &str) -> PathBuf {
    let src = dir.join(format!("{name}-in"));
    file(&src.join("app"), "greeting", b"hi\n", 0o644);
    write_json(
        &dir.join(format!("{name}.json")),
        &json!({
            "layers": [
                {"files": [{"source": busybox(), "destination": "/bin/busybox"}]},
                {"files": [{"source": src.join("app"), "destination": STORE_PATH}]}
            ],
            "architecture": "amd64",
            "config": {"Entrypoint": ["/bin/busybox", "echo", "hi"]},
            "tags": ["latest"]
        }),
    );
    let layout = build(&dir.join(format!("{name}.json")), &dir.join(name));
    for format in ["spdx", "cyclonedx"] {
        run(nixoci()
            .arg("sbom")
            .arg(&layout)
            .args(["--attach", "-q", "--format", format]));
    }
    layout
}

/// The digests of the referrers the layout nested at `referrers/` lists
/// (its entries after the image), sorted.
fn nested_referrers(layout: &Path) -> Vec<String> {
    let nested = read_json(&layout.join("referrers/index.json"));
    digests(&Value::from(&nested["manifests"].as_array().unwrap()[1..]))
}

/// `index.json` holds the image alone; `referrers/` holds the image entry
/// as it is, then the two SBOM referrers, and shares the layout's blobs
/// through its one link.
fn assert_shape(layout: &Path) {
    assert_crane_accepts(layout);
    let index = read_json(&layout.join("index.json"));
    let nested = read_json(&layout.join("referrers/index.json"));
    let entries = nested["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{nested}");
    assert_eq!(entries[0], index["manifests"][0]);
    let mut types: Vec<&str> = entries[1..]
        .iter()
        .map(|e| {
            assert!(e["annotations"]
                .get("org.opencontainers.image.ref.name")
                .is_none());
            e["artifactType"].as_str().unwrap()
        })
        .collect();
    types.sort();
    assert_eq!(types, SBOM_TYPES);
    assert_eq!(
        fs::read(layout.join("referrers/oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let link = layout.join("referrers/blobs/sha256");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("../../blobs/sha256")
    );
    assert_eq!(
        fs::read_dir(layout.join("referrers/blobs"))
            .unwrap()
            .count(),
        1
    );
}

/// `crane push DIR REF`, then `crane digest REF` (the layout's digest)
/// and `crane validate --remote REF`.
fn crane_push(home: &Path, layout: &Path, reference: &str) {
    run(crane(home)
        .args(["push", "--insecure"])
        .arg(layout)
        .arg(reference));
    let digest = run(crane(home).args(["digest", "--insecure", reference]));
    assert_eq!(
        String::from_utf8_lossy(&digest.stdout).trim(),
        manifest_digest(layout),
        "crane digest {reference}"
    );
    let valid = run(crane(home)
        .args(["validate", "--insecure"])
        .arg(format!("--remote={reference}")));
    assert!(
        String::from_utf8_lossy(&valid.stdout).contains("PASS"),
        "{valid:?}"
    );
}

/// The digests of `list` (an array of descriptors), sorted.
fn digests(list: &Value) -> Vec<String> {
    let mut d: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect();
    d.sort();
    d
}

/// The referrers a registry at `host` lists for `digest` in `repo`:
/// through its referrers API (`api`), else under the fallback tag
/// `sha256-<hex>` (registry 2.8).
fn listed(host: &str, api: bool, repo: &str, digest: &str) -> Vec<String> {
    let path = if api {
        format!("referrers/{digest}")
    } else {
        format!("manifests/{}", digest.replace(':', "-"))
    };
    let out = run(Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
        ])
        .arg(format!("http://{host}/v2/{repo}/{path}")));
    let index: Value = serde_json::from_slice(&out.stdout).unwrap();
    digests(&index["manifests"])
}

/// What `oras discover` lists as the referrers of `reference`, sorted.
fn oras_discover(home: &Path, reference: &str) -> Vec<String> {
    let out = run(oras(home)
        .args(["discover", "--plain-http", "--format", "json"])
        .arg(reference));
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    digests(&found["referrers"])
}

/// `nixoci push LAYOUT REF --json`.
fn nixoci_push(env: &Path, layout: &Path, reference: &str) -> Value {
    let out = run(nixoci_in(env)
        .arg("push")
        .arg(layout)
        .arg(reference)
        .arg("--json"));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The two registries: 2.8 (no referrers API: the fallback tag) and one
/// with the referrers API; `host` and whether it has the API.
struct Registries {
    plain: Registry,
    api: ReferrersRegistry,
}

impl Registries {
    fn start() -> Registries {
        Registries {
            plain: Registry::start(Setup::default()),
            api: ReferrersRegistry::start(),
        }
    }

    fn each(&self) -> [(String, bool); 2] {
        [(self.plain.host(), false), (self.api.host(), true)]
    }
}

/// The mission's flow on a layout with both SBOMs attached: `crane push
/// DIR REF` takes it (on the old shape it stopped with "layout contains 3
/// entries"), the registry holds the layout's digest and crane validates
/// it; `nixoci push` of the same layout carries both referrers, listed
/// under the fallback tag on registry 2.8 and by the referrers API on the
/// other registry.
#[test]
fn crane_pushes_a_layout_with_sboms_and_nixoci_push_carries_them() {
    let t = tempfile::tempdir().unwrap();
    let layout = image_with_sboms(t.path(), "app");
    assert_shape(&layout);
    run(nixoci().arg("verify").arg(&layout));
    let digest = manifest_digest(&layout);
    let want = nested_referrers(&layout);
    let regs = Registries::start();
    for (host, api) in regs.each() {
        crane_push(t.path(), &layout, &format!("{host}/crane/app:1"));
        let report = nixoci_push(t.path(), &layout, &format!("{host}/nixoci/app:1"));
        assert_eq!(report["digest"], json!(digest), "{report}");
        assert_eq!(digests(&report["referrers"]), want, "{host}: {report}");
        assert_eq!(listed(&host, api, "nixoci/app", &digest), want, "{host}");
    }
}

/// `oras cp -r --from-oci-layout DIR/referrers:latest REF` delivers the
/// image (the layout's digest) and both SBOM referrers, read through the
/// nested layout's link to the layout's blobs, on both registries.
#[test]
fn oras_copies_the_image_and_its_referrers_from_the_nested_layout() {
    let t = tempfile::tempdir().unwrap();
    let layout = image_with_sboms(t.path(), "app");
    let digest = manifest_digest(&layout);
    let want = nested_referrers(&layout);
    let regs = Registries::start();
    for (host, api) in regs.each() {
        let reference = format!("{host}/oras/app:1");
        run(oras(t.path())
            .args(["cp", "-r", "--to-plain-http", "--from-oci-layout"])
            .arg(format!("{}/referrers:latest", layout.display()))
            .arg(&reference));
        let resolved = run(crane(t.path()).args(["digest", "--insecure", &reference]));
        assert_eq!(
            String::from_utf8_lossy(&resolved.stdout).trim(),
            digest,
            "{host}"
        );
        assert_eq!(oras_discover(t.path(), &reference), want, "{host}");
        if api {
            assert_eq!(listed(&host, true, "oras/app", &digest), want);
        }
    }
    // oras only read the layout.
    assert_shape(&layout);
    run(nixoci().arg("verify").arg(&layout));
}

/// `podman load -i` of the layout's directory tarred as it is (`tar -C
/// DIR -cf x.tar .`) loads the image, which runs (podman refused the old
/// shape: "more than one image in oci").
#[test]
fn podman_loads_the_layout_tarred() {
    let t = tempfile::tempdir().unwrap();
    let layout = image_with_sboms(t.path(), "app");
    let (_, output) = Podman::new().load_and_run(&layout);
    assert_eq!(output, "hi\n");
}

/// skopeo, umoci and oci-image-tool take the layout by its tag, its
/// `referrers/` directory included (oci-image-tool refuses anything named
/// `blobs` that is not a directory, at any depth: the link is one level
/// down).
#[test]
fn skopeo_umoci_and_oci_image_tool_take_the_layout() {
    for tool in ["skopeo", "umoci", "oci-image-tool"] {
        require(tool);
    }
    let t = tempfile::tempdir().unwrap();
    let layout = image_with_sboms(t.path(), "app");
    let out = run(Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", "name=latest"])
        .arg(&layout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Validation succeeded"), "{text}");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(t.path().join("bundle")));
    assert!(t.path().join("bundle/rootfs/bin/busybox").is_file());
    let inspected = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:latest", layout.display())));
    let inspected: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["Digest"], json!(manifest_digest(&layout)));
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("dir:{}", t.path().join("copied").display())));
}

/// `inspect` lists the image, then the referrers the nested layout
/// lists, untagged (as when `index.json` listed them); `archive` holds the
/// image alone.
#[test]
fn inspect_lists_the_referrers_and_archive_holds_the_image() {
    let t = tempfile::tempdir().unwrap();
    let layout = image_with_sboms(t.path(), "app");
    let out = run(nixoci().arg("inspect").arg(&layout).arg("--json"));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = listed.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{listed}");
    assert_eq!(entries[0]["tag"], json!("latest"));
    assert_eq!(entries[0]["digest"], json!(manifest_digest(&layout)));
    assert!(entries[1..].iter().all(|e| e["tag"].is_null()), "{listed}");
    assert_eq!(
        digests(&Value::from(&entries[1..])),
        nested_referrers(&layout)
    );
    let archive = t.path().join("app.tar");
    run(nixoci()
        .arg("archive")
        .arg(&layout)
        .arg("-o")
        .arg(&archive)
        .arg("-q"));
    let index = run(Command::new("tar")
        .arg("-xOf")
        .arg(&archive)
        .arg("index.json"));
    let index: Value = serde_json::from_slice(&index.stdout).unwrap();
    assert_eq!(digests(&index["manifests"]), [manifest_digest(&layout)]);
}

/// `nixoci pull REF DIR --referrers` writes the same shape: `crane push
/// DIR` takes it, `verify` passes, and the referrers are those pushed.
#[test]
fn pull_with_referrers_writes_a_layout_crane_pushes() {
    let t = tempfile::tempdir().unwrap();
    let layout = image_with_sboms(t.path(), "app");
    let want = nested_referrers(&layout);
    let regs = Registries::start();
    for (i, (host, _)) in regs.each().into_iter().enumerate() {
        let reference = format!("{host}/src/app:1");
        nixoci_push(t.path(), &layout, &reference);
        let pulled = t.path().join(format!("pulled{i}"));
        run(nixoci_in(t.path())
            .arg("pull")
            .arg(&reference)
            .arg(&pulled)
            .args(["--referrers", "-q"]));
        assert_crane_accepts(&pulled);
        assert_eq!(nested_referrers(&pulled), want, "{host}");
        assert_eq!(
            read_json(&pulled.join("referrers/index.json"))["manifests"][0],
            read_json(&pulled.join("index.json"))["manifests"][0]
        );
        run(nixoci().arg("verify").arg(&pulled));
        crane_push(t.path(), &pulled, &format!("{host}/again/app:1"));
    }
}

/// `verify` checks the nested layout's shape and refuses, saying what to
/// do: `referrers/blobs` a link (to `../blobs`, or anywhere), its
/// `sha256` a link elsewhere or a directory of blobs of its own (what a
/// copy that follows links makes), `referrers` a link out of the layout
/// (which `push` refuses to read, before it asks the registry anything),
/// and image entries that are not `index.json`'s. `sbom --attach` into a
/// wrong shape refuses too, and changes nothing.
#[test]
fn verify_refuses_a_referrers_layout_of_another_shape() {
    let t = tempfile::tempdir().unwrap();
    let layout = image_with_sboms(t.path(), "app");
    let outside = t.path().join("outside");
    fs::create_dir_all(outside.join("sha256")).unwrap();
    let copy = |name: &str| -> PathBuf {
        let dir = t.path().join(name);
        run(Command::new("cp").arg("-a").arg(&layout).arg(&dir));
        dir
    };
    let relink = |dir: &Path, target: &Path| {
        let blobs = dir.join("referrers/blobs");
        fs::remove_dir_all(&blobs).unwrap();
        std::os::unix::fs::symlink(target, &blobs).unwrap();
    };
    let fix = "&& ln -s ../../blobs/sha256";

    let parent_link = copy("parent-link");
    relink(&parent_link, Path::new("../blobs"));
    let elsewhere = copy("elsewhere");
    relink(&elsewhere, &outside);
    let sha_elsewhere = copy("sha-elsewhere");
    let link = sha_elsewhere.join("referrers/blobs/sha256");
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(outside.join("sha256"), &link).unwrap();
    let own_blobs = copy("own-blobs");
    fs::remove_file(own_blobs.join("referrers/blobs/sha256")).unwrap();
    run(Command::new("cp")
        .arg("-r")
        .arg(own_blobs.join("blobs/sha256"))
        .arg(own_blobs.join("referrers/blobs/sha256")));
    let out_of_layout = copy("out-of-layout");
    let moved = t.path().join("moved-referrers");
    fs::rename(out_of_layout.join("referrers"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, out_of_layout.join("referrers")).unwrap();
    let other_image = copy("other-image");
    let path = other_image.join("referrers/index.json");
    let mut nested = read_json(&path);
    nested["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = json!("other");
    fs::write(&path, serde_json::to_vec(&nested).unwrap()).unwrap();

    for (dir, says) in [
        (
            &parent_link,
            "referrers/blobs: a symbolic link (to ../blobs), not a directory holding the one link blobs/sha256 -> ../../blobs/sha256".to_owned(),
        ),
        (
            &elsewhere,
            format!("referrers/blobs: a symbolic link (to {})", outside.display()),
        ),
        (
            &sha_elsewhere,
            format!(
                "referrers/blobs/sha256: a link to {}, not to ../../blobs/sha256",
                outside.join("sha256").display()
            ),
        ),
        (
            &own_blobs,
            "referrers/blobs/sha256: a directory with blobs of its own, not the link to ../../blobs/sha256".to_owned(),
        ),
    ] {
        let all = verify_problems(dir);
        assert!(all.contains(&says), "{}: no {says:?} in {all}", dir.display());
        assert!(
            all.contains(&format!("rm -rf {}/referrers/blobs", dir.display())) && all.contains(fix),
            "{}: no fix in {all}",
            dir.display()
        );
    }
    let all = verify_problems(&out_of_layout);
    assert!(
        all.contains(&format!(
            "referrers: a symbolic link (to {})",
            moved.display()
        )) && all.contains("never follows a link out of a layout"),
        "{all}"
    );
    let err = run_fail(
        nixoci_in(t.path())
            .arg("push")
            .arg(&out_of_layout)
            .arg("127.0.0.1:9/none/app:1"),
    );
    assert!(
        err.contains(&format!(
            "{}/referrers: a symbolic link",
            out_of_layout.display()
        )) && err.contains("never follows a link out of a layout"),
        "{err}"
    );
    let all = verify_problems(&other_image);
    assert!(
        all.contains("referrers/index.json: its first entries must be index.json's image entries as they are"),
        "{all}"
    );

    // An attach into a wrong shape writes nothing, and says why.
    let before = snapshot(&own_blobs);
    let err =
        run_fail(
            nixoci()
                .arg("sbom")
                .arg(&own_blobs)
                .args(["--attach", "--format", "cyclonedx"]),
        );
    assert!(
        err.contains("the referrers layout is not as nixoci writes it, so nothing was attached")
            && err.contains("a directory with blobs of its own")
            && err.contains(fix),
        "{err}"
    );
    assert!(diff(&before, &snapshot(&own_blobs)).is_none());
    // The fix the message gives restores a layout that verifies.
    run(Command::new("sh").arg("-c").arg(format!(
        "rm -rf {0}/referrers/blobs && mkdir {0}/referrers/blobs && ln -s ../../blobs/sha256 {0}/referrers/blobs/sha256",
        own_blobs.display()
    )));
    run(nixoci().arg("verify").arg(&own_blobs));
}

/// What a failed `verify DIR` printed, both streams.
fn verify_problems(dir: &Path) -> String {
    let out = nixoci().arg("verify").arg(dir).output().unwrap();
    assert!(!out.status.success(), "{} verified", dir.display());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Layouts of the older shape, with the referrers in `index.json` itself,
/// are still read: one as an older nixoci wrote it (the same entries, in
/// `index.json`), and one `oras cp -r REF --to-oci-layout` wrote. Both
/// verify, and `nixoci push` carries their referrers. Attaching to the
/// older shape moves its referrers into `referrers/`: `index.json` then
/// holds the image alone, and crane takes it.
#[test]
fn layouts_with_referrers_in_index_json_are_still_read() {
    let t = tempfile::tempdir().unwrap();
    let layout = image_with_sboms(t.path(), "app");
    let digest = manifest_digest(&layout);
    let want = nested_referrers(&layout);
    let older = t.path().join("older");
    run(Command::new("cp").arg("-a").arg(&layout).arg(&older));
    fs::copy(
        layout.join("referrers/index.json"),
        older.join("index.json"),
    )
    .unwrap();
    fs::remove_dir_all(older.join("referrers")).unwrap();
    run(nixoci().arg("verify").arg(&older));

    let regs = Registries::start();
    for (host, api) in regs.each() {
        let report = nixoci_push(t.path(), &older, &format!("{host}/older/app:1"));
        assert_eq!(digests(&report["referrers"]), want, "{report}");
        assert_eq!(listed(&host, api, "older/app", &digest), want, "{host}");
        // What oras writes from a registry: the referrers in index.json.
        let from_oras = t.path().join(format!("oras-{}", u8::from(api)));
        run(oras(t.path())
            .args(["cp", "-r", "--from-plain-http"])
            .arg(format!("{host}/older/app:1"))
            .arg("--to-oci-layout")
            .arg(format!("{}:latest", from_oras.display())));
        let index = read_json(&from_oras.join("index.json"));
        assert_eq!(index["manifests"].as_array().unwrap().len(), 3, "{index}");
        run(nixoci().arg("verify").arg(&from_oras));
        let report = nixoci_push(t.path(), &from_oras, &format!("{host}/from-oras/app:1"));
        assert_eq!(digests(&report["referrers"]), want, "{report}");
        assert_eq!(listed(&host, api, "from-oras/app", &digest), want, "{host}");
    }

    // Attaching again (the same SBOM) moves the referrers.
    run(nixoci().arg("sbom").arg(&older).args(["--attach", "-q"]));
    assert_shape(&older);
    assert_eq!(
        fs::read(older.join("index.json")).unwrap(),
        fs::read(layout.join("index.json")).unwrap()
    );
    run(nixoci().arg("verify").arg(&older));
}

/// A directory holding only busybox-static, for `builtins.path` (as
/// tests/nix.rs makes it: under the target's temporary directory, named
/// by the binary's digest, filled aside and renamed into place).
fn busybox_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let bytes = fs::read(busybox()).unwrap();
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let dir = parent.join(format!("busybox-{}", &digest[..16]));
        if !dir.join("busybox").is_file() {
            fs::create_dir_all(parent).unwrap();
            let tmp = tempfile::Builder::new()
                .prefix(".busybox-")
                .tempdir_in(parent)
                .unwrap();
            file(tmp.path(), "busybox", &bytes, 0o755);
            if fs::rename(tmp.path(), &dir).is_err() {
                assert!(dir.join("busybox").is_file(), "{}", dir.display());
            }
        }
        dir
    })
    .clone()
}

/// `nix-build tests/nix/images.nix -A attr` with the tool under test.
fn nix_build(attr: &str) -> PathBuf {
    let out = run(nix_command("nix-build")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("tests/nix/images.nix")
        .arg("--arg")
        .arg("tool")
        .arg(env!("CARGO_BIN_EXE_nixoci"))
        .arg("--arg")
        .arg("busybox")
        .arg(busybox_dir())
        .args(["-A", attr, "--no-out-link"]));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The Nix path: `ociImage { sbom = [ "spdx" "cyclonedx" ]; }` (and with
/// `strictReferences`, which still holds: the nested layout's link names
/// no store path) writes the same shape through the same code: `crane
/// push result REF` takes it (digest and validate), `oras cp -r
/// --from-oci-layout result/referrers:latest` copies the image and both
/// SBOMs, `nixoci push` carries them, and it verifies.
#[test]
fn a_nix_built_layout_with_sboms_has_the_same_shape() {
    let t = tempfile::tempdir().unwrap();
    let reg = ReferrersRegistry::start();
    for attr in ["withSbom", "strictWithSbom"] {
        let result = nix_build(attr);
        assert_shape(&result);
        run(nixoci().arg("verify").arg(&result));
        let digest = manifest_digest(&result);
        let want = nested_referrers(&result);
        let repo = attr.to_lowercase();
        crane_push(
            t.path(),
            &result,
            &reg.reference(&format!("{repo}/crane:1")),
        );
        let reference = reg.reference(&format!("{repo}/oras:1"));
        run(oras(t.path())
            .args(["cp", "-r", "--to-plain-http", "--from-oci-layout"])
            .arg(format!("{}/referrers:latest", result.display()))
            .arg(&reference));
        let resolved = run(crane(t.path()).args(["digest", "--insecure", &reference]));
        assert_eq!(String::from_utf8_lossy(&resolved.stdout).trim(), digest);
        assert_eq!(oras_discover(t.path(), &reference), want, "{attr}");
        assert_eq!(
            listed(&reg.host(), true, &format!("{repo}/oras"), &digest),
            want
        );
        nixoci_push(
            t.path(),
            &result,
            &reg.reference(&format!("{repo}/nixoci:1")),
        );
        assert_eq!(
            listed(&reg.host(), true, &format!("{repo}/nixoci"), &digest),
            want
        );
    }
}
