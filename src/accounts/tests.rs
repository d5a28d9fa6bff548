use super::*;

fn users(json: &str) -> Vec<User> {
    serde_json::from_str(json).unwrap()
}

fn groups(json: &str) -> Vec<Group> {
    serde_json::from_str(json).unwrap()
}

fn ok(u: &str, g: &str) -> Accounts {
    accounts(&users(u), &groups(g), &Base::default()).unwrap()
}

fn err(u: &str, g: &str) -> String {
    err_on(u, g, &Base::default())
}

fn err_on(u: &str, g: &str, base: &Base) -> String {
    match accounts(&users(u), &groups(g), base) {
        Ok(a) => panic!("accepted: {}", String::from_utf8_lossy(&a.passwd)),
        Err(e) => e.to_string(),
    }
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

fn file(bytes: &str) -> Option<BaseFile> {
    Some(BaseFile {
        bytes: bytes.as_bytes().to_vec(),
        layer: "sha256:abc".into(),
    })
}

#[test]
fn golden_small_example() {
    let a = ok(
        r#"[{"name":"web","uid":1001,"groups":["staff"],"createHome":false},
            {"name":"app","uid":1000,"shell":"/bin/sh"}]"#,
        r#"[{"name":"staff","gid":50,"members":["app"]}]"#,
    );
    assert_eq!(
        text(&a.passwd),
        "root:x:0:0::/root:/bin/sh\n\
         app:x:1000:1000::/home/app:/bin/sh\n\
         web:x:1001:1001::/home/web:/sbin/nologin\n\
         nobody:x:65534:65534::/nonexistent:/sbin/nologin\n"
    );
    assert_eq!(
        text(&a.group),
        "root:x:0:\nstaff:x:50:app,web\napp:x:1000:\nweb:x:1001:\nnogroup:x:65534:\n"
    );
    assert_eq!(
        text(&a.shadow),
        "root:*:::::::\napp:*:::::::\nweb:*:::::::\nnobody:*:::::::\n"
    );
    assert_eq!(
        text(&a.nsswitch),
        "passwd: files\ngroup: files\nshadow: files\ngshadow: files\nhosts: files dns\n\
         networks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n"
    );
    assert_eq!(
        a.homes,
        vec![Home {
            path: "/home/app".into(),
            uid: 1000,
            gid: 1000,
            mode: 0o700
        }]
    );
}

#[test]
fn order_of_the_lists_does_not_matter() {
    let a = ok(
        r#"[{"name":"a","uid":1000},{"name":"b","uid":1001,"groups":["g","h"]}]"#,
        r#"[{"name":"g","gid":7},{"name":"h","gid":8,"members":["a"]}]"#,
    );
    let b = ok(
        r#"[{"name":"b","uid":1001,"groups":["g","h"]},{"name":"a","uid":1000}]"#,
        r#"[{"name":"h","gid":8,"members":["a"]},{"name":"g","gid":7}]"#,
    );
    assert_eq!(a, b);
    assert_eq!(
        a,
        ok(
            r#"[{"name":"a","uid":1000},{"name":"b","uid":1001,"groups":["g","h"]}]"#,
            r#"[{"name":"g","gid":7},{"name":"h","gid":8,"members":["a"]}]"#,
        )
    );
}

#[test]
fn defaults_are_not_added_when_given() {
    let a = ok(
        r#"[{"name":"root","uid":0,"gid":0,"home":"/root","createHome":false},
            {"name":"nobody","uid":65534,"group":"nobody","createHome":false}]"#,
        r#"[{"name":"root","gid":0},{"name":"nobody","gid":65534}]"#,
    );
    assert_eq!(
        text(&a.passwd),
        "root:x:0:0::/root:/sbin/nologin\nnobody:x:65534:65534::/home/nobody:/sbin/nologin\n"
    );
    assert_eq!(text(&a.group), "root:x:0:\nnobody:x:65534:\n");
    assert!(a.homes.is_empty());
}

