//! The root filesystem arguments of the Nix functions (`users`, `groups`,
//! `directories`, `symlinks`, inline `files`, `perms`, `tmp`,
//! `nixDatabase`): the evaluation checks of every argument.

use super::*;

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
    let mut wrong = Vec::new();
    for (attr, message) in cases {
        let out = nix("nix-instantiate")
            .args(["tests/nix/bad.nix", "-A", attr])
            .output()
            .unwrap();
        let err = stderr(&out);
        if out.status.success() || !err.contains(message) {
            wrong.push(format!("{attr}: expected {message:?}, got:\n{err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
