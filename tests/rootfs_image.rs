//! Users, groups and `/tmp` of the layer and image specs (issue 24), run:
//! podman resolves the declared user by name, on its own and over a base
//! image with its own `/etc/passwd` (a layout and a docker archive); umoci
//! and `nixoci unpack` make the same tree (modes, owners, link targets,
//! bytes); two builds give the same bytes; each refusal's message.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// The applets the tests run, as links to `/bin/busybox`.
const APPLETS: [&str; 6] = ["sh", "id", "touch", "ls", "cat", "stat"];

/// Files and links of a layer holding busybox and its applets; busybox
/// is copied to `dir` first (so a test can change its mtime).
fn busybox_layer(dir: &Path) -> Value {
    let copy = dir.join("busybox");
    fs::copy(busybox(), &copy).unwrap();
    let links: Vec<Value> = APPLETS
        .iter()
        .map(|a| json!({"path": format!("/bin/{a}"), "target": "busybox"}))
        .collect();
    json!({
        "files": [{"source": copy, "destination": "/bin/busybox", "mode": "0555"}],
        "symlinks": links,
    })
}

const BASE_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# the web server\nwww:x:33:33:www-data:/var/www:/sbin/nologin\n";
const BASE_GROUP: &str = "root:x:0:\nwww:x:33:\nshadow:x:42:\n";
const BASE_SHADOW: &str = "root:*:19000:0:99999:7:::\nwww:*:19000:0:99999:7:::\n";

/// A base image with busybox and its own `/etc/passwd`, `/etc/group` and
/// `/etc/shadow` (0640 root:shadow, as Debian has it), as a layout in
/// `dir/base`.
fn base_layout(dir: &Path) -> PathBuf {
    let mut layer = busybox_layer(dir);
    let files = layer["files"].as_array_mut().unwrap();
    for (text, dest, mode, gid) in [
        (BASE_PASSWD, "/etc/passwd", "0644", 0),
        (BASE_GROUP, "/etc/group", "0644", 0),
        (BASE_SHADOW, "/etc/shadow", "0640", 42),
    ] {
        files.push(json!({"text": text, "destination": dest, "mode": mode, "gid": gid}));
    }
    let spec = dir.join("base.json");
    write_json(
        &spec,
        &json!({"layers": [layer], "architecture": "amd64", "config": {"Env": ["PATH=/bin"]}}),
    );
    build(&spec, &dir.join("base"))
}

/// The app image: users `app` (and `www` from the base, when given),
/// `tmp`, `config.User = "app"`; over `from` when given, else with its
/// own busybox layer.
fn app_spec(dir: &Path, from: Option<&Path>) -> PathBuf {
    let mut spec = json!({
        "architecture": "amd64",
        "users": [{"name": "app", "uid": 1000}],
        "tmp": true,
        "config": {"User": "app", "Env": ["PATH=/bin"]},
    });
    match from {
        Some(base) => spec["fromImage"] = json!(base),
        None => spec["layers"] = json!([busybox_layer(dir)]),
    }
    let path = dir.join("app.json");
    write_json(&path, &spec);
    path
}

/// Load `layout` into `podman` (as an oci-archive tarball); the image ID.
fn load(podman: &Podman, layout: &Path) -> String {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("image.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(layout)
        .arg("."));
    let loaded = run(podman.cmd().arg("load").arg("-q").arg("-i").arg(&archive));
    let text = String::from_utf8_lossy(&loaded.stdout).into_owned();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Loaded image: ")
                .or_else(|| l.strip_prefix("Loaded image(s): "))
        })
        .unwrap_or_else(|| panic!("no loaded image in {text:?}"))
        .trim()
        .to_owned()
}

