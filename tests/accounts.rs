//! The account files of `src/accounts` as shadow's own checkers read them:
//! `pwck -r` and `grpck -r` (Debian's `passwd` package) on a scratch root
//! holding the rendered `/etc/passwd`, `/etc/group` and `/etc/shadow`, the
//! home directories the module lists, `/root` and the login shells. The
//! one warning left is by design: `nobody`'s home is `/nonexistent`.
//! `-R` chroots, so these tests run as root, as CI does.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use nixoci::test_support::{
    accounts, Accounts, AccountsBase, AccountsBaseFile, AccountsGroup, AccountsUser,
};

fn check(tool: &str, root: &Path) -> (Option<i32>, String) {
    common::require(tool);
    let out = Command::new(tool)
        .arg("-r")
        .arg("-R")
        .arg(root)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

fn scratch_root(a: &Accounts) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    fs::create_dir(&etc).unwrap();
    fs::write(etc.join("passwd"), &a.passwd).unwrap();
    fs::write(etc.join("group"), &a.group).unwrap();
    fs::write(etc.join("shadow"), &a.shadow).unwrap();
    fs::set_permissions(etc.join("shadow"), fs::Permissions::from_mode(0o640)).unwrap();
    for h in &a.homes {
        fs::create_dir_all(root.path().join(h.path.trim_start_matches('/'))).unwrap();
    }
    fs::create_dir(root.path().join("root")).unwrap();
    for shell in ["bin/sh", "sbin/nologin"] {
        let p = root.path().join(shell);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

fn users(json: &str) -> Vec<AccountsUser> {
    serde_json::from_str(json).unwrap()
}

fn groups(json: &str) -> Vec<AccountsGroup> {
    serde_json::from_str(json).unwrap()
}

const NOBODY: &str = "user 'nobody': directory '/nonexistent' does not exist\npwck: no changes\n";

#[test]
fn pwck_and_grpck_accept_the_files() {
    let a = accounts(
        &users(
            r#"[{"name":"app","uid":1000,"groups":["staff"]},
                {"name":"web","uid":1001,"shell":"/bin/sh","home":"/srv/web"}]"#,
        ),
        &groups(r#"[{"name":"staff","gid":50,"members":["web"]}]"#),
        &AccountsBase::default(),
    )
    .unwrap();
    let root = scratch_root(&a);
    assert_eq!(check("pwck", root.path()), (Some(2), NOBODY.to_owned()));
    assert_eq!(check("grpck", root.path()), (Some(0), String::new()));
}

#[test]
fn pwck_and_grpck_accept_a_merged_base() {
    let file = |s: &str| {
        Some(AccountsBaseFile {
            bytes: s.as_bytes().to_vec(),
            layer: "sha256:base".into(),
        })
    };
    let base = AccountsBase {
        passwd: file("root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/root:/sbin/nologin"),
        group: file("root:x:0:\ndaemon:x:1:\nwheel:x:10:root"),
        shadow: file("root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::"),
    };
    let a = accounts(
        &users(r#"[{"name":"app","uid":1000,"groups":["wheel"]}]"#),
        &[],
        &base,
    )
    .unwrap();
    assert!(a
        .group
        .starts_with(b"root:x:0:\ndaemon:x:1:\nwheel:x:10:root,app\n"));
    let root = scratch_root(&a);
    assert_eq!(check("pwck", root.path()), (Some(2), NOBODY.to_owned()));
    assert_eq!(check("grpck", root.path()), (Some(0), String::new()));
}
