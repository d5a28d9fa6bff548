//! A layer's accounts and `/tmp` (`users`, `groups`, `tmp` of the layer
//! spec), what `layer.json` records of the accounts a layer defines, and
//! the check of `config.User` against the image's accounts.
//!
//! - `users`/`groups` write `/etc/passwd` and `/etc/group` (0644, root),
//!   `/etc/shadow` (0600 root, or the base image's mode and owner when it
//!   has one), `/etc/nsswitch.conf` (0644) when neither the base nor the
//!   layer has one, and each new user's home (0700, the user's; parents
//!   root's 0755, or the base's mode and owner where it has them). With
//!   `fromImage`, the base's files (read through its symbolic links, as a
//!   container reads them) are merged ([`crate::accounts`]). A layer that
//!   also places one of the three files another way is refused.
//! - `tmp`: `/tmp` 1777 root, unless the base image has a `/tmp` (of any
//!   kind) or the layer places one.
//! - A layer placing `/etc/passwd` or `/etc/group` (written here, a file or
//!   a `text` entry) records the names and ids they define, read leniently.
//! - `config.User`, when the spec sets it: checked against the top-most
//!   new layer recording users (groups), else the base image's files.

use super::info::{GroupName, LayerAccounts, LayerInfo, UserName};
use super::onto::Onto;
use crate::accounts::{self, Base};
use crate::base::file::{read_files, BaseFile};
use crate::error::{Error, Result};
use crate::layer::tree::{Kind, Placement, Tree};
use crate::spec::LayerSpec;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";
const SHADOW: &str = "/etc/shadow";
const NSSWITCH: &str = "/etc/nsswitch.conf";

/// Place the layer's accounts and `/tmp` into `tree` (after every other
/// entry of the spec, before `perms`).
pub(super) fn place(spec: &LayerSpec, tree: &mut Tree, onto: Option<&Onto>) -> Result<()> {
    if !spec.users.is_empty() || !spec.groups.is_empty() {
        place_accounts(spec, tree, onto)?;
    }
    if spec.tmp {
        let placed = tree
            .entries
            .get(b"tmp".as_slice())
            .is_some_and(|e| !e.implicit);
        let in_base = onto.is_some_and(|o| o.tree.get(b"tmp").is_some());
        if !placed && !in_base {
            tree.add_directory("/tmp", Some(0o1777), Some(0), Some(0), "tmp")
                .map_err(|e| e.within("tmp"))?;
        }
    }
    Ok(())
}

fn rel(path: &str) -> &[u8] {
    path.trim_start_matches('/').as_bytes()
}

fn place_accounts(spec: &LayerSpec, tree: &mut Tree, onto: Option<&Onto>) -> Result<()> {
    let label = "users and groups";
    for path in [PASSWD, GROUP, SHADOW] {
        if let Some(e) = tree.entries.get(rel(path)) {
            return Err(Error::Invalid(format!(
                "{path}: both {label} and {} place it; let users and groups write it (give the accounts there), or drop users and groups",
                e.origin.display()
            )));
        }
    }
    let (passwd, group, shadow) = match onto {
        Some(o) => {
            let mut files = read_files(&o.image, &o.tree, &[PASSWD, GROUP, SHADOW])?.into_iter();
            let mut next = || files.next().flatten();
            (next(), next(), next())
        }
        None => (None, None, None),
    };
    let as_base = |f: &Option<BaseFile>| {
        f.as_ref().map(|f| accounts::BaseFile {
            bytes: f.bytes.clone(),
            layer: f.layer.clone(),
        })
    };
    let base = Base {
        passwd: as_base(&passwd),
        group: as_base(&group),
        shadow: as_base(&shadow),
    };
    let made = accounts::accounts(&spec.users, &spec.groups, &base)?;
    let (shadow_mode, shadow_uid, shadow_gid) = shadow.as_ref().map_or((0o600, 0, 0), |f| f.meta);
    let files = [
        (PASSWD, &made.passwd, (0o644, 0, 0)),
        (GROUP, &made.group, (0o644, 0, 0)),
        (SHADOW, &made.shadow, (shadow_mode, shadow_uid, shadow_gid)),
    ];
    for (path, bytes, (mode, uid, gid)) in files {
        let text = String::from_utf8(bytes.clone()).map_err(|_| {
            Error::Invalid(format!(
                "{path}: the base image's file is not UTF-8 text; {label} merge only text files"
            ))
        })?;
        let id = |n: u64, what: &str| {
            u32::try_from(n).map_err(|_| {
                Error::Invalid(format!(
                    "{path}: the base image's file has {what} {n}, too large"
                ))
            })
        };
        let place = Placement {
            destination: Some(path),
            mode: Some(mode),
            uid: Some(id(uid, "owner")?),
            gid: Some(id(gid, "group")?),
            link: false,
        };
        tree.add_text(&text, &place, label)?;
    }
    let in_base = onto.is_some_and(|o| {
        o.tree
            .follow(rel(NSSWITCH), true)
            .is_some_and(|p| o.tree.get(&p).is_some())
            || o.tree.get(rel(NSSWITCH)).is_some()
    });
    if !in_base && !tree.entries.contains_key(rel(NSSWITCH)) {
        let place = Placement {
            destination: Some(NSSWITCH),
            mode: Some(0o644),
            ..Default::default()
        };
        let text = String::from_utf8_lossy(&made.nsswitch).into_owned();
        tree.add_text(&text, &place, label)?;
    }
    for h in &made.homes {
        tree.add_directory(
            &h.path,
            Some(h.mode),
            Some(h.uid),
            Some(h.gid),
            &format!("users (the home {})", h.path),
        )?;
    }
    Ok(())
}