/// Run `script` with busybox sh in `image` (no network); its stdout.
fn sh(podman: &Podman, image: &str, script: &str) -> String {
    let out = run(podman.cmd().args([
        "run",
        "--rm",
        "--network=none",
        image,
        "/bin/sh",
        "-c",
        script,
    ]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the image lets `app` do: its ids, /tmp and its home writable,
/// /tmp sticky, the root directory not writable.
fn assert_runs_as_app(podman: &Podman, image: &str) {
    let out = sh(
        podman,
        image,
        "id; touch /tmp/x && echo tmp ok; touch \"$HOME/x\" && echo home $HOME ok; ls -ld /tmp; touch /x 2>&1 || echo refused",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("uid=1000(app) gid=1000(app)"), "{out}");
    assert_eq!(lines[1], "tmp ok", "{out}");
    assert_eq!(lines[2], "home /home/app ok", "{out}");
    assert!(lines[3].starts_with("drwxrwxrwt "), "{out}");
    assert_eq!(lines[4], "touch: /x: Permission denied", "{out}");
    assert_eq!(lines[5], "refused", "{out}");
}

/// Issue 24: podman runs an image whose spec declares `app` as `app`.
#[test]
fn podman_runs_as_the_declared_user() {
    let t = tempfile::tempdir().unwrap();
    let layout = build(&app_spec(t.path(), None), &t.path().join("app"));
    let podman = Podman::new();
    let image = load(&podman, &layout);
    assert_runs_as_app(&podman, &image);
}

/// Issue 24: over a base image with its own `/etc/passwd`, as a layout
/// and as a docker archive, both the base's user and `app` resolve, and
/// the base's lines are kept byte for byte.
#[test]
fn podman_resolves_the_base_users_and_the_new_ones() {
    let t = tempfile::tempdir().unwrap();
    let base = base_layout(t.path());
    let archive = t.path().join("base.tar");
    run(nixoci()
        .arg("archive")
        .arg(&base)
        .arg("-o")
        .arg(&archive)
        .args(["--format", "docker", "-q"]));
    let podman = Podman::new();
    for (name, from) in [("layout", &base), ("docker archive", &archive)] {
        let dir = t.path().join(name.replace(' ', "-"));
        fs::create_dir(&dir).unwrap();
        let layout = build(&app_spec(&dir, Some(from)), &dir.join("app"));
        let image = load(&podman, &layout);
        assert_runs_as_app(&podman, &image);
        let out = sh(&podman, &image, "id www; id app; cat /etc/passwd");
        let (ids, passwd) = out.split_at(out.find("root:").expect("the passwd"));
        let ids: Vec<&str> = ids.lines().collect();
        assert!(
            ids[0].starts_with("uid=33(www) gid=33(www)"),
            "{name}: {out}"
        );
        assert!(
            ids[1].starts_with("uid=1000(app) gid=1000(app)"),
            "{name}: {out}"
        );
        assert_eq!(
            passwd,
            format!("{BASE_PASSWD}app:x:1000:1000::/home/app:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n"),
            "{name}"
        );
    }
}

/// Owners of every path below `root`.
fn owners(root: &Path) -> BTreeMap<PathBuf, (u32, u32)> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            (
                e.path().strip_prefix(root).unwrap().to_owned(),
                (m.uid(), m.gid()),
            )
        })
        .collect()
}

/// Issue 24: umoci unpacks the image over a base as `nixoci unpack` does:
/// modes (1777 included), owners, link targets and bytes.
#[test]
fn umoci_and_nixoci_unpack_the_accounts_alike() {
    require("umoci");
    let t = tempfile::tempdir().unwrap();
    let base = base_layout(t.path());
    let layout = build(&app_spec(t.path(), Some(&base)), &t.path().join("app"));
    let mine = t.path().join("mine");
    run(nixoci()
        .arg("unpack")
        .arg(format!("{}:latest", layout.display()))
        .arg(&mine)
        .arg("-q"));
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let theirs = bundle.join("rootfs");
    if let Some(d) = diff(&snapshot(&mine), &snapshot(&theirs)) {
        panic!("nixoci unpack and umoci unpack differ: {d}");
    }
    assert_eq!(owners(&mine), owners(&theirs));
    for root in [&mine, &theirs] {
        let stat = |p: &str| {
            let m = fs::symlink_metadata(root.join(p)).unwrap();
            (m.mode() & 0o7777, m.uid(), m.gid())
        };
        assert_eq!(stat("tmp"), (0o1777, 0, 0));
        assert_eq!(stat("home"), (0o755, 0, 0));
        assert_eq!(stat("home/app"), (0o700, 1000, 1000));
        assert_eq!(stat("etc/passwd"), (0o644, 0, 0));
        assert_eq!(stat("etc/group"), (0o644, 0, 0));
        // The base's mode and owner.
        assert_eq!(stat("etc/shadow"), (0o640, 0, 42));
        assert_eq!(
            fs::read_to_string(root.join("etc/shadow")).unwrap(),
            format!("{BASE_SHADOW}app:*:::::::\nnobody:*:::::::\n")
        );
        assert_eq!(
            fs::read_to_string(root.join("etc/group")).unwrap(),
            format!("{BASE_GROUP}app:x:1000:\nnogroup:x:65534:\n")
        );
        assert!(fs::read_to_string(root.join("etc/nsswitch.conf"))
            .unwrap()
            .starts_with("passwd: files\ngroup: files\n"));
        assert_eq!(
            fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
    }
}

/// Issue 24: the same specs built in two directories, with another umask
/// and other mtimes on the sources, give the same bytes.
#[test]
fn accounts_build_to_the_same_bytes_twice() {
    let mut digests = Vec::new();
    for (umask, mtime) in [("022", "@1000000000"), ("077", "@1700000000")] {
        let t = tempfile::tempdir().unwrap();
        let spec = app_spec(t.path(), None);
        run(Command::new("touch")
            .args(["-h", "-d", mtime])
            .arg(t.path().join("busybox")));
        let out = t.path().join("app");
        run(Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" build \"$1\" -o \"$2\" --quiet"
            ))
            .arg(env!("CARGO_BIN_EXE_nixoci"))
            .arg(&spec)
            .arg(&out)
            .env_remove("SOURCE_DATE_EPOCH"));
        digests.push((manifest_digest(&out), blobs(&out)));
    }
    assert_eq!(digests[0], digests[1]);
}

