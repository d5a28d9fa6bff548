//! The Nix database nixoci writes (`src/nixdb`), read by the host's real
//! Nix 2.8: store paths that Nix itself built into a scratch store
//! (`local?root=DIR`, never the machine's `/nix`) are copied into a second
//! root with nixoci's database and nothing of Nix's; Nix must then verify
//! their contents against it, list their references and give the NAR
//! hashes it computed itself. Fails, never skips, without Nix.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{busybox, require, NIX_CONFIG};
use nixoci::test_support::{nix_base32, nixdb_read, nixdb_scan, write_database, StorePathInfo};

/// A Nix command on the store rooted at `root`.
fn nix(program: &str, root: &Path) -> Command {
    require(program);
    let mut c = Command::new(program);
    c.env("NIX_CONFIG", NIX_CONFIG)
        .arg("--store")
        .arg(format!("local?root={}", root.display()));
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The scratch store Nix built the paths in, and the closure of `app`
/// there: app refers to lib and busybox, lib refers to itself.
struct Built {
    _dir: tempfile::TempDir,
    root: PathBuf,
    app: String,
    closure: Vec<String>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("nixdb-built-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let bb = dir.path().join("bb");
        fs::create_dir(&bb).unwrap();
        fs::copy(busybox(), bb.join("busybox")).unwrap();
        let root = dir.path().join("store");
        fs::create_dir(&root).unwrap();
        let expr = format!(
            r#"let bb = builtins.path {{ path = {bb}; name = "busybox"; }};
                 mk = name: script: derivation {{ inherit name; system = "x86_64-linux";
                   builder = "${{bb}}/busybox"; args = [ "sh" "-c" script ]; }};
                 lib = mk "lib" "${{bb}}/busybox mkdir -p $out/share; echo hi > $out/share/a; ${{bb}}/busybox ln -s $out/share/a $out/self";
             in mk "app" "${{bb}}/busybox mkdir -p $out/bin; echo '${{lib}}/share/a ${{bb}}' > $out/bin/app; ${{bb}}/busybox chmod +x $out/bin/app""#,
            bb = bb.display()
        );
        let app = ok(nix("nix-build", &root)
            .args(["--no-out-link", "-E"])
            .arg(expr))
        .trim()
        .to_owned();
        let closure: Vec<String> = ok(nix("nix-store", &root).args(["-q", "--requisites", &app]))
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(closure.len(), 3, "{closure:?}");
        Built {
            root,
            app,
            closure,
            _dir: dir,
        }
    })
}

/// A new root holding copies of the built closure's store paths and
/// nothing else (no `nix/var`).
fn copy_of_store(parent: &Path) -> PathBuf {
    let b = built();
    let root = parent.join("root");
    fs::create_dir_all(root.join("nix/store")).unwrap();
    for p in &b.closure {
        let from = b.root.join(p.trim_start_matches('/'));
        ok(Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(root.join("nix/store")));
    }
    root
}

/// `nix path-info --json` of `path`: (narHash, narSize, references).
fn path_info(root: &Path, path: &str) -> (String, u64, BTreeSet<String>) {
    let mut c = nix("nix", root);
    c.args(["path-info", "--json", path]);
    if path.ends_with(".drv") {
        // The derivation itself, not its outputs.
        c.arg("--derivation");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&mut c)).unwrap();
    let p = &json[0];
    (
        p["narHash"].as_str().unwrap().to_owned(),
        p["narSize"].as_u64().unwrap(),
        p["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect(),
    )
}

fn sri(hash: &[u8; 32]) -> String {
    nixoci::test_support::nar_sri(hash)
}

fn scanned(root: &Path) -> Vec<StorePathInfo> {
    nixdb_scan(&root.join("nix/store"), &built().closure).unwrap()
}

#[test]
fn nix_verifies_the_contents_against_the_database_and_reads_it_as_its_own() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let root = copy_of_store(t.path());
    let infos = scanned(&root);
    // nixoci's hashes, sizes and references are those Nix recorded.
    for i in &infos {
        assert_eq!(
            (sri(&i.nar_hash), i.nar_size, i.references.clone()),
            path_info(&b.root, &i.path),
            "{}",
            i.path
        );
    }
    write_database(&root, &infos, 1, None).unwrap();

    let out = nix("nix-store", &root)
        .args(["--verify", "--check-contents"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("modified") && !stderr.contains("error"),
        "{stderr}"
    );

    let refs: BTreeSet<String> = ok(nix("nix-store", &root).args(["-q", "--references", &b.app]))
        .lines()
        .map(str::to_owned)
        .collect();
    let want: BTreeSet<String> = b.closure.iter().filter(|p| **p != b.app).cloned().collect();
    assert_eq!(refs, want);
    for p in &b.closure {
        let (hash, size, refs) = path_info(&root, p);
        assert_eq!((hash, size, refs), path_info(&b.root, p), "{p}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(nix("nix", &root).args(["path-info", "--json", &b.app]))).unwrap();
    assert_eq!(json[0]["registrationTime"], 1);
}

#[test]
fn a_wrong_hash_in_the_database_fails_nix_check_contents() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let root = copy_of_store(t.path());
    let mut infos = scanned(&root);
    let lib = infos.iter_mut().find(|i| i.path.ends_with("-lib")).unwrap();
    // Nix prints the hashes of this message in its base 32.
    let good = nix_base32(&lib.nar_hash);
    lib.nar_hash[0] ^= 1;
    let bad = nix_base32(&lib.nar_hash);
    let lib_path = lib.path.clone();
    write_database(&root, &infos, 1, None).unwrap();
    let out: Output = nix("nix-store", &root)
        .args(["--verify", "--check-contents"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "path '{lib_path}' was modified! expected hash 'sha256:{bad}', got 'sha256:{good}'"
        )),
        "{stderr}"
    );
    assert!(b.closure.contains(&lib_path));
}

