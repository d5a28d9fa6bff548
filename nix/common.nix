# Shared pieces of the nixoci functions: the derivation every step is, the
# platform of a Nix system, and argument checks with messages that name the
# function and the attribute at fault.
{
  nixoci,
  buildSystem,
  hostSystem,
}:
let
  # The tool: a package (its bin/nixoci) or the executable itself.
  tool = if builtins.isAttrs nixoci && nixoci ? outPath then "${nixoci}/bin/nixoci" else "${nixoci}";

  platforms = {
    "x86_64-linux" = { architecture = "amd64"; os = "linux"; };
    "aarch64-linux" = { architecture = "arm64"; os = "linux"; variant = "v8"; };
    "i686-linux" = { architecture = "386"; os = "linux"; };
    "armv7l-linux" = { architecture = "arm"; os = "linux"; variant = "v7"; };
    "armv6l-linux" = { architecture = "arm"; os = "linux"; variant = "v6"; };
    "powerpc64le-linux" = { architecture = "ppc64le"; os = "linux"; };
    "s390x-linux" = { architecture = "s390x"; os = "linux"; };
    "riscv64-linux" = { architecture = "riscv64"; os = "linux"; };
    "x86_64-darwin" = { architecture = "amd64"; os = "darwin"; };
    "aarch64-darwin" = { architecture = "arm64"; os = "darwin"; };
  };