/// The error of `nixoci build` on an image spec `spec` (relative to a
/// directory holding the base image at `base`, when `with_base`).
fn build_error(spec: Value, with_base: bool) -> String {
    let t = tempfile::tempdir().unwrap();
    let mut spec = spec;
    spec["architecture"] = json!("amd64");
    if with_base {
        let base = base_layout(t.path());
        spec["fromImage"] = json!(base);
    }
    file(
        t.path(),
        "rootfs/etc/passwd",
        b"root:x:0:0::/root:/bin/sh\n",
        0o644,
    );
    let path = t.path().join("image.json");
    write_json(&path, &spec);
    run_fail(
        nixoci()
            .arg("build")
            .arg(&path)
            .arg("-o")
            .arg(t.path().join("out"))
            .arg("--quiet"),
    )
}

/// Issue 24: each refusal of users and groups, and of `config.User`,
/// with its message.
#[test]
fn bad_accounts_are_refused_naming_both_entries() {
    let layer = |extra: Value| {
        let mut l = json!({"files": [{"text": "x\n", "destination": "/x"}]});
        for (k, v) in extra.as_object().unwrap() {
            l[k] = v.clone();
        }
        json!({"layers": [l]})
    };
    let cases: Vec<(Value, bool, &str)> = vec![
        (
            layer(json!({"users": [{"name": "app", "uid": 1000}, {"name": "app", "uid": 1001}]})),
            false,
            "layers[0]: users[0] \"app\" (uid 1000) and users[1] \"app\" (uid 1001): the same name app; give each user its own name",
        ),
        (
            layer(json!({"users": [{"name": "app", "uid": 1000}, {"name": "bob", "uid": 1000}]})),
            false,
            "layers[0]: users[0] \"app\" (uid 1000) and users[1] \"bob\" (uid 1000): the same uid 1000; give each user its own uid",
        ),
        (
            layer(json!({"groups": [{"name": "staff", "gid": 50, "members": ["ghost"]}]})),
            false,
            "layers[0]: groups[0] \"staff\" (gid 50) member \"ghost\": no such user (the image's users: nobody, root); declare it in users or remove it from members",
        ),
        (
            layer(json!({"users": [{"name": "app", "uid": 1000, "group": "nope"}]})),
            false,
            "layers[0]: users[0] \"app\": its primary group \"nope\" does not exist: declare it in groups, or leave group out for a group of the user's own name",
        ),
        (
            json!({"users": [{"name": "www", "uid": 34}]}),
            true,
            "users[0] \"www\" (uid 34) and the base image's /etc/passwd line 3 \"www:x:33:33:www-data:/var/www:/sbin/nologin\" (layer 1 (sha256:",
        ),
        (
            json!({"users": [{"name": "www", "uid": 34}]}),
            true,
            "/base): the base uses this name or uid for another entry; declare it as the base has it (name, uid, gid, home, shell) or pick another",
        ),
        (
            json!({"users": [{"name": "app", "uid": 1000}], "config": {"User": "bob"}}),
            false,
            "config.User \"bob\": the image has no user \"bob\" (its users: root, app, nobody); declare it in users, or give a numeric id",
        ),
        (
            json!({"layers": [{"files": [{"text": "x\n", "destination": "/x"}]}], "config": {"User": "app"}}),
            false,
            "config.User \"app\": the image has no /etc/passwd, so the runtime cannot resolve the user \"app\"; declare it (users = [ { name = \"app\"; uid = 1000; } ]), place an /etc/passwd, or give a numeric id",
        ),
        (
            layer(json!({"users": [{"name": "app", "uid": 1000}], "files": [{"text": "root:x:0:0::/root:/bin/sh\n", "destination": "/etc/passwd"}]})),
            false,
            "layers[0]: /etc/passwd: both users and groups and files[0] (inline text) place it; let users and groups write it (give the accounts there), or drop users and groups",
        ),
        (
            layer(json!({"users": [{"name": "app", "uid": 1000}], "files": [{"source": "rootfs", "destination": "/"}]})),
            false,
            "/rootfs/etc/passwd place it; let users and groups write it (give the accounts there), or drop users and groups",
        ),
    ];
    for (spec, with_base, want) in cases {
        let err = build_error(spec.clone(), with_base);
        assert!(err.contains(want), "{spec}:\nwant {want}\ngot {err}");
    }
}

