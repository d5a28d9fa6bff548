//! The root filesystem arguments of the Nix functions (`users`, `groups`,
//! `directories`, `symlinks`, inline `files`, `perms`, `tmp`,
//! `nixDatabase`): the guide's service image (docs/rootfs.md) built as written and run in
//! podman, users added onto a base image's, a Nix database checked by the
//! host's Nix, and the evaluation checks of every argument.

use super::*;

/// The guide's `service.nix` block (docs/rootfs.md), as written there.
fn readme_service_nix() -> String {
    let readme = fs::read_to_string(repo().join("docs/rootfs.md")).unwrap();
    let start = readme
        .find("```nix\n# service.nix:")
        .expect("docs/rootfs.md has no ```nix block starting with `# service.nix:`");
    let body = &readme[start + "```nix\n".len()..];
    let end = body
        .find("\n```\n")
        .expect("the service.nix block is not closed");
    body[..=end].to_owned()
}

/// Runs `script` with busybox sh in `image`, as the image's user, with no
/// network; what it printed.
fn sh_in(podman: &Podman, image: &str, script: &str) -> String {
    let out = run(podman
        .cmd()
        .args(["run", "--rm", "--network=none", "--entrypoint", "/bin/sh"])
        .arg(image)
        .args(["-c", script]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 24: the guide's non-root service image, read from docs/rootfs.md and
/// built by Nix 2.8 with stand-ins for its packages, runs in podman as
/// `app`: `id` names the user and group, `/tmp` (1777, by default) and
/// the home are writable, `/` is not, the data directory is app's, the
/// `perms` rule gave the app's store `var` to app, `/usr/bin/env` leads
/// into the store path the link brought.
#[test]
fn readme_service_image_runs_as_app_in_podman() {
    let t = tempfile::tempdir().unwrap();
    let service = t.path().join("service.nix");
    fs::write(&service, readme_service_nix()).unwrap();
    let out = run(images_cmd("nix-build", "readmeService")
        .arg("--arg")
        .arg("serviceNix")
        .arg(&service)
        .arg("--no-out-link"));
    let layout = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    run(nixoci().arg("verify").arg(&layout));
    let app = nix_eval("serviceAppPath");
    let coreutils = nix_eval("coreutilsPath");

    let podman = Podman::new();
    let (image, output) = podman.load_and_run(&layout);
    assert_eq!(output, "app in /var/lib/app: data_dir = /var/lib/app\n");
    let script = format!(
        "id; \
         touch /tmp/x && echo tmp written; \
         touch \"$HOME/x\" && echo \"$HOME written\"; \
         ls -ld /tmp; \
         touch /x 2>/dev/null && echo / written || echo / refused; \
         stat -c %u:%g:%a /var/lib/app {app}/var {app}/var/cache; \
         touch {app}/var/cache/x && echo cache written; \
         ls -l /usr/bin/env; \
         /usr/bin/env"
    );
    let got = sh_in(&podman, &image, &script);
    let lines: Vec<&str> = got.lines().collect();
    assert!(lines[0].starts_with("uid=1000(app) gid=1000(app)"), "{got}");
    assert_eq!(lines[1..3], ["tmp written", "/home/app written"], "{got}");
    assert!(lines[3].starts_with("drwxrwxrwt "), "{got}");
    assert!(lines[3].ends_with(" /tmp"), "{got}");
    assert_eq!(
        lines[4..9],
        [
            "/ refused",
            "1000:1000:750",
            "1000:1000:775",
            "1000:1000:775",
            "cache written"
        ],
        "{got}"
    );
    assert!(
        lines[9].ends_with(&format!("/usr/bin/env -> {coreutils}/bin/env")),
        "{got}"
    );
    assert!(lines.contains(&"HOME=/home/app"), "{got}");
}

/// Issue 24: `ociImage { fromImage; users; }` adds its user to a base
/// image's own: from the base's layout and from a docker archive of it,
/// both users resolve in podman, the image runs as the new one, and the
/// base's `/etc/passwd` is kept byte for byte at the head of the new one;
/// the base's `/tmp` stays the only one.
#[test]
fn users_onto_a_base_with_its_own_resolve_in_podman() {
    let podman = Podman::new();
    let base = nix_build("usersBase");
    let base_image = podman.load(&base);
    let base_passwd = sh_in(&podman, &base_image, "cat /etc/passwd");
    assert!(
        base_passwd.contains("\nbase:x:500:500::/home/base:/sbin/nologin\n"),
        "{base_passwd}"
    );
    for attr in ["onUsersBaseLayout", "onUsersBaseArchive"] {
        let layout = nix_build(attr);
        run(nixoci().arg("verify").arg(&layout));
        let image = podman.load(&layout);
        let got = sh_in(&podman, &image, "id; id base; ls -ld /tmp; cat /etc/passwd");
        let lines: Vec<&str> = got.lines().collect();
        assert!(
            lines[0].starts_with("uid=1000(app) gid=1000(app)"),
            "{attr}: {got}"
        );
        assert!(
            lines[1].starts_with("uid=500(base) gid=500(base)"),
            "{attr}: {got}"
        );
        assert!(lines[2].starts_with("drwxrwxrwt "), "{attr}: {got}");
        let passwd = got.split_once(" /tmp\n").unwrap().1;
        assert_eq!(
            passwd,
            format!("{base_passwd}app:x:1000:1000::/home/app:/sbin/nologin\n"),
            "{attr}"
        );
    }
}

/// `nix-store --store local?root=DIR` and `nix path-info` of the host's
/// Nix 2.8, on `root`.
fn nix_in(program: &str, root: &Path) -> Command {
    let mut c = nix(program);
    c.arg("--store")
        .arg(format!("local?root={}", root.display()));
    c
}

/// Each path's narHash, narSize and references, as `nix path-info --json`
/// gives them (of the host's store, or of `root`'s).
fn path_infos(root: Option<&Path>, paths: &[&str]) -> Value {
    let mut c = match root {
        Some(r) => nix_in("nix", r),
        None => nix("nix"),
    };
    let out = run(c.args(["path-info", "--json"]).args(paths));
    let infos: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    infos
        .into_iter()
        .map(|i| {
            json!({
                "path": i["path"],
                "narHash": i["narHash"],
                "narSize": i["narSize"],
                "references": i["references"],
            })
        })
        .collect()
}

/// The digest of the last layer of `layout`'s image.
fn last_layer_digest(layout: &Path) -> String {
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob_path(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let layers = manifest["layers"].as_array().unwrap();
    layers.last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Issue 24: `ociImage { nixDatabase = true; }` registers every store path
/// of the image, the closure's and a given layer's, and only those
/// (busybox, copied to /bin, is not one): the
/// host's Nix 2.8 verifies the unpacked tree's store, contents included,
/// and reads from it the references and NAR hashes its own store has. The
/// same image built again under another name (its own layer built anew,
/// alone) has the same database layer, and Nix's `--check` rebuild of
/// that layer gives the same bytes.
#[test]
fn nix_database_image_passes_the_host_nix_check() {
    let layout = nix_build("withNixDb");
    run(nixoci().arg("verify").arg(&layout));
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootfs");
    run(nixoci().arg("unpack").arg(&layout).arg(&root));
    let app = nix_eval("appPath");
    let dep = nix_eval("depPath");
    let other = nix_eval("otherPath");
    // The image's store paths (before Nix, which adds its own files).
    let mut in_image: Vec<String> = fs::read_dir(root.join("nix/store"))
        .unwrap()
        .map(|e| format!("/nix/store/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    in_image.sort();
    let mut expected = vec![app.clone(), dep.clone(), other];
    expected.sort();
    assert_eq!(in_image, expected);

    let verified = run(nix_in("nix-store", &root).args(["--verify", "--check-contents"]));
    let said = stderr(&verified);
    assert!(
        !said.contains("error") && !said.contains("modified") && !said.contains("invalid"),
        "{said}"
    );
    let references = run(nix_in("nix-store", &root).args(["-q", "--references", &app]));
    assert_eq!(
        String::from_utf8_lossy(&references.stdout),
        format!("{dep}\n")
    );
    let host = run(nix("nix-store").args(["-q", "--references", &app]));
    assert_eq!(references.stdout, host.stdout);

    // Registered: every store path of the image, and no other, with the
    // host's hashes.
    let all = run(nix_in("nix", &root).args(["path-info", "--all"]));
    let mut registered: Vec<String> = String::from_utf8_lossy(&all.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    registered.sort();
    assert_eq!(registered, expected);
    let paths: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(path_infos(Some(&root), &paths), path_infos(None, &paths));

    let again = nix_build("withNixDbAgain");
    assert_ne!(again, layout);
    assert_eq!(last_layer_digest(&again), last_layer_digest(&layout));
    run(images_cmd("nix-build", "withNixDbLayer").args(["--check", "--no-out-link"]));
}

/// Issue 24: each root filesystem argument the tool would refuse fails at
/// evaluation, naming the function, the attribute and the entry
/// (`tests/nix/bad.nix`).
#[test]
fn rootfs_argument_errors_name_the_function_and_the_attribute() {
    let cases = [
        ("rootfsUserName", "ociLayerTar: users[0].name must be a name of 1 to 32 of a-z, 0-9, _ and -, not starting with a digit or -, optionally ending with $, not \"App\""),
        ("rootfsUserNameLong", "ociImage: users[0].name must be a name of 1 to 32"),
        ("rootfsUserNoUid", "ociLayerTar: users[0]: uid is required ({ name, uid, gid?, group?, home?, shell?, groups?, createHome? })"),
        ("rootfsUserUnknown", "ociLayerTar: users[0]: unknown attribute(s) homeDir; expected name, uid, gid, group, home, shell, groups, createHome"),
        ("rootfsUserUidTooBig", "ociLayerTar: users[0].uid must be an integer from 0 to 4294967294, not 4294967295"),
        ("rootfsUserUidString", "ociImage: users[0].uid must be an integer from 0 to 4294967294, not \"1000\""),
        ("rootfsUserHomeRelative", "ociImage: users[0].home \"home/app\" must be an absolute path (start with /)"),
        ("rootfsUserHomeDotDot", "ociLayerTar: users[0].home \"/home/../etc\" has a '.' or '..' component"),
        ("rootfsUserShellColon", "ociLayerTar: users[0].shell \"/bin/sh:x\" holds a ':' or a newline, which end fields and lines of /etc/passwd"),
        ("rootfsUserGroupsString", "ociLayerTar: users[0].groups must be a list of group names, not \"wheel\""),
        ("rootfsUserCreateHome", "ociLayerTar: users[0].createHome must be true or false, not \"no\""),
        ("rootfsUsersNotList", "ociImage: users must be a list of { name, uid, gid?, group?, home?, shell?, groups?, createHome? }, not an attribute set"),
        ("rootfsUserNotAttrs", "ociLayerTar: users[0] must be { name, uid, gid?, group?, home?, shell?, groups?, createHome? }, not \"app\""),
        ("rootfsGroupMember", "ociLayerTar: groups[0].members[0] must be a name of 1 to 32"),
        ("rootfsGroupNoGid", "ociImage: groups[0]: gid is required ({ name, gid, members? })"),
        ("rootfsDirectoryRoot", "ociLayerTar: directories[0].path \"/\" must name an entry: not / and not ending in /"),
        ("rootfsDirectorySlash", "ociImage: directories[0].path \"/srv/\" must name an entry"),
        ("rootfsDirectoryMode", "ociLayerTar: directories[0].mode must be an octal string like \"0755\" (at most \"07777\"; a Nix integer would be read as decimal), not 1777"),
        ("rootfsDirectoryString", "ociLayerTar: directories[0] must be { path, mode?, uid?, gid? }, not \"/tmp\""),
        ("rootfsDirectoryDotDot", "ociImage: directories[0].path \"/srv/../etc\" has a '.' or '..' component"),
        ("rootfsDirectoryUid", "ociImage: directories[0].uid must be an integer from 0 to 4294967295, not -1"),
        ("rootfsSymlinkNoTarget", "ociLayerTar: symlinks[0]: target is required ({ path, target })"),
        ("rootfsSymlinkEmptyTarget", "ociImage: symlinks[0].target is empty: give what the link points to"),
        ("rootfsSymlinkTargetPath", "ociLayerTar: symlinks[0].target must be a string (what the link points to), not a path"),
        ("rootfsSymlinkRelative", "ociLayerTar: symlinks[0].path \"usr/bin/env\" must be an absolute path"),
        ("rootfsPermsNothing", "ociLayerTar: perms[0] sets nothing: give mode, uid or gid"),
        ("rootfsPermsNoRegex", "ociImage: perms[0]: regex is required: it is matched against each entry's full path, anchored"),
        ("rootfsPermsRelative", "ociLayerTar: perms[0]: path \"var\" must be an absolute path"),
        ("rootfsPermsTypo", "ociImage: perms[0]: unknown attribute(s) mod; expected path, regex, mode, uid, gid"),
        ("rootfsPermsMode", "ociLayerTar: perms[0].mode must be an octal string like \"0755\""),
        ("rootfsTextAndSource", "ociLayerTar: files[0]: give source or text, not both"),
        ("rootfsTextNoDestination", "ociImage: files[0]: text needs a destination (the file's full path in the image)"),
        ("rootfsTextIntoDirectory", "ociLayerTar: files[0]: destination \"/etc/\" must name an entry: not / and not ending in /"),
        ("rootfsTextNumber", "ociLayerTar: files[0].text must be a string, not 5"),
        ("rootfsTextLink", "ociLayerTar: files[0]: link goes with a source in the store, not with text"),
        ("rootfsTextMode", "ociImage: files[0].mode must be an octal string like \"0755\""),
        ("rootfsNoSource", "ociLayerTar: files[0]: source (or text, for an inline file) is required"),
        ("rootfsLayerTmp", "ociLayerTar: tmp must be true or false, not \"yes\""),
        ("rootfsImageTmp", "ociImage: tmp must be true or false, not 1"),
        ("rootfsNixDatabase", "ociImage: nixDatabase must be true or false, not \"yes\""),
        ("rootfsNixUidAlone", "ociLayerTar: nixUid is given without nixDatabase = true: it owns /nix for the Nix database"),
        ("rootfsNixGidAlone", "ociImage: nixGid is given without nixDatabase = true"),
        ("rootfsNixUidNegative", "ociLayerTar: nixUid must be an integer from 0 to 4294967295, not -1"),
    ];
    super::assert_bad_nix_fails(&cases);
}
