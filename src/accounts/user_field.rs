//! The check of `config.User` against the image's accounts.
//!
//! `User` is `USER` or `USER:GROUP`, each a name or a decimal id. An empty
//! `User` is root. A numeric part is always accepted (the runtime needs no
//! entry for it); a name must be a user of the final `/etc/passwd`, or a
//! group of the final `/etc/group`. The files are read leniently: the first
//! field of every line that is not a comment is a name.

use super::etc;

fn names(file: &[u8]) -> Vec<String> {
    etc::lines(file)
        .filter_map(|(_, l)| etc::first_field(l).map(str::to_owned))
        .collect()
}

fn numeric(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
}

/// Checks `config.User` (`user`) against the image's final `passwd` and
/// `group`; the error names the field and lists the image's users (or
/// groups).
pub fn check_user_field(user: &str, passwd: &[u8], group: &[u8]) -> crate::Result<()> {
    if user.is_empty() {
        return Ok(());
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let refuse = |what: &str, name: &str, file: &[u8], kind: &str| {
        let known = names(file);
        let list = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        crate::Error::Invalid(format!(
            "config.User {user:?}: the image has no {what} {name:?} (its {kind}: {list}); declare it in {kind}, or give a numeric id"
        ))
    };
    if u.is_empty() {
        return Err(crate::Error::Invalid(format!(
            "config.User {user:?}: no user before ':'; give USER or USER:GROUP"
        )));
    }
    if !numeric(u) && !names(passwd).iter().any(|n| n == u) {
        return Err(refuse("user", u, passwd, "users"));
    }
    if let Some(g) = g {
        if g.is_empty() {
            return Err(crate::Error::Invalid(format!(
                "config.User {user:?}: no group after ':'; give USER or USER:GROUP"
            )));
        }
        if !numeric(g) && !names(group).iter().any(|n| n == g) {
            return Err(refuse("group", g, group, "groups"));
        }
    }
    Ok(())
}