/// `nixoci STEP SPEC -o OUT -q` in `dir`; its stderr when it fails.
fn step(dir: &Path, step: &str, spec: Value, out: &str) -> Result<PathBuf, String> {
    let path = dir.join(format!("{out}.json"));
    write_json(&path, &spec);
    let o = nixoci()
        .arg(step)
        .arg(&path)
        .arg("-o")
        .arg(dir.join(out))
        .arg("-q")
        .output()
        .unwrap();
    if o.status.success() {
        Ok(dir.join(out))
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// Issue 24, the steps Nix runs: `layer.json` records the users and groups
/// of the `/etc/passwd` and `/etc/group` a layer places (written by users
/// and groups, or given as a file), and nothing for a layer without them
/// (its bytes as before); `nixoci config` checks `config.User` against
/// them, and refuses users and groups over a layer that has accounts.
#[test]
fn layer_json_records_accounts_for_config_user() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let plain = step(
        dir,
        "layer",
        json!({"files": [{"text": "x\n", "destination": "/x"}]}),
        "plain",
    )
    .unwrap();
    let info = read_json(&plain.join("layer.json"));
    assert_eq!(
        info.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["diffId", "digest", "mediaType", "size", "storePaths"]
    );
    let users = step(
        dir,
        "layer",
        json!({"users": [{"name": "app", "uid": 1000, "groups": ["staff"]}], "groups": [{"name": "staff", "gid": 50}]}),
        "users",
    )
    .unwrap();
    assert_eq!(
        read_json(&users.join("layer.json"))["accounts"],
        json!({
            "users": [{"name": "root", "uid": 0}, {"name": "app", "uid": 1000}, {"name": "nobody", "uid": 65534}],
            "groups": [{"name": "root", "gid": 0}, {"name": "staff", "gid": 50}, {"name": "app", "gid": 1000}, {"name": "nogroup", "gid": 65534}],
        })
    );
    // A passwd given as a file, read leniently (a comment, a NIS line).
    let file = step(
        dir,
        "layer",
        json!({"files": [{"text": "# users\nweb:x:80:80::/:/bin/sh\n+::::::\nodd:x:no:1::/:/bin/sh\n", "destination": "/etc/passwd"}]}),
        "file",
    )
    .unwrap();
    assert_eq!(
        read_json(&file.join("layer.json"))["accounts"],
        json!({"users": [{"name": "web", "uid": 80}, {"name": "+"}, {"name": "odd"}]})
    );
    let config = |layers: Value, user: &str, out: &str| {
        step(
            dir,
            "config",
            json!({"layers": layers, "architecture": "amd64", "config": {"User": user}}),
            out,
        )
    };
    config(json!(["plain", "users"]), "app:staff", "c1").unwrap();
    config(json!(["users", "file"]), "web", "c2").unwrap();
    config(json!(["plain"]), "1000:1000", "c3").unwrap();
    let err = config(json!(["users", "plain"]), "web", "c4").unwrap_err();
    assert!(
        err.contains("config.User \"web\": the image has no user \"web\" (its users: root, app, nobody); declare it in users, or give a numeric id"),
        "{err}"
    );
    // The top-most layer's passwd is the image's.
    let err = config(json!(["users", "file"]), "app", "c5").unwrap_err();
    assert!(err.contains("(its users: web, +, odd)"), "{err}");
    let err = config(json!(["file"]), "web:staff", "c6").unwrap_err();
    assert!(
        err.contains("config.User \"web:staff\": the image has no /etc/group, so the runtime cannot resolve the group \"staff\"; declare it (groups = [ { name = \"staff\"; gid = 1000; } ]), place an /etc/group, or give a numeric id"),
        "{err}"
    );
    let err = step(
        dir,
        "config",
        json!({"layers": ["file"], "users": [{"name": "app", "uid": 1000}], "architecture": "amd64"}),
        "c7",
    )
    .unwrap_err();
    assert!(
        err.contains("the image's root filesystem layer (users, groups, directories, symlinks, files, perms, tmp, nixDatabase): users and groups write /etc/passwd, /etc/group and /etc/shadow, which would replace those "),
        "{err}"
    );
    assert!(err.contains("layers[0] ("), "{err}");
}

/// Issue 24: without new accounts, `config.User` is checked against the
/// base image's `/etc/passwd` and `/etc/group`, from a layout and from a
/// docker archive.
#[test]
fn config_user_is_checked_against_the_base() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let base = base_layout(dir);
    let archive = dir.join("base.tar");
    run(nixoci()
        .arg("archive")
        .arg(&base)
        .arg("-o")
        .arg(&archive)
        .args(["--format", "docker", "-q"]));
    for (i, from) in [&base, &archive].into_iter().enumerate() {
        let image = |user: &str| json!({"fromImage": from, "config": {"User": user}});
        step(dir, "config", image("www:shadow"), &format!("ok{i}")).unwrap();
        let err = step(dir, "config", image("bob"), &format!("bad{i}")).unwrap_err();
        assert!(
            err.contains("config.User \"bob\": the image has no user \"bob\" (its users: root, www); declare it in users, or give a numeric id"),
            "{err}"
        );
        let err = step(dir, "config", image("www:web"), &format!("bad-group{i}")).unwrap_err();
        assert!(
            err.contains("config.User \"www:web\": the image has no group \"web\" (its groups: root, www, shadow); declare it in groups, or give a numeric id"),
            "{err}"
        );
    }
}

