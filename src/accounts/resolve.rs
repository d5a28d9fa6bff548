//! The rules of the module docs, applied: validation, primary and
//! supplementary groups, defaults, the merge with the base, the bytes.

use std::collections::{BTreeMap, BTreeSet};

use super::etc::{self, Gr, Pw};
use super::{Accounts, Base, BaseFile, Group, Home, User, MAX_ID};

type Res<T> = std::result::Result<T, String>;

/// Where an entry comes from, as errors name it.
#[derive(Debug, Clone)]
enum Origin {
    Declared(String),
    Default(&'static str),
    Base {
        file: &'static str,
        layer: String,
        line: usize,
        text: String,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Declared(s) => f.write_str(s),
            Origin::Default(s) => write!(f, "the default {s}"),
            Origin::Base {
                file,
                layer,
                line,
                text,
            } => write!(
                f,
                "the base image's {file} line {line} {text:?} (layer {layer})"
            ),
        }
    }
}

struct UserEntry {
    pw: Pw,
    origin: Origin,
    /// Declared: index in `users`; a default: none; from the base: none.
    declared: Option<usize>,
    /// Equal to a base entry: not written again.
    in_base: bool,
}

struct GroupEntry {
    gr: Gr,
    origin: Origin,
    /// The base line it is (or equals), by line number.
    base_line: Option<usize>,
}

/// A POSIX portable user name: `[a-z_][a-z0-9_-]*[$]?`, 1 to 32 bytes.
pub(super) fn valid_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut bytes = body.bytes();
    name.len() <= 32
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn check_name(what: &str, name: &str) -> Res<()> {
    if valid_name(name) {
        return Ok(());
    }
    Err(format!(
        "{what}: {name:?} is not a valid name: use 1 to 32 of a-z, 0-9, _ and -, not starting with a digit or -, optionally ending with $"
    ))
}

fn check_id(what: &str, field: &str, id: u64) -> Res<u32> {
    if id > MAX_ID {
        return Err(format!(
            "{what}: {field} {id} is too large: ids go up to {MAX_ID}"
        ));
    }
    Ok(id as u32)
}

fn check_path(what: &str, field: &str, path: &str, is_home: bool) -> Res<()> {
    let bad = if path.contains(':') || path.contains('\n') {
        Some("holds a ':' or a newline, which end fields and lines of /etc/passwd")
    } else if !path.starts_with('/') {
        Some("is not an absolute path")
    } else if is_home && path.split('/').any(|c| c == "." || c == "..") {
        Some("has a . or .. component")
    } else {
        None
    };
    match bad {
        Some(why) => Err(format!(
            "{what}: {field} {path:?} {why}: give an absolute path"
        )),
        None => Ok(()),
    }
}

