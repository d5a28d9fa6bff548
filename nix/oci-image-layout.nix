{ common, ociImageArchive }:
let
  inherit (common)
    checkBool
    checkDoc
    checkExtra
    checkList
    checkName
    checkStringAttrs
    checkTag
    checkTags
    describe
    doc
    mkStep
    platformTag
    ;
in
/**
  An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`), what
  `podman`, `skopeo` and `crane push` read. One manifest: the tags name it.
  Several (one per platform): they form an image index, which the tags name.
  `index.json` always holds that one image, so `crane push result REF` and
  `podman load -i` take it whatever the tags and platforms.

  # Inputs

  `name` (string, default `"oci-image"`)
  : Name of the derivation.

  `manifests` (list of `ociImageManifest` results)
  : At least one; one per platform (checked at evaluation when the
    platforms are known there: not when `architecture` is null).

  `tag` (string or null, default `"latest"`), `tags` (list, default `[ tag ]`)
  : The image's names. A null tag is the hash part of the (first)
    manifest's output path, as dockerTools does: it changes exactly when
    the image does. The first is its `org.opencontainers.image.ref.name`
    (what skopeo, podman and umoci look up); all are recorded in the
    `dev.nixoci.image.tags` annotation, and `nixoci push result REPO` sets
    them all.

  `annotations` (attrset, default `{}`)
  : Annotations of the image index (several manifests only).

  `extraIndex` (attrset, default `{}`)
  : Merged last into `index.json`; checked as `extraManifest` is.

  The result also has `.archive` (an OCI archive) and `.dockerArchive` (the
  `docker save` format), files for `podman load -i`, `.imageNames`,
  every name the layout gives its image (tags, then platform tags),
  `.imageName` (`name`) and `.imageTag` (the first tag), and three
  programs for `nix run` that call the tool with the layout:
  `.copyToRegistry` (`nixoci push LAYOUT ARGS...`: give `REGISTRY/REPO`,
  every tag is set), `.copyTo` (`nixoci archive LAYOUT ARGS...`: give
  `-o FILE`, maybe `--format docker`) and `.copyToPodman` (a docker
  archive named `imageName:imageTag`, then `podman load -i` with ARGS).

  `platformTags` (bool, default `false`)
  : With several manifests, also name each one `TAG-OS-ARCH[-VARIANT]`
    (e.g. `latest-linux-arm64-v8`): `nixoci push` sets these tags too, and
    `nixoci archive result:latest-linux-arm64-v8` gives that platform alone
    for tools that cannot pick one from an index (umoci 0.4).

  `sbom` (`false`, `true`, `"spdx"`, `"cyclonedx"`, or a list of those;
  default `false`)
  : Attach the SBOM of each image's Nix closure (`nixoci sbom`: store
    paths, NAR hashes, references, layers) to it, in the layout, as a
    referrer: an OCI 1.1 artifact whose subject is the image's manifest,
    listed without a tag in the layout nested at `referrers/` (its blobs
    are the layout's own), so `index.json` keeps the one image, as `crane
    push` requires. `nixoci push` sends the referrers after the
    image; `oras cp -r --from-oci-layout result/referrers:TAG REF` copies
    both. `true` is SPDX. Built in the sandbox, from the image itself.

  `strictReferences` (bool, default `false`)
  : Make a store path in the image's closure that is not one of its own
    building blocks a build error. The layout's closure may then hold only
    the outputs of the nixoci steps it is made from (layers, configs,
    manifests, at any depth, given directly or through other functions)
    and its base images (`fromImage`); Nix checks it on the output
    (`allowedRequisites`). A store path written with its context in a
    config (`Env = [ "PATH=''${pkgs.nginx}/bin" ]`), or an uncompressed
    layer (whose tar holds the paths it packs as written), then fails the
    build with Nix's "is not allowed to refer to the following paths",
    naming the path, instead of making `nix copy` of the image carry it
    uncompressed.

  # Type

  ```
  ociImageLayout :: { manifests :: [Derivation]; tag? :: String; tags? :: [String]; extraIndex? :: AttrSet; ... } -> Derivation
  ```

  # Examples

  ```nix
  ociImageLayout { manifests = [ amd64Manifest arm64Manifest ]; tags = [ "1.0" "latest" ]; }
  ```
*/
{
  name ? "oci-image",
  manifests,
  tag ? "latest",
  tags ? [ tag ],
  annotations ? { },
  extraIndex ? { },
  platformTags ? false,
  sbom ? false,
  strictReferences ? false,
}:
let
  fn = "ociImageLayout";
  sbomFormats = common.checkSbom fn sbom;
  list = checkList "${fn}: manifests" manifests;
  checked =
    if list == [ ] then
      throw "${fn}: manifests is empty: a layout needs at least one manifest (an ociImageManifest result)"
    else
      map (
        m: if (m.command or null) == "manifest" then m else throw "${fn}: manifests must list ociImageManifest results, not ${describe m}"
      ) list;
  # Platforms known at evaluation (an ociImageManifest result records its
  # own; null when it is known only at build time, where the tool checks).
  platforms = map (m: m.platform or null) checked;
  known = builtins.filter (p: p != null) platforms;
  several = builtins.length checked > 1;
  samePlatform = builtins.filter (p: builtins.length (builtins.filter (q: q == p) known) > 1) known;
  platformNames = p: builtins.concatStringsSep "/" ([ p.os p.architecture ] ++ (if p ? variant then [ p.variant ] else [ ]));
  # A null tag: the hash part of the first manifest's output path.
  hashTag = builtins.substring 0 32 (baseNameOf (builtins.unsafeDiscardStringContext "${builtins.head checked}"));
  tagList = builtins.seq (if tag == null then null else checkTag "${fn}: tag" tag) (
    checkTags "${fn}: tags" (map (t: if t == null then hashTag else t) (checkList "${fn}: tags" tags))
  );
  # The tags as the tool keeps them: duplicates dropped, latest when none.
  unique = builtins.foldl' (acc: t: if builtins.elem t acc then acc else acc ++ [ t ]) [ ] tagList;
  finalTags = if unique == [ ] then [ "latest" ] else unique;
  withPlatformTags = checkBool "${fn}: platformTags" platformTags && several;
  platformTagNames = builtins.concatMap (t: map (p: { tag = t; platform = p; name = platformTag t p; }) known) finalTags;
  checkPlatformTag =
    pt:
    if builtins.elem pt.name finalTags then
      throw "${fn}: tags: ${builtins.toJSON pt.name} is also the platform tag of ${builtins.toJSON pt.tag} for ${platformNames pt.platform}; rename one, or leave platformTags off"
    else
      checkTag "${fn}: the platform tag ${builtins.toJSON pt.name} (of tag ${builtins.toJSON pt.tag})" pt.name;
  spec =
    if several && samePlatform != [ ] then
      throw "${fn}: manifests: two are for the same platform ${platformNames (builtins.head samePlatform)}; an index needs one manifest per platform: give each its own architecture, os or variant"
    else
      builtins.deepSeq (if withPlatformTags then map checkPlatformTag platformTagNames else [ ]) (
        {
          manifests = map (m: "${m}") checked;
          tags = tagList;
          annotations = checkStringAttrs "${fn}: annotations" annotations;
          platformTags = checkBool "${fn}: platformTags" platformTags;
        }
        // (if sbomFormats == [ ] then { } else { sbom = sbomFormats; })
        // (
          if extraIndex == { } then
            { }
          else
            {
              extraIndex = checkDoc "${fn}: extraIndex" doc.extraManifest (
                checkExtra "${fn}: extraIndex" [ "schemaVersion" "mediaType" "manifests" ] extraIndex
              );
            }
        )
      );
  layout = mkStep {
    name = checkName "${fn}: name" name;
    command = "layout";
    inherit spec;
    parts = checked;
    outputChecks =
      if checkBool "${fn}: strictReferences" strictReferences then
        { out.allowedRequisites = [ "out" ] ++ common.partsOf checked; }
      else
        null;
  };
  imageTag = builtins.head finalTags;
  # A program for `nix run`: /bin/sh running the tool with the layout.
  program =
    suffix: text:
    mkStep {
      name = "${name}-${suffix}";
      command = "script";
      spec = {
        name = "${name}-${suffix}";
        text = "#!/bin/sh\nset -e\n${text}\n";
      };
    }
    // {
      meta.mainProgram = "${name}-${suffix}";
    };
  tool = "'${common.tool}'";
in
layout
// {
  imageName = name;
  inherit imageTag;
  copyToRegistry = program "copy-to-registry" "exec ${tool} push '${layout}' \"$@\"";
  copyTo = program "copy-to" "exec ${tool} archive '${layout}' \"$@\"";
  copyToPodman = program "copy-to-podman" (
    "f=$(mktemp \"\${TMPDIR:-/tmp}/${name}.XXXXXX\")\ntrap 'rm -f \"$f\"' EXIT\n"
    + "${tool} archive '${layout}' --format docker --tag '${name}:${imageTag}' --force -o \"$f\" -q\n"
    + "podman load -i \"$f\" \"$@\""
  );
  # Every name the layout gives its image (what `nixoci archive LAYOUT:TAG`
  # resolves), for ociImageArchive's tag; null when a platform tag depends
  # on a platform known only at build time.
  imageNames =
    if withPlatformTags && builtins.length known < builtins.length checked then
      null
    else
      finalTags ++ (if withPlatformTags then map (pt: pt.name) platformTagNames else [ ]);
  archive = ociImageArchive { image = layout; };
  dockerArchive = ociImageArchive {
    image = layout;
    format = "docker";
  };
}
