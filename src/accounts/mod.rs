//! Declared users and groups: the `users` and `groups` of a spec turned into
//! `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/nsswitch.conf`,
//! merged with a base image's files, and the check of `config.User`.
//! Pure functions: bytes in, bytes out, no file system.
//!
//! # The entries
//!
//! - `users = [ { name; uid; gid ? uid; group ? name; home ? "/home/${name}";
//!   shell ? "/sbin/nologin"; groups ? [ ]; createHome ? true; } ]`;
//! - `groups = [ { name; gid; members ? [ ]; } ]`.
//!
//! Unknown keys are refused. A user's primary group is `group`:
//! - a group declared in `groups` (or in the base's `/etc/group`): its gid
//!   is the user's gid; a `gid` that differs from it is refused;
//! - otherwise, when `group` is the user's own name (the default), an
//!   implicit group of that name is made, with gid `gid` (default: the
//!   uid) and no members;
//! - otherwise the primary group does not exist: refused.
//!
//! `groups` (supplementary) adds the user to each named group's member
//! list (after the group's own `members`, each name once). A group member
//! must be a user of the image (declared, a default, or the base's).
//!
//! # Rules
//!
//! - Names (users and groups) are POSIX portable user names, as shadow's
//!   `useradd` accepts them: `[a-z_][a-z0-9_-]*[$]?`, 1 to 32 bytes.
//! - Ids are at most 4294967294 (4294967295 is `(uid_t)-1`, "no id").
//! - `home` and `shell` are absolute paths without `:` or a newline;
//!   `home` has no `.` or `..` component. `createHome` on `/` is refused
//!   (it would hand the root directory to the user).
//! - Two users (or two groups) with the same name or id are refused,
//!   naming both entries; so is a name or id the base image uses for a
//!   different entry (naming the base's layer and line).
//! - `root` (uid 0, gid 0, home `/root`, shell `/bin/sh`), group `root`
//!   (0), `nobody` (65534, group 65534, home `/nonexistent`, shell
//!   `/sbin/nologin`) and group `nogroup` (65534, as NixOS and
//!   dockerTools' `fakeNss` name it; Debian too) are added unless an entry
//!   (declared or the base's) has that name or that id. Their homes are
//!   not created.
//!
//! # The files
//!
//! - `passwd`: `name:x:uid:gid::home:shell` (empty GECOS field);
//! - `group`: `name:x:gid:member,member`;
//! - `shadow`: `name:*:::::::`: the password `*` is locked and, unlike
//!   `!`, cannot be "unlocked" (`passwd -u`, `usermod -U`) into an empty
//!   password; the last change field is empty (password aging off), so no
//!   date enters the bytes;
//! - `nsswitch.conf`: [`NSSWITCH`]: `files` for every database glibc
//!   reads through it, `files dns` for hosts (musl does not read it; its
//!   built-in order is the same). The caller writes it only where the image
//!   has none.
//!
//! New entries are written in id order (ties impossible: ids are unique),
//! whatever the order of the spec's lists, so the bytes depend on the set
//! of entries alone.
//!
//! # With a base image (`fromImage`)
//!
//! The base's files are kept byte for byte: comments, blank lines, odd
//! spacing, lines of other formats (`+nis`), all of it. Every line is read
//! leniently to be kept and strictly to be compared: a line is an entry
//! when it splits into exactly the right number of `:` fields with decimal
//! ids, and only entries are compared with the new ones. A line that is no
//! entry but starts with `NAME:` still takes NAME: a declared entry of that
//! name is refused (naming the line), a default one is not added. New
//! entries are
//! appended after the base's bytes; a base file that does not end with a
//! newline gets one first (the only byte added inside the base's text, so
//! that its last line stays a line of its own). An entry equal to the
//! base's (a user: same name, uid, gid, home and shell; a group: same name
//! and gid) is not written again. A declared group equal to the base's
//! whose members the base line lacks gets them appended to that line (the
//! one change made to a base line). A user's shadow line is appended when
//! the user is appended to `passwd` and the base's `shadow` has no line
//! for that name.
//!
//! # Home directories
//!
//! [`Accounts::homes`] lists the home of each new user with `createHome`:
//! owned by the user and its primary group, mode 0700 (`useradd`'s
//! `HOME_MODE` default: a home is its owner's). Its parents are the layer
//! writer's to make (root, 0755).

mod etc;
mod resolve;
#[cfg(test)]
mod tests;
mod user_field;

use serde::Deserialize;

pub use user_field::check_user_field;

/// The largest id: 4294967295 is `(uid_t)-1`.
pub const MAX_ID: u64 = 4_294_967_294;

/// The `/etc/nsswitch.conf` written beside the account files.
pub const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\ngshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n";

/// A user of the spec's `users`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct User {
    /// The login name.
    pub name: String,
    /// The user id.
    pub uid: u64,
    /// The primary group's id; default: that group's gid, or the uid.
    #[serde(default)]
    pub gid: Option<u64>,
    /// The primary group's name; default: the user's name.
    #[serde(default)]
    pub group: Option<String>,
    /// The home directory; default: `/home/NAME`.
    #[serde(default)]
    pub home: Option<String>,
    /// The login shell; default: `/sbin/nologin`.
    #[serde(default)]
    pub shell: Option<String>,
    /// Supplementary groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether the home directory is made; default: true.
    #[serde(default = "yes")]
    pub create_home: bool,
}

fn yes() -> bool {
    true
}

/// A group of the spec's `groups`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Group {
    /// The group name.
    pub name: String,
    /// The group id.
    pub gid: u64,
    /// Its members (user names).
    #[serde(default)]
    pub members: Vec<String>,
}

/// One file of the base image, with the layer it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFile {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The layer holding it, as errors name it.
    pub layer: String,
}

/// The base image's account files; any may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Base {
    /// `/etc/passwd`.
    pub passwd: Option<BaseFile>,
    /// `/etc/group`.
    pub group: Option<BaseFile>,
    /// `/etc/shadow`.
    pub shadow: Option<BaseFile>,
}

/// A home directory to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// The absolute path.
    pub path: String,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Its mode (0o700).
    pub mode: u32,
}

/// The account files of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// `/etc/passwd`.
    pub passwd: Vec<u8>,
    /// `/etc/group`.
    pub group: Vec<u8>,
    /// `/etc/shadow`.
    pub shadow: Vec<u8>,
    /// `/etc/nsswitch.conf` (the module's `NSSWITCH`).
    pub nsswitch: Vec<u8>,
    /// The home directories to make, in id order.
    pub homes: Vec<Home>,
}

/// The account files of `users` and `groups` over `base` (empty without
/// `fromImage`). Errors name the entries at fault.
pub fn accounts(users: &[User], groups: &[Group], base: &Base) -> crate::Result<Accounts> {
    resolve::accounts(users, groups, base).map_err(crate::Error::Invalid)
}