/// The bytes of the file the layer places at `path`: a file, or a link to
/// a file on this machine (in the store); `None` for anything else.
fn placed_bytes(tree: &Tree, path: &str) -> Result<Option<Vec<u8>>> {
    let Some(e) = tree.entries.get(rel(path)) else {
        return Ok(None);
    };
    if e.removes.is_some() {
        return Ok(None);
    }
    let from = match (&e.kind, &e.inline) {
        (Kind::File { .. }, Some(bytes)) => return Ok(Some(bytes.to_vec())),
        (Kind::File { .. }, None) => e.origin.clone(),
        (Kind::Symlink(target), _) if target.starts_with(b"/") => {
            std::path::PathBuf::from(crate::layer::tree::os(target))
        }
        _ => return Ok(None),
    };
    match std::fs::read(&from) {
        Ok(b) => Ok(Some(b)),
        Err(_) if matches!(e.kind, Kind::Symlink(_)) => Ok(None),
        Err(err) => Err(Error::io(&from, err)),
    }
}

/// `(name, id)` of each line of an account file, read leniently: every
/// line that is not blank or a comment and has a first field; the id is
/// the third field when it is a decimal number.
fn names(bytes: &[u8]) -> Vec<(String, Option<u64>)> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.trim_end_matches('\r').split(':');
            let name = f
                .next()
                .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))?;
            let id = f.nth(1).and_then(|i| i.parse::<u64>().ok());
            Some((name.to_owned(), id))
        })
        .collect()
}

/// What the layer's `layer.json` records of the accounts it defines.
pub(super) fn record(tree: &Tree) -> Result<Option<LayerAccounts>> {
    let users = placed_bytes(tree, PASSWD)?.map(|b| {
        names(&b)
            .into_iter()
            .map(|(name, uid)| UserName { name, uid })
            .collect()
    });
    let groups = placed_bytes(tree, GROUP)?.map(|b| {
        names(&b)
            .into_iter()
            .map(|(name, gid)| GroupName { name, gid })
            .collect()
    });
    Ok((users.is_some() || groups.is_some()).then_some(LayerAccounts { users, groups }))
}

/// Refuse a layer `spec` (`at` names it) with `users` or `groups` over a
/// new layer of the image (`below`, each named in `named`) that places
/// `/etc/passwd` or `/etc/group`: its files would replace that layer's,
/// dropping its entries (only the base image's are merged).
pub(super) fn refuse_over_accounts(
    spec: &LayerSpec,
    below: &[LayerInfo],
    named: &[(String, crate::layout::BlobDir)],
    at: &str,
) -> Result<()> {
    if spec.users.is_empty() && spec.groups.is_empty() {
        return Ok(());
    }
    match below.iter().zip(named).rev().find(|(l, _)| l.accounts.is_some()) {
        None => Ok(()),
        Some((_, (what, _))) => Err(Error::Invalid(format!(
            "{at}: users and groups write /etc/passwd, /etc/group and /etc/shadow, which would replace those {what} places (only a base image's files are merged): declare the accounts in one layer, or build that layer as the base image (fromImage)"
        ))),
    }
}

/// Check `user` (the spec's `config.User`) against the image: its new
/// layers (`layers`, bottom first) and its base.
pub(super) fn check_user(user: &str, layers: &[LayerInfo], onto: Option<&Onto>) -> Result<()> {
    let recorded = |pick: &dyn Fn(&LayerAccounts) -> Option<Vec<String>>| {
        layers
            .iter()
            .rev()
            .find_map(|l| l.accounts.as_ref().and_then(pick))
    };
    let users = recorded(&|a| {
        a.users
            .as_ref()
            .map(|u| u.iter().map(|u| u.name.clone()).collect())
    });
    let groups = recorded(&|a| {
        a.groups
            .as_ref()
            .map(|g| g.iter().map(|g| g.name.clone()).collect())
    });
    // The base's files, for what no new layer places.
    let (users, groups) = match onto {
        Some(o) if users.is_none() || groups.is_none() => {
            let mut files = read_files(&o.image, &o.tree, &[PASSWD, GROUP])?.into_iter();
            let mut next = || -> Option<Vec<String>> {
                let f = files.next().flatten()?;
                Some(names(&f.bytes).into_iter().map(|(n, _)| n).collect())
            };
            let (p, g) = (next(), next());
            (users.or(p), groups.or(g))
        }
        _ => (users, groups),
    };
    let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let missing = |file: &str, what: &str, name: &str, list: &str, id: &str| {
        Error::Invalid(format!(
            "config.User {user:?}: the image has no {file}, so the runtime cannot resolve the {what} {name:?}; declare it ({list} = [ {{ name = \"{name}\"; {id} = 1000; }} ]), place an {file}, or give a numeric id"
        ))
    };
    let named = |p: &str| !p.is_empty() && !numeric(p);
    if users.is_none() && named(u) {
        return Err(missing(PASSWD, "user", u, "users", "uid"));
    }
    let lines = |names: &[String]| -> Vec<u8> {
        names
            .iter()
            .flat_map(|n| format!("{n}:\n").into_bytes())
            .collect()
    };
    // Without an /etc/group, the user part is checked first; the group's
    // error follows.
    let no_group = groups.is_none() && g.is_some_and(named);
    let group_lines = match (&groups, g) {
        (Some(list), _) => lines(list),
        (None, Some(g)) => lines(&[g.to_owned()]),
        (None, None) => Vec::new(),
    };
    accounts::check_user_field(user, &lines(&users.unwrap_or_default()), &group_lines)?;
    match g {
        Some(g) if no_group => Err(missing(GROUP, "group", g, "groups", "gid")),
        _ => Ok(()),
    }
}
