{ common }:
let
  inherit (common)
    checkBool
    checkFromImage
    checkLevel
    checkList
    checkName
    checkOneOf
    checkRemove
    mkStep
    normaliseFiles
    ;
in
/**
  One image layer: a reproducible tar of files and store paths, compressed,
  with its descriptor. The result is a directory holding
  `blobs/sha256/<digest>` and `layer.json` (descriptor, diff_id, and the
  store paths the layer holds, written so that Nix does not record them as
  references of the layer: see docs/reference/specs.md, "Outputs of
  the building blocks").

  # Inputs

  `name` (string, default `"oci-layer"`)
  : Name of the derivation.

  `files` (list of attrsets, default `[]`)
  : What goes in. Each `{ source, destination?, mode?, uid?, gid? }`:
    `{ source = nginx; }` keeps the store path at its own path;
    `{ source = bash; destination = "/bin/bash"; }` puts a package's main
    program (`meta.mainProgram`) there when the destination does not end in
    `/`; a package without one (a derivation with `pname` or several
    outputs) is refused there: write `destination = "/bin/hello/"` to copy
    its contents, or `source = "${hello}/bin/hello"` for one file. A string
    source is an absolute path (a store path). A destination is absolute,
    normalised (no empty, `.` or `..` component, none over 255 bytes), and
    no component is named like an OCI whiteout (`.wh.NAME`); without one,
    the source's own path must be such a path.
    Otherwise a file (or single-file derivation, such as `writeText`'s)
    lands at `destination`, a directory's contents are merged under it, a
    symlink stays a symlink. `mode` is an octal string (at most `"07777"`),
    `uid` and `gid` integers from 0 to 4294967295. `link = true` (with a
    destination, for a store path) puts symbolic links to the source's
    files there instead of copies, as a Nix profile does.

    An entry with `text` instead of `source`, `{ text = "listen 80\n";
    destination = "/etc/app.conf"; mode?; uid?; gid?; }`, is a file holding
    that text (default mode `"0444"`, owner 0:0); its destination is the
    file's full path. A store path the text names with its string context
    (`"${pkgs.hello}/bin/hello"`) comes into the layer with its closure.

  `directories` (list of attrsets, default `[]`)
  : Directories made with the mode and owner given, each `{ path, mode?,
    uid?, gid? }` (default `"0755"`, 0:0); setuid, setgid and sticky bits
    are kept: `{ path = "/var/lib/app"; uid = 1000; gid = 1000; mode =
    "0750"; }`.

  `symlinks` (list of attrsets, default `[]`)
  : Symbolic links, each `{ path, target }`, the target written as given:
    `{ path = "/usr/bin/env"; target = "${pkgs.coreutils}/bin/env"; }`. A
    target in the store with its string context brings that store path and
    its closure into the layer, as a source does.

  `perms` (list of attrsets, default `[]`)
  : Rules setting the mode and owner of entries the layer places, store
    paths included, each `{ path, regex, mode?, uid?, gid? }` (at least one
    of the last three; `path` a string, or a package for its store path):
    every entry at or under `path` whose full path in
    the image the `regex` (Rust `regex` syntax) matches whole. A rule that
    matches nothing, or two that set one field of one entry differently,
    fail the build; their order does not matter.

  `users` (list of attrsets, default `[]`), `groups` (list, default `[]`)
  : Accounts: `/etc/passwd`, `/etc/group`, `/etc/shadow` (locked
    passwords) and `/etc/nsswitch.conf`, with `root` and `nobody` added
    unless given, and each user's home made (mode 0700, the user's).
    `users = [ { name = "app"; uid = 1000; gid ? uid; group ? name; home ?
    "/home/${name}"; shell ? "/sbin/nologin"; groups ? [ ]; createHome ?
    true; } ]`; `groups = [ { name; gid; members ? [ ]; } ]`. Onto
    `fromImage`, added to the base's files, whose lines are kept byte for
    byte.

  `tmp` (bool, default `false`)
  : Make `/tmp` with mode 1777, unless the base image or this layer has
    one (`ociImage` says `true`).

  `nixDatabase` (bool, default `false`), `nixUid`, `nixGid` (int or null, default null: 0)
  : Write a Nix database (`/nix/var/nix/db`, with the gcroots and profiles
    directories) registering every store path of the image: this layer's,
    its `base` layers' (whose closures the build then reads too) and the
    base image's; `/nix` is owned by `nixUid:nixGid`, for single-user Nix
    run as that user. Its bytes are reproducible.

  `compression` (`"gzip"` | `"zstd"` | `"none"`, default `"gzip"`)
  : Layer compression.

  `level` (int or null)
  : Compression level (gzip 1-9, default 6; zstd 1-19, default 3).

  `includeClosure` (bool, default `true`)
  : Add the runtime closure of every store path used, each at its own path.

  `base` (list of `ociLayerTar` or `ociLayers` results, default `[]`)
  : Layers below this one: store paths they hold are left out.

  `remove` (list of absolute paths, default `[]`)
  : Paths of the layers below to delete, written as OCI whiteouts
    (`.wh.NAME`). Onto `fromImage`, each must be there; the layer may not
    also put something there.

  `fromImage`, `fromImageTag` (default null), `baseSymlinks` (default `"error"`)
  : The base image this layer goes on (as for `ociImageConfig`): the store
    paths it holds are left out; parent directories the layer needs take
    the base's mode and owner (so `/tmp` stays 1777); with `baseSymlinks =
    "follow"`, paths are placed through the base's symbolic links
    (`/bin/x` into `/usr/bin/x` when the base has `/bin -> usr/bin`).

  # Type

  ```
  ociLayerTar :: { name? :: String; files? :: [AttrSet]; directories? :: [AttrSet]; symlinks? :: [AttrSet]; perms? :: [AttrSet]; users? :: [AttrSet]; groups? :: [AttrSet]; tmp? :: Bool; nixDatabase? :: Bool; compression? :: String; includeClosure? :: Bool; base? :: [Derivation]; } -> Derivation
  ```

  # Examples

  ```nix
  ociLayerTar {
    files = [
      { source = pkgs.bash; destination = "/bin/bash"; }
      { source = ./config.json; destination = "/etc/app/config.json"; mode = "0444"; }
    ];
    base = [ nginxLayer ];
  }
  ```

  ```nix
  ociLayerTar {
    users = [ { name = "app"; uid = 1000; } ];
    directories = [ { path = "/var/lib/app"; uid = 1000; gid = 1000; mode = "0750"; } ];
    symlinks = [ { path = "/usr/bin/env"; target = "${pkgs.coreutils}/bin/env"; } ];
    files = [ { text = "port = 8080\n"; destination = "/etc/app.conf"; } ];
  }
  ```
*/
{
  name ? "oci-layer",
  files ? [ ],
  compression ? "gzip",
  level ? null,
  includeClosure ? true,
  base ? [ ],
  remove ? [ ],
  fromImage ? null,
  fromImageTag ? null,
  # From a multi-platform base, which image (OS/ARCH[/VARIANT]; default:
  # the build machine's Linux); ociImage passes its own platform.
  fromImagePlatform ? null,
  baseSymlinks ? "error",
  directories ? [ ],
  symlinks ? [ ],
  perms ? [ ],
  users ? [ ],
  groups ? [ ],
  tmp ? false,
  nixDatabase ? false,
  nixUid ? null,
  nixGid ? null,
}:
let
  fn = "ociLayerTar";
  from = checkFromImage fn fromImage fromImageTag baseSymlinks;
  normalised = normaliseFiles fn files;
  links = common.checkSymlinks fn symlinks;
  withDatabase = checkBool "${fn}: nixDatabase" nixDatabase;
  roots = common.sourceRoots normalised ++ common.entryRoots { files = normalised; symlinks = links; };
  # With a Nix database, every store path of the image is read: those of
  # the layers below and of a base image nixoci built (ociImage), which
  # give their roots, too (their closures; what they hold is left out of
  # this layer all the same).
  baseRoots = builtins.concatMap (l: l.ociRoots or [ ]) (base ++ [ fromImage ]);
  baseDirs = map (
    l:
    if builtins.elem (l.command or null) [ "layer" "layers" ] then
      "${l}"
    else
      throw "ociLayerTar: base must list ociLayerTar results (or ociLayers results)"
  ) (checkList "ociLayerTar: base" base);
  compression' = checkOneOf "ociLayerTar: compression" [ "gzip" "zstd" "none" ] compression;
  withClosure = checkBool "ociLayerTar: includeClosure" includeClosure;