/// A tar stream of `entries`: (path, type, mode, gid, content or target).
fn tar_of(entries: &[(&str, tar::EntryType, u32, u64, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, mode, gid, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(*gid);
        h.set_mtime(1);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_size(0);
            b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                .unwrap();
        } else {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Issue 24: a base's account files are read as a container reads them:
/// through a relative and an absolute symbolic link, and a hard link; the
/// shadow file keeps the mode and owner of the file the link leads to; a
/// directory at /etc/passwd, or links that loop, are refused naming it.
#[test]
fn base_account_files_are_read_through_links() {
    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};
    let t = tempfile::tempdir().unwrap();
    let bottom = tar_of(&[
        ("usr/", D, 0o755, 0, b""),
        ("usr/etc/", D, 0o755, 0, b""),
        ("usr/etc/passwd", F, 0o644, 0, BASE_PASSWD.as_bytes()),
        ("usr/etc/group.real", F, 0o644, 0, BASE_GROUP.as_bytes()),
        ("usr/etc/group", H, 0o644, 0, b"usr/etc/group.real"),
        ("usr/etc/shadow", F, 0o640, 42, BASE_SHADOW.as_bytes()),
        ("etc/", D, 0o755, 0, b""),
        ("etc/passwd", S, 0o777, 0, b"../usr/etc/passwd"),
        ("etc/group", S, 0o777, 0, b"../usr/etc/group"),
    ]);
    let top = tar_of(&[("etc/shadow", S, 0o777, 0, b"/usr/etc/shadow")]);
    let base = craft(&t.path().join("base"), &[bottom, top], |_, _| {});
    let spec = t.path().join("app.json");
    write_json(
        &spec,
        &json!({"fromImage": base, "architecture": "amd64", "users": [{"name": "app", "uid": 1000}], "config": {"User": "www"}}),
    );
    let layout = build(&spec, &t.path().join("app"));
    let root = t.path().join("root");
    run(nixoci()
        .arg("unpack")
        .arg(format!("{}:latest", layout.display()))
        .arg(&root)
        .arg("-q"));
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(
        read("etc/passwd"),
        format!("{BASE_PASSWD}app:x:1000:1000::/home/app:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n")
    );
    assert_eq!(
        read("etc/group"),
        format!("{BASE_GROUP}app:x:1000:\nnogroup:x:65534:\n")
    );
    assert_eq!(
        read("etc/shadow"),
        format!("{BASE_SHADOW}app:*:::::::\nnobody:*:::::::\n")
    );
    let m = fs::symlink_metadata(root.join("etc/shadow")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 0, 42));
    // The base's own files are as they were.
    assert_eq!(read("usr/etc/passwd"), BASE_PASSWD);

    for (name, entries, want) in [
        (
            "dir",
            vec![
                ("etc/", D, 0o755, 0, &b""[..]),
                ("etc/passwd/", D, 0o755, 0, b""),
            ],
            "/etc/passwd in the base image ",
        ),
        (
            "loop",
            vec![
                ("etc/", D, 0o755, 0, &b""[..]),
                ("etc/passwd", S, 0o777, 0, b"passwd"),
            ],
            "/etc/passwd in the base image ",
        ),
    ] {
        let base = craft(&t.path().join(name), &[tar_of(&entries)], |_, _| {});
        let spec = t.path().join(format!("{name}.json"));
        write_json(
            &spec,
            &json!({"fromImage": base, "architecture": "amd64", "users": [{"name": "app", "uid": 1000}]}),
        );
        let err = run_fail(
            nixoci()
                .arg("build")
                .arg(&spec)
                .arg("-o")
                .arg(t.path().join(format!("{name}-out")))
                .arg("-q"),
        );
        let base = base.display();
        let why = if name == "dir" {
            format!("{want}{base}: it is a directory, not a regular file; fix the base image")
        } else {
            format!("{want}{base}: its symbolic links loop (more than 40 followed)")
        };
        assert!(err.contains(&why), "{name}: want {why}\ngot {err}");
    }
}

/// Path -> (mode, uid, gid) of each entry of the top layer of `layout`.
fn top_layer_modes(layout: &Path) -> BTreeMap<String, (u32, u64, u64)> {
    use std::io::Read;
    let m = read_json(&blob_path(layout, &manifest_digest(layout)));
    let layers = m["layers"].as_array().unwrap();
    let blob = blob_path(layout, layers.last().unwrap()["digest"].as_str().unwrap());
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&fs::read(blob).unwrap()[..])
        .read_to_end(&mut tar)
        .unwrap();
    tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| {
            let h = e.unwrap().header().clone();
            let path = String::from_utf8(h.path_bytes().into_owned()).unwrap();
            (
                path,
                (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            )
        })
        .collect()
}