#[test]
fn primary_group_declared_gives_the_gid() {
    let a = ok(
        r#"[{"name":"app","uid":1000,"group":"staff"}]"#,
        r#"[{"name":"staff","gid":50}]"#,
    );
    assert!(text(&a.passwd).contains("app:x:1000:50::/home/app:/sbin/nologin\n"));
    assert!(!text(&a.group).contains("app:"), "{}", text(&a.group));
    assert_eq!(a.homes[0].gid, 50);
    // Implicit group with an explicit gid.
    let a = ok(r#"[{"name":"app","uid":1000,"gid":2000}]"#, "[]");
    assert!(text(&a.group).contains("app:x:2000:\n"));
}

#[test]
fn unknown_fields_are_refused() {
    let e = serde_json::from_str::<Vec<User>>(r#"[{"name":"a","uid":1,"homeDir":"/x"}]"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `homeDir`"), "{e}");
    let e = serde_json::from_str::<Vec<Group>>(r#"[{"name":"a","gid":1,"member":[]}]"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `member`"), "{e}");
}

#[test]
fn duplicates_name_both_entries() {
    assert_eq!(
        err(
            r#"[{"name":"x","uid":1},{"name":"app","uid":1000},{"name":"y","uid":2},{"name":"web","uid":1000}]"#,
            "[]"
        ),
        r#"users[1] "app" (uid 1000) and users[3] "web" (uid 1000): the same uid 1000; give each user its own uid"#
    );
    assert_eq!(
        err(r#"[{"name":"app","uid":1},{"name":"app","uid":2}]"#, "[]"),
        r#"users[0] "app" (uid 1) and users[1] "app" (uid 2): the same name app; give each user its own name"#
    );
    assert_eq!(
        err("[]", r#"[{"name":"g","gid":1},{"name":"g","gid":2}]"#),
        r#"groups[0] "g" (gid 1) and groups[1] "g" (gid 2): the same name g; give each group its own name"#
    );
    assert_eq!(
        err("[]", r#"[{"name":"g","gid":1},{"name":"h","gid":1}]"#),
        r#"groups[0] "g" (gid 1) and groups[1] "h" (gid 1): the same gid 1; give each group its own gid"#
    );
    // An implicit group against a declared one.
    assert_eq!(
        err(
            r#"[{"name":"app","uid":50}]"#,
            r#"[{"name":"staff","gid":50}]"#
        ),
        r#"groups[0] "staff" (gid 50) and users[0] "app"'s own group (gid 50): the same gid 50; give each group its own gid"#
    );
}

#[test]
fn members_and_groups_must_exist() {
    assert_eq!(
        err(
            r#"[{"name":"app","uid":1000}]"#,
            r#"[{"name":"g","gid":5,"members":["bob"]}]"#
        ),
        r#"groups[0] "g" (gid 5) member "bob": no such user (the image's users: app, nobody, root); declare it in users or remove it from members"#
    );
    assert_eq!(
        err(r#"[{"name":"app","uid":1000,"group":"staff"}]"#, "[]"),
        r#"users[0] "app": its primary group "staff" does not exist: declare it in groups, or leave group out for a group of the user's own name"#
    );
    assert_eq!(
        err(r#"[{"name":"app","uid":1000,"groups":["wheel"]}]"#, "[]"),
        r#"users[0] "app": its supplementary group "wheel" does not exist: declare it in groups"#
    );
    assert_eq!(
        err(
            r#"[{"name":"app","uid":1000,"gid":7,"group":"staff"}]"#,
            r#"[{"name":"staff","gid":50}]"#
        ),
        r#"users[0] "app" (gid 7) and groups[0] "staff" (gid 50): the user's gid is not the gid of its group "staff"; leave gid out or make them equal"#
    );
}

#[test]
fn names_ids_and_paths_are_checked() {
    let bad_name = |n: &str| err(&format!(r#"[{{"name":{n:?},"uid":1}}]"#), "[]");
    for n in ["App", "1app", "-app", "a:b", "a$b", "", &"a".repeat(33)] {
        let e = bad_name(n);
        assert!(e.contains(&format!("{n:?} is not a valid name")), "{e}");
    }
    for n in ["_a", "a-b_1", "machine$", &"a".repeat(32)] {
        ok(&format!(r#"[{{"name":{n:?},"uid":1}}]"#), "[]");
    }
    assert_eq!(
        err("[]", r#"[{"name":"G","gid":1}]"#),
        r#"groups[0] "G": "G" is not a valid name: use 1 to 32 of a-z, 0-9, _ and -, not starting with a digit or -, optionally ending with $"#
    );
    assert_eq!(
        err(r#"[{"name":"a","uid":4294967295}]"#, "[]"),
        r#"users[0] "a": uid 4294967295 is too large: ids go up to 4294967294"#
    );
    assert_eq!(
        err(r#"[{"name":"a","uid":1,"gid":4294967296}]"#, "[]"),
        r#"users[0] "a": gid 4294967296 is too large: ids go up to 4294967294"#
    );
    assert_eq!(
        err("[]", r#"[{"name":"g","gid":4294967295}]"#),
        r#"groups[0] "g": gid 4294967295 is too large: ids go up to 4294967294"#
    );
    ok(r#"[{"name":"a","uid":4294967294}]"#, "[]");
    assert_eq!(
        err(r#"[{"name":"a","uid":1,"home":"/x:y"}]"#, "[]"),
        r#"users[0] "a": home "/x:y" holds a ':' or a newline, which end fields and lines of /etc/passwd: give an absolute path"#
    );
    assert_eq!(
        err(
            r#"[{"name":"a","uid":1,"shell":"/bin/sh\nroot::0:0::/:/bin/sh"}]"#,
            "[]"
        ),
        r#"users[0] "a": shell "/bin/sh\nroot::0:0::/:/bin/sh" holds a ':' or a newline, which end fields and lines of /etc/passwd: give an absolute path"#
    );
    assert_eq!(
        err(r#"[{"name":"a","uid":1,"home":"rel"}]"#, "[]"),
        r#"users[0] "a": home "rel" is not an absolute path: give an absolute path"#
    );
    assert_eq!(
        err(r#"[{"name":"a","uid":1,"home":"/home/../etc"}]"#, "[]"),
        r#"users[0] "a": home "/home/../etc" has a . or .. component: give an absolute path"#
    );
    assert_eq!(
        err(r#"[{"name":"a","uid":1,"home":"/"}]"#, "[]"),
        r#"users[0] "a": createHome on home "/" would hand the root directory to the user: set createHome = false or another home"#
    );
    ok(
        r#"[{"name":"a","uid":1,"home":"/","createHome":false}]"#,
        "[]",
    );
}

/// A base whose files have comments, odd spacing, a NIS line and no final
/// newline.
fn weird_base() -> Base {
    Base {
        passwd: file("# base users\nroot:x:0:0:root:/root:/bin/ash\n  \n+::::::\ndaemon:x:2:2:daemon :/sbin:/sbin/nologin\nold:x:1000:1000::/home/old:/bin/sh"),
        group: file("root:x:0:root\r\nwheel:x:10:root\nold:x:1000:\n#end"),
        shadow: file("root:!::0:::::\nold:$6$x:19000:0:99999:7:::"),
    }
}

#[test]
fn base_bytes_are_kept() {
    let base = weird_base();
    let a = accounts(
        &users(r#"[{"name":"app","uid":1001,"groups":["wheel"]}]"#),
        &[],
        &base,
    )
    .unwrap();
    let p = base.passwd.as_ref().unwrap();
    assert_eq!(
        text(&a.passwd),
        format!(
            "{}\napp:x:1001:1001::/home/app:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n",
            text(&p.bytes)
        )
    );
    // root is the base's; wheel gains its member on its own line only.
    assert_eq!(
        text(&a.group),
        "root:x:0:root\r\nwheel:x:10:root,app\nold:x:1000:\n#end\napp:x:1001:\nnogroup:x:65534:\n"
    );
    assert_eq!(
        text(&a.shadow),
        "root:!::0:::::\nold:$6$x:19000:0:99999:7:::\napp:*:::::::\nnobody:*:::::::\n"
    );
    // Nothing new: the base's bytes, unchanged, not even a newline.
    let a = accounts(
        &users(r#"[{"name":"old","uid":1000,"shell":"/bin/sh","createHome":false},{"name":"nobody","uid":65534,"group":"nogroup","home":"/","shell":"/x","createHome":false}]"#),
        &groups(r#"[{"name":"nogroup","gid":65534},{"name":"wheel","gid":10,"members":["root"]}]"#),
        &Base {
            passwd: file("root:x:0:0::/root:/bin/sh\nold:x:1000:1000::/home/old:/bin/sh\nnobody:x:65534:65534::/:/x"),
            group: file("root:x:0:\nwheel:x:10:root\nnogroup:x:65534:\nold:x:1000:"),
            shadow: None,
        },
    )
    .unwrap();
    assert_eq!(
        text(&a.passwd),
        "root:x:0:0::/root:/bin/sh\nold:x:1000:1000::/home/old:/bin/sh\nnobody:x:65534:65534::/:/x"
    );
    assert_eq!(
        text(&a.group),
        "root:x:0:\nwheel:x:10:root\nnogroup:x:65534:\nold:x:1000:"
    );
    assert!(a.homes.is_empty());
}

#[test]
fn base_conflicts_name_the_layer_and_line() {
    let base = weird_base();
    assert_eq!(
        err_on(r#"[{"name":"old","uid":1000}]"#, "[]", &base),
        r#"users[0] "old" (uid 1000) and the base image's /etc/passwd line 6 "old:x:1000:1000::/home/old:/bin/sh" (layer sha256:abc): the base uses this name or uid for another entry; declare it as the base has it (name, uid, gid, home, shell) or pick another"#
    );
    assert_eq!(
        err_on(
            r#"[{"name":"new","uid":2,"createHome":false}]"#,
            "[]",
            &base
        ),
        r#"users[0] "new" (uid 2) and the base image's /etc/passwd line 5 "daemon:x:2:2:daemon :/sbin:/sbin/nologin" (layer sha256:abc): the base uses this name or uid for another entry; declare it as the base has it (name, uid, gid, home, shell) or pick another"#
    );
    assert_eq!(
        err_on("[]", r#"[{"name":"root","gid":0}]"#, &base),
        r#"groups[0] "root" (gid 0) and the base image's /etc/group line 1 "root:x:0:root\r" (layer sha256:abc): the base has a line for this name that is not a well-formed entry; fix the base's line or pick another name"#
    );
    assert_eq!(
        err_on("[]", r#"[{"name":"wheel","gid":11}]"#, &base),
        r#"groups[0] "wheel" (gid 11) and the base image's /etc/group line 2 "wheel:x:10:root" (layer sha256:abc): the base uses this name or gid for another group; declare it as the base has it (name, gid) or pick another"#
    );
    assert_eq!(
        err_on(r#"[{"name":"app","uid":10}]"#, "[]", &base),
        r#"users[0] "app"'s own group (gid 10) and the base image's /etc/group line 2 "wheel:x:10:root" (layer sha256:abc): the base uses this name or gid for another group; declare it as the base has it (name, gid) or pick another"#
    );
}

#[test]
fn base_groups_and_users_count() {
    let base = weird_base();
    // A primary group and a member from the base.
    let a = accounts(
        &users(r#"[{"name":"app","uid":1001,"group":"wheel"}]"#),
        &groups(r#"[{"name":"g","gid":77,"members":["old"]}]"#),
        &base,
    )
    .unwrap();
    assert!(text(&a.passwd).ends_with("app:x:1001:10::/home/app:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n"));
    assert!(
        text(&a.group).contains("\ng:x:77:old\n"),
        "{}",
        text(&a.group)
    );
}

#[test]
fn user_field() {
    let a = ok(r#"[{"name":"app","uid":1000}]"#, "[]");
    let check = |u: &str| check_user_field(u, &a.passwd, &a.group);
    for u in [
        "",
        "app",
        "1000",
        "4242",
        "app:app",
        "app:4242",
        "77:77",
        "root:nogroup",
    ] {
        check(u).unwrap();
    }
    assert_eq!(
        check("web").unwrap_err().to_string(),
        r#"config.User "web": the image has no user "web" (its users: root, app, nobody); declare it in users, or give a numeric id"#
    );
    assert_eq!(
        check("app:staff").unwrap_err().to_string(),
        r#"config.User "app:staff": the image has no group "staff" (its groups: root, app, nogroup); declare it in groups, or give a numeric id"#
    );
    assert_eq!(
        check(":app").unwrap_err().to_string(),
        r#"config.User ":app": no user before ':'; give USER or USER:GROUP"#
    );
    assert_eq!(
        check("app:").unwrap_err().to_string(),
        r#"config.User "app:": no group after ':'; give USER or USER:GROUP"#
    );
    assert_eq!(
        check_user_field("app", b"# none\n", b"")
            .unwrap_err()
            .to_string(),
        r#"config.User "app": the image has no user "app" (its users: none); declare it in users, or give a numeric id"#
    );
}

#[test]
fn defaults_skip_a_taken_id_and_base_members_join_empty_lists() {
    let a = ok(
        r#"[{"name":"toor","uid":0,"createHome":false}]"#,
        r#"[{"name":"nobody","gid":65534}]"#,
    );
    assert_eq!(
        text(&a.passwd),
        "toor:x:0:0::/home/toor:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n"
    );
    assert_eq!(text(&a.group), "toor:x:0:\nnobody:x:65534:\n");
    let a = accounts(
        &users(r#"[{"name":"app","uid":1001,"groups":["old","wheel"]}]"#),
        &groups(r#"[{"name":"wheel","gid":10,"members":["root","old"]}]"#),
        &weird_base(),
    )
    .unwrap();
    assert!(
        text(&a.group)
            .starts_with("root:x:0:root\r\nwheel:x:10:root,old,app\nold:x:1000:app\n#end\n"),
        "{}",
        text(&a.group)
    );
}
