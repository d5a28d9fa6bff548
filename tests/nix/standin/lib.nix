# The part of nixpkgs' lib that flake.nix and nix/package.nix use, with the
# same names and shapes: genAttrs, optionalAttrs, optionalString, importTOML, the licenses
# and platforms meta names, and the fileset functions package.nix calls.
let
  hasPrefix = pre: s: builtins.substring 0 (builtins.stringLength pre) s == pre;
in
{
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  optionalAttrs = cond: attrs: if cond then attrs else { };
  optionalString = cond: string: if cond then string else "";
  importTOML = path: builtins.fromTOML (builtins.readFile path);

  licenses = {
    mit = {
      spdxId = "MIT";
      shortName = "mit";
      fullName = "MIT License";
      free = true;
    };
    asl20 = {
      spdxId = "Apache-2.0";
      shortName = "asl20";
      fullName = "Apache License 2.0";
      free = true;
    };
  };
  platforms.linux = [
    "aarch64-linux"
    "armv6l-linux"
    "armv7l-linux"
    "i686-linux"
    "powerpc64le-linux"
    "riscv64-linux"
    "s390x-linux"
    "x86_64-linux"
  ];

  # A file set is a list of paths here; toSource copies to the store the
  # files under `root` that lie in one of them (a directory: all it holds),
  # named "source" as nixpkgs names it, and refuses a path that does not
  # exist or lies outside `root`, as nixpkgs does.
  fileset = {
    unions = paths: paths;
    toSource =
      { root, fileset }:
      let
        rootStr = toString root;
        wanted = map (
          p:
          let
            s = toString p;
          in
          if !builtins.pathExists p then
            throw "lib.fileset.toSource: ${s} does not exist"
          else if !hasPrefix "${rootStr}/" s then
            throw "lib.fileset.toSource: ${s} is not under root ${rootStr}"
          else
            s
        ) fileset;
      in
      builtins.path {
        path = root;
        name = "source";
        filter =
          path: type:
          builtins.any (w: path == w || hasPrefix "${w}/" path || hasPrefix "${path}/" w) wanted;
      };
  };
}