in
mkStep {
  name = checkName "ociLayerTar: name" name;
  command = "layer";
  spec =
    {
      files = normalised;
      compression = compression';
      base = baseDirs;
    }
    // (
      if from == null then
        { }
      else
        { fromImage = from // (if fromImagePlatform == null then { } else { platform = fromImagePlatform; }); }
    )
    // (if remove == [ ] then { } else { remove = checkRemove "ociLayerTar: remove" remove; })
    // (if level == null then { } else { level = checkLevel "ociLayerTar: level" compression' level; })
    // (if withClosure then { closure = { file = ".attrs.json"; attr = "closure"; }; } else { })
    # Each only when given: a layer without them has the spec it always had.
    // (if directories == [ ] then { } else { directories = common.checkDirectories fn directories; })
    // (if links == [ ] then { } else { symlinks = links; })
    // (if perms == [ ] then { } else { perms = common.normalisePerms fn perms; })
    // (if users == [ ] then { } else { users = common.checkUsers fn users; })
    // (if groups == [ ] then { } else { groups = common.checkGroups fn groups; })
    // (if checkBool "${fn}: tmp" tmp then { tmp = true; } else { })
    // (if withDatabase then { nixDatabase = true; } else { })
    // (if nixUid == null then { } else { nixUid = common.checkNixId fn "nixUid" withDatabase nixUid; })
    // (if nixGid == null then { } else { nixGid = common.checkNixId fn "nixGid" withDatabase nixGid; });
  closure =
    if withDatabase then
      common.unique ((if withClosure then roots else [ ]) ++ baseRoots)
    else if withClosure then
      roots
    else
      null;
  roots = common.unique (roots ++ baseRoots);
  parts = base ++ [ fromImage ];
}