#[test]
fn the_schema_is_the_one_nix_makes() {
    let b = built();
    let t = tempfile::tempdir().unwrap();
    let root = copy_of_store(t.path());
    write_database(&root, &scanned(&root), 1, None).unwrap();
    type Row = (String, String, String, i64, Option<String>);
    let master = |db: &Path| -> Vec<Row> {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut s = c
            .prepare("SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master ORDER BY rowid")
            .unwrap();
        let rows = s
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<Vec<Row>, _>>()
            .unwrap();
        rows
    };
    let theirs = b.root.join("nix/var/nix/db");
    let ours = root.join("nix/var/nix/db");
    let nix_rows = master(&theirs.join("db.sqlite"));
    assert_eq!(nix_rows.len(), 11, "{nix_rows:?}");
    assert_eq!(master(&ours.join("db.sqlite")), nix_rows);
    assert_eq!(
        fs::read(ours.join("schema")).unwrap(),
        fs::read(theirs.join("schema")).unwrap()
    );
    assert_eq!(fs::read(ours.join("schema")).unwrap(), b"10");
}

#[test]
fn a_database_nix_made_reads_as_nix_path_info_gives_it() {
    let b = built();
    // A copy: Nix's database as a base image holds it, closed.
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("nix/var/nix/db");
    fs::create_dir_all(&db).unwrap();
    fs::copy(
        b.root.join("nix/var/nix/db/db.sqlite"),
        db.join("db.sqlite"),
    )
    .unwrap();
    let before = fs::read(db.join("db.sqlite")).unwrap();
    let read = nixdb_read(t.path()).unwrap();
    // The closure and the two derivations that built it.
    assert_eq!(read.len(), 5, "{read:?}");
    for i in &read {
        let (hash, size, refs) = path_info(&b.root, &i.path);
        assert_eq!(
            (sri(&i.nar_hash), i.nar_size, i.references.clone()),
            (hash, size, refs)
        );
    }
    let app = read.iter().find(|i| i.path == b.app).unwrap();
    assert!(
        app.deriver
            .as_deref()
            .is_some_and(|d| d.ends_with("-app.drv")),
        "{app:?}"
    );
    assert_eq!(fs::read(db.join("db.sqlite")).unwrap(), before);
    assert_eq!(
        fs::read_dir(&db).unwrap().count(),
        1,
        "nothing beside the file"
    );
}

/// Run by [`the_bytes_do_not_depend_on_the_process_or_umask`] in a process
/// of its own: writes the database into `$NIXOCI_NIXDB_OUT`.
#[test]
#[ignore = "run by the_bytes_do_not_depend_on_the_process_or_umask"]
fn write_database_into_nixoci_nixdb_out() {
    let out = PathBuf::from(std::env::var_os("NIXOCI_NIXDB_OUT").expect("NIXOCI_NIXDB_OUT"));
    let infos: Vec<StorePathInfo> =
        serde_json::from_str::<Vec<(String, String, u64, Vec<String>)>>(
            &std::env::var("NIXOCI_NIXDB_PATHS").unwrap(),
        )
        .unwrap()
        .into_iter()
        .map(|(path, hash, size, refs)| StorePathInfo {
            path,
            nar_hash: hex::decode(hash).unwrap().try_into().unwrap(),
            nar_size: size,
            references: refs.into_iter().collect(),
            deriver: None,
            registration_time: None,
        })
        .collect();
    write_database(&out, &infos, 1_700_000_000, None).unwrap();
}

/// Every file below `root`: its path, kind, mode and bytes or target.
fn tree(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt as _;
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.path().symlink_metadata().unwrap();
            let content = if meta.is_file() {
                fs::read(e.path()).unwrap()
            } else if meta.file_type().is_symlink() {
                fs::read_link(e.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                b"dir".to_vec()
            };
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            (rel, meta.permissions().mode(), content)
        })
        .collect()
}

#[test]
fn the_bytes_do_not_depend_on_the_process_or_umask() {
    let t = tempfile::tempdir().unwrap();
    let root = copy_of_store(t.path());
    let infos = scanned(&root);
    let first = t.path().join("first");
    write_database(&first, &infos, 1_700_000_000, None).unwrap();

    // A second process with another umask, later (other mtimes), and the
    // paths given in reverse order.
    let second = t.path().join("second");
    let paths: Vec<(String, String, u64, Vec<String>)> = infos
        .iter()
        .rev()
        .map(|i| {
            (
                i.path.clone(),
                hex::encode(i.nar_hash),
                i.nar_size,
                i.references.iter().rev().cloned().collect(),
            )
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(Command::new("sh")
        .args(["-c", "umask 077 && exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "write_database_into_nixoci_nixdb_out",
            "--ignored",
        ])
        .env("NIXOCI_NIXDB_OUT", &second)
        .env("NIXOCI_NIXDB_PATHS", serde_json::to_string(&paths).unwrap()));

    let (a, b) = (tree(&first), tree(&second));
    assert_eq!(
        a.len(),
        9,
        "{:?}",
        a.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    assert_eq!(a, b);
    // The header fields SQLite changes as it writes (the file change
    // counter at 24, the version-valid-for number at 92) are the same,
    // and so is the writer's version (96).
    let db = |dir: &Path| fs::read(dir.join("nix/var/nix/db/db.sqlite")).unwrap();
    let (x, y) = (db(&first), db(&second));
    for at in [24, 92, 96] {
        assert_eq!(
            x[at..at + 4],
            y[at..at + 4],
            "header bytes {at}..{}",
            at + 4
        );
    }
    assert_eq!(x[24..28], x[92..96]);
}