/// Issue 24: `tmp` makes `/tmp` 1777 where the layer only has it as a
/// parent, leaves a base's `/tmp` and the layer's own alone; a home's
/// parent that the base has keeps the base's mode and owner.
#[test]
fn tmp_and_homes_keep_what_is_there() {
    use tar::EntryType::Directory as D;
    let t = tempfile::tempdir().unwrap();
    let with = |name: &str, spec: Value| {
        let path = t.path().join(format!("{name}.json"));
        let mut spec = spec;
        spec["architecture"] = json!("amd64");
        write_json(&path, &spec);
        top_layer_modes(&build(&path, &t.path().join(name)))
    };
    let under_tmp = json!([{"text": "x\n", "destination": "/tmp/x"}]);
    let own = with(
        "parent",
        json!({"layers": [{"files": under_tmp, "tmp": true}]}),
    );
    assert_eq!(own["tmp/"], (0o1777, 0, 0));
    let own = with(
        "declared",
        json!({"layers": [{"directories": [{"path": "/tmp", "mode": "0700"}], "tmp": true}]}),
    );
    assert_eq!(own["tmp/"], (0o700, 0, 0));
    let base = craft(
        &t.path().join("base"),
        &[tar_of(&[
            ("tmp/", D, 0o755, 0, b""),
            ("home/", D, 0o751, 100, b""),
        ])],
        |_, _| {},
    );
    let over = with(
        "over",
        json!({"fromImage": base, "tmp": true, "users": [{"name": "app", "uid": 1000}]}),
    );
    assert!(!over.contains_key("tmp/"), "{over:?}");
    assert_eq!(over["home/"], (0o751, 0, 100));
    assert_eq!(over["home/app/"], (0o700, 1000, 1000));
}
