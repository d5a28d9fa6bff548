{
  common,
  ociLayerTar,
  ociLayers,
  ociImageManifest,
  ociImageLayout,
}:
/**
  A whole image in one call, for when layers are not worth thinking about:
  the packages in `contents` are merged at `/` (like a profile), `files`
  placed as in `ociLayerTar`, in one layer over the optional prebuilt
  `layers`, and the runtime closure below it, split into stable layers
  (`ociLayers`; at most 100 layers in all by default). The result is an
  OCI image layout; `.manifest` and `.layers` give the parts.

  # Inputs

  `name` (string)
  : Name of the image (and of the derivation).

  `tag` (string or null, default `"latest"`), `tags` (list, default `[ tag ]`)
  : Tags in the layout; a null tag is the hash of the image's manifest
    output, as in `ociImageLayout`, which also gives the result's
    `imageName`, `imageTag`, `copyToRegistry`, `copyTo` and
    `copyToPodman`.

  `contents` (list of packages, default `[]`)
  : Each merged at `/` as links into the store, as a Nix profile or
    `buildEnv` is (its `bin/x` becomes `/bin/x`, a symbolic link to
    `${pkg}/bin/x`): the package's files are in the image once, in its
    store path, which the closure brings. At least one of
    `contents`, `files`, `layers`, `fromImage` and the root filesystem
    settings below (`tmp` given `true` counts, not its default) is given.

  `files` (list, default `[]`)
  : As in `ociLayerTar`: sources, and inline files (`{ text; destination;
    mode?; uid?; gid?; }`).

  `users`, `groups`, `directories`, `symlinks` (lists, default `[]`)
  : As in `ociLayerTar`, in the image's own layer: accounts (added to a
    base image's `/etc/passwd` and `/etc/group`, never written over them),
    directories with mode and owner, links (a store target brings its
    closure). `config.User` must then name a user or group the image has
    (or be numeric).

  `perms` (list, default `[]`)
  : As in `ociLayerTar` (`{ path = app; regex = ".+/var(/.+)?"; uid =
    1000; gid = 1000; mode = "0775"; }`). A rule whose `path` is in the
    store goes, when the closure is split (`maxLayers`), to the closure's
    layers, which hold the store paths; the other rules to the image's own
    layer. A rule matches the entries of the layers it goes to, not those
    of `layers` or a base image.

  `tmp` (bool, default `true`)
  : `/tmp` with mode 1777 in the image's own layer, unless the base image
    or that layer has one; `false` leaves it out. On `fromImage` with
    nothing else for the own layer (a base with a new config), the default
    adds no layer: give `tmp = true` for one.

  `nixDatabase` (bool, default `false`), `nixUid`, `nixGid` (default null: 0)
  : As in `ociLayerTar`, in the image's own layer, over the whole image:
    the closure's layers, `layers` and the base image (whose store paths
    its own database lists, or which is an `ociImage` result: the build
    reads the store paths of both kinds).

  `layers` (list of `ociLayerTar` results, default `[]`)
  : Prebuilt layers below the image's own; their store paths are not
    repeated.

  `config`, `extraConfig`, `annotations`, `architecture`, `os`, `variant`, `created`
  : As in `ociImageManifest`.

  `compression` (default `"gzip"`), `includeClosure` (default `true`)
  : As in `ociLayerTar`.

  `maxLayers` (int from 2 to 127, or null; default 100)
  : The runtime closure is split automatically (`ociLayers`): the image
    has at most this many layers, counting every layer: `layers` (an
    `ociLayers` result counts as its own `maxLayers`), the closure's
    layers, and the image's own layer (`contents`, `files`, the root
    filesystem settings and `/tmp`: every image has it but one on a base
    with only a new config), which then holds only what they put at their
    destinations. Given, more than 127
    or fewer than the layers already fixed plus one is an error at
    evaluation. Not given, the closure takes what the fixed layers leave
    of 100, and if they leave none it goes into the image's own layer (so
    that no image is refused for a budget it did not ask for). Null: the
    closure goes into the image's own layer, one layer for all.

  `strategy` (`"stable"` | `"popularity"`, default `"stable"`)
  : How `ociLayers` groups the closure, with `maxLayers`.

  `source`, `revision`, `version`, `self`
  : As in `ociImageManifest`: where the image came from, as annotations.

  `sbom` (default `false`)
  : As in `ociImageLayout`: the SBOM of the image's closure, attached to
    it in the layout (`true`: SPDX; `"cyclonedx"`; or both in a list).

  `strictReferences` (bool, default `false`)
  : As in `ociImageLayout`: a store path in the image's closure other than
    its layers, config, manifest and base image is a build error (such as
    one written with its context in `config`). Refused with `compression =
    "none"`, whose layer references what it packs.

  `remove` (list of absolute paths, default `[]`)
  : Paths of the base (or of `layers`) to delete, as OCI whiteouts in the
    image's own layer (as in `ociLayerTar`).

  `fromImage`, `fromImageTag` (default null), `baseSymlinks` (default `"error"`)
  : The base image, as for `ociImageConfig`: its layers first, its config
    inherited, its store paths not repeated, its layers counted in
    `maxLayers` (at build time: only the build sees them). The image's own
    layer is placed onto it (parent directories keep the base's modes;
    with `baseSymlinks = "follow"`, `/bin/x` goes through the base's
    `/bin -> usr/bin` to `/usr/bin/x`). `contents`, `files` and `layers`
    may then all be empty: the base with a new config.

  # Type

  ```
  ociImage :: { name :: String; tag? :: String; contents? :: [Derivation]; files? :: [AttrSet]; users? :: [AttrSet]; tmp? :: Bool; config? :: AttrSet; ... } -> Derivation
  ```

  # Examples

  ```nix
  ociImage {
    name = "hello";
    contents = [ pkgs.hello ];
    config.Cmd = [ "/bin/hello" ];
  }
  ```

  A non-root service: see docs/rootfs.md, "A root filesystem without
  fakeroot".
*/
{
  name,
  tag ? "latest",
  tags ? [ tag ],
  contents ? [ ],
  files ? [ ],
  layers ? [ ],
  config ? { },
  extraConfig ? { },
  annotations ? { },
  compression ? "gzip",
  includeClosure ? true,
  maxLayers ? 100,
  strategy ? "stable",
  architecture ? null,
  os ? null,
  variant ? null,
  created ? null,
  fromImage ? null,
  fromImageTag ? null,
  baseSymlinks ? "error",
  remove ? [ ],
  sbom ? false,
  strictReferences ? false,
  source ? null,
  revision ? null,
  version ? null,
  self ? null,
  users ? [ ],
  groups ? [ ],
  directories ? [ ],
  symlinks ? [ ],
  perms ? [ ],
  tmp ? true,
  nixDatabase ? false,
  nixUid ? null,
  nixGid ? null,
}@args:
let
  fn = "ociImage";
  # Checked here, so that a message names this function and its attribute
  # rather than the function it is passed on to.
  checks = [
    (common.checkName "${fn}: name" name)
    (if tag == null then null else common.checkTag "${fn}: tag" tag)
    (common.checkList "${fn}: tags" tags)
    (
      let
        l = common.checkList "${fn}: contents" contents;
      in
      builtins.genList (i: "${common.checkSource "${fn}: contents[${toString i}]" (builtins.elemAt l i)}") (builtins.length l)
    )
    (common.normaliseFiles fn files)
    # Before the budget, which counts the layer they make.
    (common.checkUsers fn users)
    (common.checkGroups fn groups)
    (common.checkDirectories fn directories)
    links
    permsChecked
    withTmp
    withDatabase
    (common.checkNixId fn "nixUid" withDatabase nixUid)
    (common.checkNixId fn "nixGid" withDatabase nixGid)
    (common.checkLayers "${fn}: layers" layers)
    (common.checkStringAttrs "${fn}: annotations" annotations)
    (common.checkOneOf "${fn}: compression" [ "gzip" "zstd" "none" ] compression)
    (common.checkBool "${fn}: includeClosure" includeClosure)
    (common.checkOneOf "${fn}: strategy" [ "stable" "popularity" ] strategy)
    (if maxLayers == null then null else budget)
    (common.checkConfigArgs fn { inherit config extraConfig architecture os variant created; })
    (common.checkSbom fn sbom)
    (
      if common.checkBool "${fn}: strictReferences" strictReferences && compression == "none" then
        throw "${fn}: strictReferences needs compressed layers: an uncompressed layer's tar holds the store paths it packs as written, so its output refers to them; give compression = \"gzip\" or \"zstd\", or leave strictReferences off"
      else
        null
    )
    from
  ];
  links = common.checkSymlinks fn symlinks;
  permsChecked = common.normalisePerms fn perms;
  withDatabase = common.checkBool "${fn}: nixDatabase" nixDatabase;
  withTmp = common.checkBool "${fn}: tmp" tmp;
  from = common.checkFromImage fn fromImage fromImageTag baseSymlinks;
  # The image's platform, for choosing from a multi-platform base.
  imagePlatform =
    let
      p = common.hostPlatform // common.dropNulls { inherit architecture os variant; };
    in
    "${p.os}/${p.architecture}${if (p.variant or null) != null then "/${p.variant}" else ""}";
  # A package in contents is linked at `/` (its bin/x becomes /bin/x, a
  # link into the store), not copied: its files are in the image once, in
  # its store path.
  # Labelled, so that a build-time message names the user's own entry
  # (files[0], not its place after the contents).
  ownFiles =
    builtins.genList (i: { source = builtins.elemAt contents i; destination = "/"; link = true; label = "${fn}: contents[${toString i}]"; }) (builtins.length contents)
    ++ builtins.genList (i: builtins.elemAt files i // { label = "${fn}: files[${toString i}]"; }) (builtins.length files);
  # The root filesystem settings, /tmp aside.
  declared = users != [ ] || groups != [ ] || directories != [ ] || symlinks != [ ] || perms != [ ] || withDatabase;
  # /tmp makes a layer of its own, except on a base image (which has its
  # own /tmp, as a rule) when nothing else does and tmp is not given.
  hasOwn = contents != [ ] || files != [ ] || remove != [ ] || declared || (withTmp && (fromImage == null || args ? tmp));
  # Layers fixed before the closure is split: the given ones (an ociLayers
  # result counts as the most it may hold) and the image's own.
  fixedLayers =
    builtins.foldl' (n: l: n + (if (l.command or null) == "layers" then l.spec.maxLayers else 1)) 0 layers
    + (if hasOwn then 1 else 0);
  normalised = common.normaliseFiles fn ownFiles;
  rootsOf = common.sourceRoots;
  # What links and inline texts bring, with the sources' store paths.
  entryRoots = common.entryRoots { files = normalised; symlinks = links; };
  roots = rootsOf normalised ++ entryRoots;
  # Store paths whose files are only copied to destinations: the closure
  # step leaves them out (the copies are their files) unless something
  # refers to them, and keeps their references, as the image's own layer
  # does.
  copied =
    let
      isCopy = f: f ? destination && !(f.link or false);
      kept = rootsOf (builtins.filter (f: !(isCopy f)) normalised) ++ entryRoots;
    in
    builtins.filter (r: !(builtins.elem r kept)) (rootsOf (builtins.filter isCopy normalised));
  # An ociImage without maxLayers keeps to 100 layers if it can, and never
  # fails for it: its closure is split only into what is left.
  chosen = args ? maxLayers;
  split = maxLayers != null && includeClosure && roots != [ ] && (chosen || 100 - fixedLayers >= 1);
  budget =
    if !chosen then
      100 - fixedLayers
    else if !builtins.isInt maxLayers then
      throw "${fn}: maxLayers must be an integer or null, not ${builtins.typeOf maxLayers}"
    else if maxLayers > 127 then
      throw "${fn}: maxLayers is ${toString maxLayers}: at most 127 (overlay file systems refuse more than about 127 layers)"
    else if maxLayers - fixedLayers < 1 then
      throw "${fn}: maxLayers is ${toString maxLayers}, but ${toString fixedLayers} layers are already fixed (layers, and the image's own layer): give at least ${toString (fixedLayers + 1)}"
    else
      maxLayers - fixedLayers;
  # perms: rules on store paths go where the split puts the store paths.
  inClosure = r: split && common.storeRoot r.path != null;
  closurePerms = builtins.filter inClosure permsChecked;
  ownPerms = builtins.filter (r: !(inClosure r)) permsChecked;
  closureLayers = ociLayers (
    {
      name = "${name}-closure";
      inherit roots copied compression strategy;
      maxLayers = budget;
      base = layers;
    }
    // (if closurePerms == [ ] then { } else { perms = closurePerms; })
    // (
      if from == null then
        { }
      else
        {
          inherit fromImage fromImageTag;
          fromImagePlatform = imagePlatform;
          # Only the build sees how many layers the base has.
          budgetIncludesBase = if chosen then "strict" else "atLeastOne";
        }
    )
  );
  below = layers ++ (if split then [ closureLayers ] else [ ]);
  own = ociLayerTar {
    name = "${name}-layer";
    files = ownFiles;
    inherit compression includeClosure fromImage fromImageTag baseSymlinks remove;
    inherit users groups directories symlinks tmp nixDatabase nixUid nixGid;
    perms = ownPerms;
    fromImagePlatform = if fromImage == null then null else imagePlatform;
    base = below;
  };
  allLayers =
    if layers == [ ] && contents == [ ] && files == [ ] && fromImage == null && !declared && !(args ? tmp && withTmp) then
      throw "${fn}: give contents, files or layers: an image needs at least one layer (or a root filesystem alone: users, groups, directories, symlinks, perms, nixDatabase, or tmp = true)"
    else
      below ++ (if hasOwn then [ own ] else [ ]);
  # Unset platform fields keep ociImageManifest's defaults.
  platform = common.dropNulls { inherit architecture os variant; };
  manifest = ociImageManifest (
    {
      name = "${name}-manifest";
      layers = allLayers;
      inherit config extraConfig annotations created fromImage fromImageTag baseSymlinks;
      inherit source revision version self;
    }
    // platform
  );
  layout = ociImageLayout {
    inherit name tags sbom strictReferences;
    manifests = [ manifest ];
  };
in
builtins.deepSeq checks (
  layout
  // {
    inherit manifest;
    layers = allLayers;
    # The store paths whose closures hold the image's (its layers', and
    # its base image's when nixoci built it): what a Nix database over
    # an image built on this one reads.
    ociRoots = common.unique (builtins.concatMap (l: l.ociRoots or [ ]) (allLayers ++ [ fromImage ]));
  }
)