in
rec {
  inherit tool buildSystem hostSystem;

  /**
    The OCI platform (`architecture`, `os`, maybe `variant`) of a Nix system.

    # Type

    ```
    platformOf :: String -> { architecture :: String; os :: String; variant? :: String; }
    ```

    # Examples

    ```nix
    platformOf "aarch64-linux"
    => { architecture = "arm64"; os = "linux"; variant = "v8"; }
    ```
  */
  platformOf =
    system:
    platforms.${system}
      or (throw "nixoci: no OCI platform is known for system ${system}; pass architecture and os explicitly");

  /** The platform the images are for (from `hostSystem`). */
  hostPlatform = platformOf hostSystem;

  /**
    One build step: a derivation whose builder is the nixoci tool, given
    `command` and `spec` through structured attrs. `closure`, when not
    null, is a list of store paths whose runtime closure Nix exports to the
    build as the `closure` attribute of `.attrs.json`.
  */
  mkStep =
    {
      name,
      command,
      spec,
      closure ? null,
    }:
    derivation (
      {
        inherit name command spec;
        system = buildSystem;
        builder = tool;
        args = [ "nix-builder" ];
        __structuredAttrs = true;
      }
      // (if closure == null then { } else { exportReferencesGraph.closure = closure; })
    );

  /** Drop attributes whose value is null. */
  dropNulls = attrs: builtins.removeAttrs attrs (builtins.filter (n: attrs.${n} == null) (builtins.attrNames attrs));

  /** Throw unless `attrs` has only `allowed` attribute names. */
  checkAttrs =
    what: allowed: attrs:
    let
      unknown = builtins.filter (n: !(builtins.elem n allowed)) (builtins.attrNames attrs);
    in
    if unknown == [ ] then
      attrs
    else
      throw "${what}: unknown attribute(s) ${builtins.concatStringsSep ", " unknown}; expected ${builtins.concatStringsSep ", " allowed}";

  /** Throw unless `value` is one of `choices`. */
  checkOneOf =
    what: choices: value:
    if builtins.elem value choices then
      value
    else
      throw "${what}: ${builtins.toJSON value} is not one of ${builtins.concatStringsSep ", " choices}";

  /**
    The store path a string lies in (keeping its context), or null when it is
    not inside the store.
  */
  storeRoot =
    s:
    let
      str = toString s;
      m = builtins.match "(${builtins.storeDir}/[^/]+).*" str;
    in
    if m == null then null else builtins.substring 0 (builtins.stringLength (builtins.head m)) str;

  /**
    A value as an error message shows it: JSON for plain data, the type for
    the rest (a derivation by its name).
  */
  describe =
    v:
    if v == null || builtins.isString v || builtins.isInt v || builtins.isBool v || builtins.isFloat v then
      builtins.toJSON v
    else if builtins.isAttrs v && v ? outPath then
      "the derivation ${v.name or "(unnamed)"}"
    else if builtins.isAttrs v then
      "an attribute set"
    else if builtins.isList v then
      "a list"
    else if builtins.isFunction v then
      "a function"
    else
      "a ${builtins.typeOf v}";

  /**
    `value` when `ok value`, else a throw naming `what` (`"function:
    attribute"`), what was expected, and what was given.
  */
  expect =
    what: expected: ok: value:
    if ok value then value else throw "${what} must be ${expected}, not ${describe value}";

  isStringList = v: builtins.isList v && builtins.all builtins.isString v;
  isPlainAttrs = v: builtins.isAttrs v && !(v ? outPath);

  checkString = what: expect what "a string" builtins.isString;
  checkBool = what: expect what "true or false" builtins.isBool;
  checkList = what: expect what "a list" builtins.isList;
  checkAttrset = what: expect what "an attribute set" isPlainAttrs;
  /** An attribute set whose values are strings, each checked. */
  checkStringAttrs =
    what: v:
    builtins.mapAttrs (n: checkString "${what}.${attrName n}") (expect what "an attribute set of strings" isPlainAttrs v);
  /** A list of strings, each checked. */
  checkStringList =
    what: v:
    let
      l = expect what "a list of strings" builtins.isList v;
    in
    builtins.genList (i: checkString "${what}[${toString i}]" (builtins.elemAt l i)) (builtins.length l);
  /** An attribute name as Nix code writes it. */
  attrName = n: if builtins.match "[A-Za-z_][A-Za-z0-9_'-]*" n != null then n else builtins.toJSON n;
  checkNullOr = check: what: v: if v == null then v else check what v;

  /** A user or group id: what a tar header holds (0 to 2^32-1). */
  checkId = what: expect what "an integer from 0 to 4294967295" (v: builtins.isInt v && v >= 0 && v <= 4294967295);

  /** An octal permission string, "0755" style, at most 07777. */
  checkMode = what: expect what "an octal string like \"0755\" (at most \"07777\"; a Nix integer would be read as decimal)" (
    v: builtins.isString v && builtins.match "0?[0-7]{1,4}" v != null
  );

  /**
    The compression level for `compression`: null, or gzip 1-9, zstd 1-19;
    an uncompressed layer takes none.
  */
  checkLevel =
    what: compression: level:
    let
      range = { gzip = [ 1 9 ]; zstd = [ 1 19 ]; }.${compression} or null;
    in
    if level == null then
      level
    else if range == null then
      throw "${what} must be null for compression = ${builtins.toJSON compression}, not ${describe level}"
    else
      expect what "an integer from ${toString (builtins.elemAt range 0)} to ${toString (builtins.elemAt range 1)} for ${compression}, or null" (
        v: builtins.isInt v && v >= builtins.elemAt range 0 && v <= builtins.elemAt range 1
      ) level;

  /** A tag, as the distribution spec defines it. */
  checkTag = what: expect what "a tag: 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -" (
    v: builtins.isString v && builtins.match "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}" v != null
  );

  /** A platform name (architecture, os, variant): like amd64, linux, v8. */
  checkPlatformName = what: expect what "a platform name like amd64, arm64, linux or v8 ([A-Za-z0-9._-])" (
    v: builtins.isString v && builtins.match "[A-Za-z0-9._-]+" v != null
  );

  /** Whether a string is an RFC 3339 time, 2024-01-31T12:00:00Z style. */
  isRfc3339 =
    v:
    let
      m = builtins.match "([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.[0-9]+)?([Zz]|[+-]([0-9]{2}):([0-9]{2}))" v;
      num = i: builtins.fromJSON (builtins.head (builtins.match "0*([0-9]+)" (builtins.elemAt m i)));
      year = num 0;
      month = num 1;
      leap = (year - year / 4 * 4 == 0) && (year - year / 100 * 100 != 0 || year - year / 400 * 400 == 0);
      days = builtins.elemAt [ 31 (if leap then 29 else 28) 31 30 31 30 31 31 30 31 30 31 ] (month - 1);
      offset = builtins.elemAt m 8 != null;
    in
    builtins.isString v
    && m != null
    && month >= 1
    && month <= 12
    && num 2 >= 1
    && num 2 <= days
    && num 3 <= 23
    && num 4 <= 59
    && num 5 <= 60
    && (!offset || (num 8 <= 23 && num 9 <= 59));

  checkCreated = what: checkNullOr (w: expect w "an RFC 3339 time like \"2024-01-31T12:00:00Z\"" isRfc3339) what;

  /**
    The OCI `config` object, with the fields nixoci knows and their types;
    any other field goes in `extraConfig`. Null means unset.
  */
  checkConfig =
    what: config:
    let
      fields = {
        User = checkString;
        WorkingDir = checkString;
        StopSignal = checkString;
        Env = checkStringList;
        Entrypoint = checkStringList;
        Cmd = checkStringList;
        Labels = checkStringAttrs;
        ExposedPorts = w: expect w "a list of strings or an attribute set" (v: isStringList v || isPlainAttrs v);
        Volumes = w: expect w "a list of strings or an attribute set" (v: isStringList v || isPlainAttrs v);
      };
      known = builtins.attrNames fields;
      c = checkAttrset what config;
      unknown = builtins.filter (n: !(fields ? ${n})) (builtins.attrNames c);
    in
    if unknown != [ ] then
      throw "${what}: unknown field(s) ${builtins.concatStringsSep ", " unknown}; known: ${builtins.concatStringsSep ", " known} (any other OCI config field goes in extraConfig)"
    else
      builtins.mapAttrs (n: v: checkNullOr fields.${n} "${what}.${n}" v) c;

  /** An `extra*` attrset, which may not set the fields nixoci writes. */
  checkExtra =
    what: reserved: value:
    let
      v = checkAttrset what value;
      bad = builtins.filter (n: builtins.elem n reserved) (builtins.attrNames v);
    in
    if bad == [ ] then v else throw "${what} may not set ${builtins.concatStringsSep ", " bad}: nixoci writes them";

  fileAttrs = [ "source" "destination" "mode" "uid" "gid" ];

  endsWithSlash = s: builtins.match ".*/" s != null;

  # A package: a derivation with a program name or several outputs (made by
  # mkDerivation with pname, ...). A single-file derivation (writeText,
  # writeShellScript) has neither, and is put at its destination as it is.
  isPackage =
    s:
    builtins.isAttrs s
    && s ? outPath
    && (s ? meta.mainProgram || s ? pname || builtins.length (s.outputs or [ "out" ]) > 1);

  # One `files` entry as the tool takes it: the source as a string (a
  # package with meta.mainProgram, put at a destination that does not end in
  # "/", means its main program), destination, mode, uid and gid checked.
  normaliseFile =
    fn: i: f:
    let
      what = "${fn}: files[${toString i}]";
      checked = checkAttrs what fileAttrs (
        if builtins.isAttrs f && !(f ? outPath) then f else throw "${what}: expected { source, destination?, mode?, uid?, gid? }, not ${describe f}"
      );
      dest = checked.destination or null;
      src = checked.source;
      mainProgram = src.meta.mainProgram or null;
      pkgName = src.pname or src.name or "pkg";
      source =
        if !(checked ? source) then
          throw "${what}: source is required"
        else if !(builtins.isString src || builtins.isPath src || (builtins.isAttrs src && src ? outPath)) then
          throw "${what}.source must be a path, a string or a derivation, not ${describe src}"
        else if dest == null || endsWithSlash dest || !(isPackage src) then
          "${src}"
        else if mainProgram != null then
          "${src}/bin/${mainProgram}"
        else
          throw (
            "${what}: the package ${pkgName} has no meta.mainProgram, so destination ${builtins.toJSON dest} "
            + "(which does not end in /) cannot name its program. Write destination = \"${dest}/\" to copy "
            + "the package's contents there, or source = \"\${${pkgName}}/bin/${baseNameOf dest}\" for one "
            + "of its files (or source = \"\${${pkgName}}\" when the package's output is itself that file)"
          );
    in
    dropNulls {
      inherit source;
      destination =
        if dest == null || (builtins.isString dest && builtins.substring 0 1 dest == "/") then
          dest
        else
          throw "${what}: destination ${describe dest} must be an absolute path (start with /)";
      mode = checkNullOr checkMode "${what}.mode" (checked.mode or null);
      uid = checkNullOr checkId "${what}.uid" (checked.uid or null);
      gid = checkNullOr checkId "${what}.gid" (checked.gid or null);
    };

  /** The checked `files` list of function `fn` (as `ociLayerTar` takes it). */
  normaliseFiles =
    fn: files:
    let
      list = checkList "${fn}: files" files;
    in
    builtins.genList (i: normaliseFile fn i (builtins.elemAt list i)) (builtins.length list);

  /**
    The image config settings (`architecture`, `os`, `variant`, `created`,
    `author`, `config`, `extraConfig`; unset: null), checked in the name of
    function `fn`, and returned once every check has passed.
  */
  checkConfigArgs =
    fn: a:
    let
      c = {
        architecture = checkNullOr checkPlatformName "${fn}: architecture" (a.architecture or null);
        os = checkNullOr checkPlatformName "${fn}: os" (a.os or null);
        variant = checkNullOr checkPlatformName "${fn}: variant" (a.variant or null);
        created = checkCreated "${fn}: created" (a.created or null);
        author = checkNullOr checkString "${fn}: author" (a.author or null);
        config = checkConfig "${fn}: config" (a.config or { });
      };
      extraConfig = checkExtra "${fn}: extraConfig" [ "rootfs" ] (a.extraConfig or { });
    in
    builtins.deepSeq c (builtins.seq extraConfig (c // { inherit extraConfig; }));

  /** The store paths of a list of `ociLayerTar` results given to `fn`. */
  checkLayers =
    what: layers:
    map (
      l: if (l.command or null) == "layer" then "${l}" else throw "${what} must list ociLayerTar results, not ${describe l}"
    ) (checkList what layers);

  /** A list of tags given to `fn`, each checked. */
  checkTags =
    what: tags:
    let
      list = checkList what tags;
    in
    builtins.genList (i: checkTag "${what}[${toString i}]" (builtins.elemAt list i)) (builtins.length list);

  /** Whether a list is made only of derivations produced by `kind` steps. */
  stepsOf = kind: builtins.all (x: builtins.isAttrs x && (x.command or null) == kind);
}
