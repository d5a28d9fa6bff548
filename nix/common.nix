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

  /** Whether a list is made only of derivations produced by `kind` steps. */
  stepsOf = kind: builtins.all (x: builtins.isAttrs x && (x.command or null) == kind);
}