fn base_lines<'a>(
    file: &'static str,
    base: &'a Option<BaseFile>,
) -> impl Iterator<Item = (usize, &'a [u8], Origin)> + 'a {
    base.iter().flat_map(move |b| {
        etc::lines(&b.bytes).map(move |(n, l)| {
            let origin = Origin::Base {
                file,
                layer: b.layer.clone(),
                line: n,
                text: String::from_utf8_lossy(l).into_owned(),
            };
            (n, l, origin)
        })
    })
}

/// Refuses two entries of `list` with the same key, naming both.
fn unique<T, K: Ord + std::fmt::Display>(
    list: &[T],
    key: impl Fn(&T) -> K,
    origin: impl Fn(&T) -> String,
    what: &str,
    hint: &str,
) -> Res<()> {
    let mut seen: BTreeMap<K, usize> = BTreeMap::new();
    for (i, e) in list.iter().enumerate() {
        if let Some(&j) = seen.get(&key(e)) {
            return Err(format!(
                "{} and {}: the same {what} {}; {hint}",
                origin(&list[j]),
                origin(e),
                key(e)
            ));
        }
        seen.insert(key(e), i);
    }
    Ok(())
}

pub(super) fn accounts(users: &[User], groups: &[Group], base: &Base) -> Res<Accounts> {
    // The base's entries, read strictly.
    // Lines that are no entry but start with a name: that name is taken.
    let mut odd_users: Vec<(String, Origin)> = Vec::new();
    let mut odd_groups: Vec<(String, Origin)> = Vec::new();
    let mut all_users: Vec<UserEntry> = Vec::new();
    for (_, line, origin) in base_lines("/etc/passwd", &base.passwd) {
        if let Some(pw) = etc::parse_passwd(line) {
            all_users.push(UserEntry {
                pw,
                origin,
                declared: None,
                in_base: true,
            });
        } else if let Some(name) = etc::first_field(line) {
            odd_users.push((name.to_owned(), origin));
        }
    }
    let mut all_groups: Vec<GroupEntry> = Vec::new();
    for (n, line, origin) in base_lines("/etc/group", &base.group) {
        if let Some(gr) = etc::parse_group(line) {
            all_groups.push(GroupEntry {
                gr,
                origin,
                base_line: Some(n),
            });
        } else if let Some(name) = etc::first_field(line) {
            odd_groups.push((name.to_owned(), origin));
        }
    }
    let odd = |list: &[(String, Origin)], name: &str, origin: &Origin| -> Res<()> {
        match list.iter().find(|(n, _)| n == name) {
            Some((_, o)) => Err(format!(
                "{origin} and {o}: the base has a line for this name that is not a well-formed entry; fix the base's line or pick another name"
            )),
            None => Ok(()),
        }
    };
    let base_groups = all_groups.len();

    // Declared groups.
    let mut declared_groups = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let what = format!("groups[{i}] {:?}", g.name);
        check_name(&what, &g.name)?;
        let gid = check_id(&what, "gid", g.gid)?;
        for m in &g.members {
            check_name(&format!("{what}, member"), m)?;
        }
        let origin = Origin::Declared(format!("{what} (gid {gid})"));
        declared_groups.push((
            Gr {
                name: g.name.clone(),
                gid,
                members: Vec::new(),
            },
            origin,
        ));
    }
    unique(
        &declared_groups,
        |g| g.0.name.clone(),
        |g| g.1.to_string(),
        "name",
        "give each group its own name",
    )?;

    // Declared users, their primary groups.
    let mut declared_users: Vec<(Pw, Origin)> = Vec::new();
    let mut implicit: Vec<(Gr, Origin)> = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let what = format!("users[{i}] {:?}", u.name);
        check_name(&what, &u.name)?;
        let uid = check_id(&what, "uid", u.uid)?;
        let gid = u.gid.map(|g| check_id(&what, "gid", g)).transpose()?;
        let group = u.group.clone().unwrap_or_else(|| u.name.clone());
        check_name(&format!("{what}, group"), &group)?;
        for g in &u.groups {
            check_name(&format!("{what}, groups"), g)?;
        }
        let home = u
            .home
            .clone()
            .unwrap_or_else(|| format!("/home/{}", u.name));
        check_path(&what, "home", &home, true)?;
        let shell = u.shell.clone().unwrap_or_else(|| "/sbin/nologin".into());
        check_path(&what, "shell", &shell, false)?;
        if u.create_home && home.trim_end_matches('/').is_empty() {
            return Err(format!(
                "{what}: createHome on home \"/\" would hand the root directory to the user: set createHome = false or another home"
            ));
        }
        let known = declared_groups
            .iter()
            .map(|(g, o)| (g, o))
            .chain(all_groups[..base_groups].iter().map(|e| (&e.gr, &e.origin)))
            .find(|(g, _)| g.name == group);
        let gid = match known {
            Some((g, o)) => match gid {
                Some(gid) if gid != g.gid => {
                    return Err(format!(
                        "{what} (gid {gid}) and {o}: the user's gid is not the gid of its group {group:?}; leave gid out or make them equal"
                    ))
                }
                _ => g.gid,
            },
            None if group == u.name => {
                let gid = gid.unwrap_or(uid);
                implicit.push((
                    Gr {
                        name: group.clone(),
                        gid,
                        members: Vec::new(),
                    },
                    Origin::Declared(format!("{what}'s own group (gid {gid})")),
                ));
                gid
            }
            None => {
                return Err(format!(
                    "{what}: its primary group {group:?} does not exist: declare it in groups, or leave group out for a group of the user's own name"
                ))
            }
        };
        declared_users.push((
            Pw {
                name: u.name.clone(),
                uid,
                gid,
                home,
                shell,
            },
            Origin::Declared(format!("{what} (uid {uid})")),
        ));
    }
    unique(
        &declared_users,
        |u| u.0.name.clone(),
        |u| u.1.to_string(),
        "name",
        "give each user its own name",
    )?;
    unique(
        &declared_users,
        |u| u.0.uid,
        |u| u.1.to_string(),
        "uid",
        "give each user its own uid",
    )?;
    declared_groups.extend(implicit);
    unique(
        &declared_groups,
        |g| g.0.gid,
        |g| g.1.to_string(),
        "gid",
        "give each group its own gid",
    )?;

    // The declared users against the base's.
    let base_users = all_users.len();
    for (i, (pw, origin)) in declared_users.into_iter().enumerate() {
        odd(&odd_users, &pw.name, &origin)?;
        let mut in_base = false;
        for b in &all_users[..base_users] {
            if b.pw.name == pw.name || b.pw.uid == pw.uid {
                if b.pw == pw {
                    in_base = true;
                    continue;
                }
                return Err(format!(
                    "{origin} and {}: the base uses this name or uid for another entry; declare it as the base has it (name, uid, gid, home, shell) or pick another",
                    b.origin
                ));
            }
        }
        all_users.push(UserEntry {
            pw,
            origin,
            declared: Some(i),
            in_base,
        });
    }
    // The declared groups against the base's.
    for (mut gr, origin) in declared_groups {
        odd(&odd_groups, &gr.name, &origin)?;
        let mut base_line = None;
        for b in &all_groups[..base_groups] {
            if b.gr.name == gr.name || b.gr.gid == gr.gid {
                if b.gr.name == gr.name && b.gr.gid == gr.gid {
                    base_line = b.base_line;
                    gr.members = b.gr.members.clone();
                    continue;
                }
                return Err(format!(
                    "{origin} and {}: the base uses this name or gid for another group; declare it as the base has it (name, gid) or pick another",
                    b.origin
                ));
            }
        }
        all_groups.push(GroupEntry {
            gr,
            origin,
            base_line,
        });
    }

    // Defaults, unless their name or id is taken.
    let defaults = [
        ("root", 0, 0, "/root", "/bin/sh"),
        ("nobody", 65534, 65534, "/nonexistent", "/sbin/nologin"),
    ];
    for (name, uid, gid, home, shell) in defaults {
        let taken = odd_users.iter().any(|(n, _)| n == name);
        if !taken
            && !all_users
                .iter()
                .any(|u| u.pw.name == name || u.pw.uid == uid)
        {
            all_users.push(UserEntry {
                pw: Pw {
                    name: name.into(),
                    uid,
                    gid,
                    home: home.into(),
                    shell: shell.into(),
                },
                origin: Origin::Default(name),
                declared: None,
                in_base: false,
            });
        }
    }
    for (name, gid) in [("root", 0), ("nogroup", 65534)] {
        let taken = odd_groups.iter().any(|(n, _)| n == name);
        if !taken
            && !all_groups
                .iter()
                .any(|g| g.gr.name == name || g.gr.gid == gid)
        {
            all_groups.push(GroupEntry {
                gr: Gr {
                    name: name.into(),
                    gid,
                    members: Vec::new(),
                },
                origin: Origin::Default(name),
                base_line: None,
            });
        }
    }

    // Members: each group's own, then each user's supplementary groups.
    let user_names: BTreeSet<String> = all_users.iter().map(|u| u.pw.name.clone()).collect();
    let mut wanted: Vec<Vec<String>> = vec![Vec::new(); all_groups.len()];
    let find = |name: &str| {
        // A declared group comes after a base line of the same name.
        all_groups.iter().rposition(|g| g.gr.name == name)
    };
    for (i, g) in groups.iter().enumerate() {
        for m in &g.members {
            if !user_names.contains(m) {
                return Err(format!(
                    "groups[{i}] {:?} (gid {}) member {m:?}: no such user (the image's users: {}); declare it in users or remove it from members",
                    g.name,
                    g.gid,
                    user_names.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if let Some(k) = find(&g.name) {
                wanted[k].push(m.clone());
            }
        }
    }
    for (i, u) in users.iter().enumerate() {
        for name in &u.groups {
            match find(name) {
                Some(k) => wanted[k].push(u.name.clone()),
                None => {
                    return Err(format!(
                        "users[{i}] {:?}: its supplementary group {name:?} does not exist: declare it in groups",
                        u.name
                    ))
                }
            }
        }
    }

    // passwd and shadow.
    let shadow_names: BTreeSet<String> = base_lines("/etc/shadow", &base.shadow)
        .filter_map(|(_, l, _)| etc::shadow_name(l).map(str::to_owned))
        .collect();
    let mut new_users: Vec<&UserEntry> = all_users
        .iter()
        .filter(|u| !u.in_base && !matches!(u.origin, Origin::Base { .. }))
        .collect();
    new_users.sort_by_key(|u| u.pw.uid);
    let mut passwd = String::new();
    let mut shadow = String::new();
    for u in &new_users {
        passwd.push_str(&etc::passwd_line(&u.pw));
        if !shadow_names.contains(&u.pw.name) {
            shadow.push_str(&etc::shadow_line(&u.pw.name));
        }
    }
    let bytes = |b: &Option<BaseFile>| b.as_ref().map(|b| b.bytes.clone()).unwrap_or_default();

    // group: base lines that gain members, then new groups.
    let mut extra: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut new_groups: Vec<Gr> = Vec::new();
    for (k, g) in all_groups.iter().enumerate() {
        let mut members: Vec<String> = Vec::new();
        for m in &wanted[k] {
            if !members.contains(m) && !g.gr.members.contains(m) {
                members.push(m.clone());
            }
        }
        match g.base_line {
            Some(line) if !members.is_empty() => extra.entry(line).or_default().extend(members),
            Some(_) => {}
            None => new_groups.push(Gr {
                members,
                ..g.gr.clone()
            }),
        }
    }
    new_groups.sort_by_key(|g| g.gid);
    let mut group_base = bytes(&base.group);
    if !extra.is_empty() {
        let mut out: Vec<u8> = Vec::new();
        for (n, line) in group_base.split(|&b| b == b'\n').enumerate() {
            if n > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(line);
            if let Some(add) = extra.get(&(n + 1)) {
                if !line.ends_with(b":") {
                    out.push(b',');
                }
                out.extend_from_slice(add.join(",").as_bytes());
            }
        }
        group_base = out;
    }
    let group: String = new_groups.iter().map(etc::group_line).collect();

    let homes = new_users
        .iter()
        .filter(|u| u.declared.is_some_and(|i| users[i].create_home))
        .map(|u| Home {
            path: u.pw.home.clone(),
            uid: u.pw.uid,
            gid: u.pw.gid,
            mode: 0o700,
        })
        .collect();
    Ok(Accounts {
        passwd: etc::append(&bytes(&base.passwd), &passwd),
        group: etc::append(&group_base, &group),
        shadow: etc::append(&bytes(&base.shadow), &shadow),
        nsswitch: super::NSSWITCH.as_bytes().to_vec(),
        homes,
    })
}
