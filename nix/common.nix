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
    build as the `closure` attribute of `.attrs.json`. `parts`: the step
    results and base images it is made from; the result's `ociParts` holds
    its own output and theirs (what `strictReferences` allows).
    `outputChecks`, when not null, is Nix's structured-attrs form of
    `allowedReferences` and friends. `roots` (default: `closure`) are the
    store paths whose closure holds every store path of the result, which
    the result gives as `ociRoots` (what a layer with a Nix database over
    it exports too).
  */
  mkStep =
    {
      name,
      command,
      spec,
      closure ? null,
      roots ? (if closure == null then [ ] else closure),
      parts ? [ ],
      outputChecks ? null,
    }:
    let
      drv = derivation (
        {
          inherit name command spec;
          system = buildSystem;
          builder = tool;
          args = [ "nix-builder" ];
          __structuredAttrs = true;
        }
        // (if closure == null then { } else { exportReferencesGraph.closure = closure; })
        // (if outputChecks == null then { } else { inherit outputChecks; })
      );
    in
    drv
    // {
      # This output and those of the steps and base images it is made from
      # (`parts`): all an image's closure may hold (strictReferences).
      ociParts = [ "${drv}" ] ++ partsOf parts;
      ociRoots = roots;
    };

  /**
    The store paths of `inputs` (step results, base images, paths; null
    and paths outside the store left out), each with the building blocks
    it is made from: what an image made of them may refer to.
  */
  partsOf =
    inputs:
    builtins.concatMap (
      x:
      if builtins.isAttrs x && x ? ociParts then
        x.ociParts
      else if builtins.isPath x || builtins.isString x || (builtins.isAttrs x && x ? outPath) then
        let
          root = storeRoot "${x}";
        in
        if root == null then [ ] else [ root ]
      else
        # Not an input (null, or a mistake the function's checks report).
        [ ]
    ) inputs;

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

  /**
    Why the tool would refuse `n` as the name of a loaded image (null when
    it takes it): `NAME[:TAG]` must parse as an image reference
    (src/reference.rs: registry host[:port], lower-case repository
    components, a tag) and may not be a digest (src/archive.rs).
  */
  imageNameProblem =
    n:
    let
      lastSlash = builtins.match "(.*/)?([^/]*)" n;
      segment = builtins.elemAt lastSlash 1;
      tagged = builtins.match "(.*):([^:]*)" segment;
      tag = builtins.elemAt tagged 1;
      name = if tagged == null then n else "${toString (builtins.head lastSlash)}${builtins.head tagged}";
      split = builtins.match "([^/]*)/(.*)" name;
      first = builtins.head split;
      hasRegistry = split != null && (builtins.match ".*[.:].*" first != null || first == "localhost");
      registry = if hasRegistry then first else "docker.io";
      path = if hasRegistry then builtins.elemAt split 1 else name;
      repository = if !hasRegistry && split == null then "library/${path}" else path;
      bracketed = builtins.match "(\\[[^]]*])(:(.*))?" registry;
      plain = builtins.match "(.*):([^:]*)" registry;
      hostPort =
        if builtins.substring 0 1 registry == "[" then
          (if bracketed == null then null else { host = builtins.head bracketed; port = builtins.elemAt bracketed 2; })
        else if plain == null then
          { host = registry; port = null; }
        else
          { host = builtins.head plain; port = builtins.elemAt plain 1; };
      portOk =
        p:
        let
          digits = builtins.match "0*([0-9]+)" p;
        in
        p == null || (digits != null && builtins.stringLength (builtins.head digits) <= 5 && builtins.fromJSON (builtins.head digits) <= 65535);
      hostOk = h: builtins.match "\\[.*]|[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*" h != null;
      componentOk = c: builtins.match "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*" c != null;
    in
    if builtins.match ".*@.*" n != null then
      "is a digest reference: a loaded image is named NAME[:TAG]; a digest (@sha256:...) cannot name it"
    else if tagged != null && builtins.match "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}" tag == null then
      "has an invalid tag ${builtins.toJSON tag} (1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
    else if hostPort == null || !(hostOk hostPort.host) || !(portOk hostPort.port) then
      "has an invalid registry ${builtins.toJSON registry} (a host name, then an optional :port)"
    else if builtins.stringLength repository > 255 || !(builtins.all componentOk (builtins.filter builtins.isString (builtins.split "/" repository))) then
      "has an invalid repository ${builtins.toJSON repository} (lower-case letters and digits, separated by . _ __ or -, joined by /; at most 255 characters)"
    else
      null;

  /** An image name as `ociImageArchive` takes it: `NAME[:TAG]`. */
  checkImageName =
    what: v:
    let
      problem = imageNameProblem (checkString what v);
    in
    if problem == null then
      v
    else
      throw "${what} ${builtins.toJSON v} ${problem}; write NAME[:TAG], e.g. \"myapp:dev\" or \"registry.example.org/team/app:1.0\"";

  /** A working directory: absolute, or empty (unset, as Docker writes it). */
  isWorkingDir = v: builtins.isString v && (v == "" || builtins.substring 0 1 v == "/");

  /**
    The OCI names of architectures that Nix (and uname) spell otherwise;
    src/oci/descriptor.rs `oci_architecture` has the same list.
  */
  nixArchitectures = {
    x86_64 = "amd64";
    "x86-64" = "amd64";
    aarch64 = "arm64";
    armv8 = "arm64";
    i686 = "386";
    i386 = "386";
    i586 = "386";
    x86 = "386";
    armv7l = "arm";
    armv7 = "arm";
    armv6l = "arm";
    armv6 = "arm";
    armhf = "arm";
    powerpc64le = "ppc64le";
    ppc64el = "ppc64le";
    powerpc64 = "ppc64";
    mips64el = "mips64le";
  };

  /**
    An architecture as OCI names it: a Nix spelling (`x86_64`) is refused
    with the OCI name (`amd64`), not mapped (a decision: the config says
    what was written, and registries and runtimes look for the OCI name).
  */
  checkArchitecture =
    what: v:
    let
      a = checkPlatformName what v;
    in
    if nixArchitectures ? ${a} then
      throw "${what} ${builtins.toJSON a} is the Nix (uname) name; OCI images and registries call it ${builtins.toJSON nixArchitectures.${a}}: write architecture = ${builtins.toJSON nixArchitectures.${a}} (or leave it unset: it comes from the package set's host platform)"
    else
      a;

  /** A platform name (architecture, os, variant): like amd64, linux, v8. */
  checkPlatformName = what: expect what "a platform name like amd64, arm64, linux or v8 ([A-Za-z0-9._-])" (
    v: builtins.isString v && builtins.match "[A-Za-z0-9._-]+" v != null
  );

  /**
    Whether a string is an RFC 3339 time as the tool (and Go's time.Time,
    which skopeo, umoci and podman use) reads it: 2024-01-31T12:00:00Z
    style, an upper-case `T` and `Z`, an optional fraction, and no leap
    second (`:60`).
  */
  isRfc3339 =
    v:
    let
      m = builtins.match "([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.[0-9]+)?(Z|[+-]([0-9]{2}):([0-9]{2}))" v;
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
    && num 5 <= 59
    && (!offset || (num 8 <= 23 && num 9 <= 59));

  /** What a time must be, as messages say it. */
  rfc3339 = "an RFC 3339 time like \"2024-01-31T12:00:00Z\" (upper-case T and Z, seconds 00-59)";

  # "now": the build's time, as dockerTools takes it (impure: see docs/nix.md).
  checkCreated = what: checkNullOr (w: expect w "${rfc3339}, or \"now\"" (v: v == "now" || isRfc3339 v)) what;

  /**
    The OCI `config` object, with the fields nixoci knows and their types;
    any other field goes in `extraConfig`. Null means unset.
  */
  checkConfig =
    what: config:
    let
      fields = {
        User = checkString;
        WorkingDir = w: expect w "an absolute path (runtimes refuse a relative working directory)" isWorkingDir;
        StopSignal = checkString;
        Env = w: checkDoc w doc.env;
        Entrypoint = checkStringList;
        Cmd = checkStringList;
        Labels = checkStringAttrs;
        ExposedPorts = setOrList "\"8080/tcp\"";
        Volumes = setOrList "\"/data\"";
      };
      # A list of strings (each checked, so that a message names the entry)
      # or an attribute set.
      setOrList =
        example: w: v:
        if builtins.isList v then
          builtins.genList (i: expect "${w}[${toString i}]" "a string like ${example}" builtins.isString (builtins.elemAt v i)) (builtins.length v)
        else
          expect w "a list of strings or an attribute set" isPlainAttrs v;
      known = builtins.attrNames fields;
      c = checkAttrset what config;
      unknown = builtins.filter (n: !(fields ? ${n})) (builtins.attrNames c);
      first = builtins.head unknown;
      close = nearest first (map (k: { key = k; name = k; }) known);
    in
    if unknown != [ ] then
      throw (
        "${what}: unknown field(s) ${builtins.concatStringsSep ", " unknown}; known: ${builtins.concatStringsSep ", " known}"
        + (
          if doc.containerConfigFields ? ${first} then
            "; ${first} is an OCI config field nixoci does not take here: write extraConfig.config.${attrName first}"
          else if close != null then
            "; did you mean config.${close.name}?"
          else
            " (another field of the OCI config object goes in extraConfig.config, e.g. extraConfig.config.Healthcheck)"
        )
      )
    else
      builtins.mapAttrs (n: v: checkNullOr fields.${n} "${what}.${n}" v) c;

  # Checks of the documents `extra*` attrsets are merged into, as the tool
  # makes them after the merge (validate_config, validate_manifest and
  # validate_index in src/image.rs). Each takes what the value is ("function:
  # attribute.path") and the value, and gives true or throws. The fields
  # nixoci writes are valid, and attribute sets merge key by key, so checking
  # the fields an `extra*` attrset sets is checking the merged document.
  doc = rec {
    leaf = expected: ok: what: v: if ok v then true else throw "${what} must be ${expected}, not ${describe v}";
    string = leaf "a string" builtins.isString;
    bool = leaf "true or false" builtins.isBool;
    # A whole number as Nix writes it to JSON (30, or a float such as 30.0,
    # which it writes as 30): what the tool reads as an integer.
    integer = leaf "an integer (nanoseconds for the Healthcheck times)" (
      v: builtins.isInt v || (builtins.isFloat v && builtins.match "-?[0-9]+" (builtins.toJSON v) != null)
    );
    size = leaf "a whole number of bytes" (
      v: (builtins.isInt v && v >= 0) || (builtins.isFloat v && builtins.match "[0-9]+" (builtins.toJSON v) != null)
    );
    time = leaf rfc3339 isRfc3339;
    object = leaf "an attribute set" isPlainAttrs;
    listOf =
      expected: check: what: v:
      leaf expected builtins.isList what v
      && builtins.all (i: check "${what}[${toString i}]" (builtins.elemAt v i)) (builtins.genList (i: i) (builtins.length v));
    attrsOf =
      expected: check: what: v:
      leaf expected isPlainAttrs what v && builtins.all (n: check "${what}.${attrName n}" v.${n}) (builtins.attrNames v);
    strings = listOf "a list of strings" string;
    stringMap = attrsOf "an attribute set of strings" string;
    # ExposedPorts, Volumes: sets written as { "80/tcp" = { }; }.
    objectMap = attrsOf "an attribute set like { \"80/tcp\" = { }; }" (leaf "{ }" isPlainAttrs);
    env = listOf "a list of strings" (
      what: v:
      string what v
      && leaf "NAME=VALUE with a name" (
        v:
        let
          parts = builtins.split "=" v;
        in
        builtins.length parts > 1 && builtins.head parts != ""
      ) what v
    );
    digest = leaf "a digest like \"sha256:<64 hex digits>\"" (
      v:
      let
        m = builtins.match "([a-z0-9]+([+._-][a-z0-9]+)*):(.*)" v;
        alg = builtins.head m;
        enc = builtins.elemAt m 2;
      in
      builtins.isString v
      && m != null
      && (
        if alg == "sha256" then
          builtins.match "[0-9a-f]{64}" enc != null
        else if alg == "sha512" then
          builtins.match "[0-9a-f]{128}" enc != null
        else
          builtins.match "[A-Za-z0-9=_-]+" enc != null
      )
    );
    # A field the OCI or Docker documents define, taken as it is.
    any = what: v: true;
    /**
      An attribute set whose fields in `spec` are checked; null counts as
      unset, except for the `required` fields, which must be set. Any
      other name is refused with the nearest known one (of `spec`, or of
      `elsewhere`: `{ Healthcheck = "config.Healthcheck"; }` for fields
      that belong in a nested object), unless it is an extension named in
      reverse-domain notation (`isExtension`).
    */
    fieldsOr =
      elsewhere: required: spec: what: v:
      let
        missing = builtins.filter (n: (v.${n} or null) == null) required;
        set = builtins.filter (n: spec ? ${n} && v.${n} != null) (builtins.attrNames v);
        unknown = builtins.filter (n: !(spec ? ${n}) && !(isExtension n)) (builtins.attrNames v);
      in
      object what v
      && (if missing == [ ] then true else throw "${what}.${attrName (builtins.head missing)} must be set (not null)")
      && (if unknown == [ ] then true else throw (unknownField what (builtins.head unknown) spec elsewhere))
      && builtins.all (n: spec.${n} "${what}.${attrName n}" v.${n}) set;
    fields = fieldsOr { };
    platform = fields [ "architecture" "os" ] {
      architecture = string;
      os = string;
      "os.version" = string;
      "os.features" = strings;
      variant = string;
      features = strings;
    };
    descriptor = fields [ "mediaType" "digest" "size" ] {
      mediaType = string;
      inherit digest size;
      urls = strings;
      annotations = stringMap;
      data = string;
      artifactType = string;
      inherit platform;
    };
    # The container settings; Env also as `config.Env` is checked.
    containerConfig = fields [ ] containerConfigFields;
    containerConfigFields = {
      User = string;
      WorkingDir = leaf "an absolute path (runtimes refuse a relative working directory)" isWorkingDir;
      StopSignal = string;
      Entrypoint = strings;
      Cmd = strings;
      Shell = strings;
      OnBuild = strings;
      Env = env;
      ExposedPorts = objectMap;
      Volumes = objectMap;
      Labels = stringMap;
      ArgsEscaped = bool;
      Memory = integer;
      MemorySwap = integer;
      CpuShares = integer;
      Healthcheck = fields [ ] {
        Test = strings;
        Interval = integer;
        Timeout = integer;
        StartPeriod = integer;
        StartInterval = integer;
        Retries = integer;
      };
    } // dockerContainerFields;
    # Fields of Docker's container config (moby's api/types/container
    # Config) that the OCI image spec does not define: taken as they are.
    dockerContainerFields = builtins.listToAttrs (
      map (n: { name = n; value = any; }) [
        "Hostname" "Domainname" "AttachStdin" "AttachStdout" "AttachStderr" "Tty" "OpenStdin"
        "StdinOnce" "Image" "NetworkDisabled" "MacAddress" "StopTimeout"
      ]
    );
    # An image config's fields, as `extraConfig` may set them: architecture
    # and os may be replaced, not unset.
    extraConfig =
      what: v:
      fieldsOr (builtins.mapAttrs (n: _: "config.${n}") containerConfigFields) [ ] {
        architecture = what: v: string what v && builtins.seq (checkArchitecture what v) true;
        os = string;
        created = time;
        author = string;
        variant = string;
        "os.version" = string;
        "os.features" = strings;
        config = containerConfig;
        history = listOf "a list of history entries" (fields [ ] {
          created = time;
          author = string;
          created_by = string;
          comment = string;
          empty_layer = bool;
        });
        # Docker's image config (moby's image/spec) beyond the OCI fields.
        id = any;
        parent = any;
        comment = any;
        container = any;
        container_config = any;
        docker_version = any;
        size = any;
      } what v
      && builtins.all (n: (v.${n} or "") != null || throw "${what}.${n} may not be null: an image config needs one") [ "architecture" "os" ];
    # An image manifest's or index's fields, as `extraManifest` or
    # `extraIndex` may set them.
    extraManifest = fields [ ] {
      artifactType = string;
      subject = descriptor;
      annotations = stringMap;
    };
  };

  /**
    Whether a field name is an extension of a document rather than a field
    its spec defines: reverse-domain notation, three or more lower-case
    components joined by dots (`com.example.field`,
    `moby.buildkit.buildinfo.v1`), as OCI's annotation rules name keys.
    `os.version` has two: a misspelt field is never taken for one.
  */
  isExtension = n: builtins.match "[a-z0-9-]+(\\.[a-z0-9_-]+){2,}" n != null;

  /** A string in lower case (ASCII). */
  toLower = builtins.replaceStrings (stringChars "ABCDEFGHIJKLMNOPQRSTUVWXYZ") (stringChars "abcdefghijklmnopqrstuvwxyz");
  stringChars = s: builtins.genList (i: builtins.substring i 1 s) (builtins.stringLength s);

  /** The edit distance of two strings, letter case ignored. */
  editDistance =
    a: b:
    let
      ca = stringChars (toLower a);
      cb = stringChars (toLower b);
      n = builtins.length cb;
      row =
        prev: i: x:
        builtins.foldl' (
          r: j:
          let
            best = m: k: if m < k then m else k;
            cost = if x == builtins.elemAt cb j then 0 else 1;
          in
          r ++ [ (best (best (builtins.elemAt prev (j + 1) + 1) (builtins.elemAt r j + 1)) (builtins.elemAt prev j + cost)) ]
        ) [ (i + 1) ] (builtins.genList (j: j) n);
      last = builtins.foldl' (acc: x: { prev = row acc.prev acc.i x; i = acc.i + 1; }) {
        prev = builtins.genList (j: j) (n + 1);
        i = 0;
      } ca;
    in
    builtins.elemAt last.prev n;

  /**
    The candidate (`{ key; name; }`) whose key is nearest to `n`, when one
    is close enough to be a misspelling of it; else null.
  */
  nearest =
    n: candidates:
    let
      scored = map (c: c // { d = editDistance n c.key; }) candidates;
      best = builtins.foldl' (b: c: if b == null || c.d < b.d then c else b) null scored;
      len = builtins.stringLength n;
    in
    if best != null && best.d <= (if len < 6 then 1 else if len < 12 then 2 else 3) then best else null;

  /**
    The message for an unknown field `n` of the object at `what`
    ("function: attribute.path"): the nearest of the fields `spec` defines,
    or of `elsewhere` (name -> where it belongs), when one is close.
  */
  unknownField =
    what: n: spec: elsewhere:
    let
      path = let m = builtins.match "[^:]*: (.*)" what; in if m == null then what else builtins.head m;
      best = nearest n (
        map (k: { key = k; name = "${path}.${attrName k}"; }) (builtins.attrNames spec)
        ++ map (k: { key = k; name = "${path}.${elsewhere.${k}}"; }) (builtins.attrNames elsewhere)
      );
    in
    "${what}.${attrName n} is not a field the OCI image spec or Docker defines there"
    + (if best != null then "; did you mean ${best.name}?" else "; its fields: ${builtins.concatStringsSep ", " (builtins.attrNames spec)}")
    + " (a deliberate extension is named in reverse-domain notation, like \"com.example.field\")";

  /** `value` once `check` (one of `doc`'s) has passed for it. */
  checkDoc = what: check: value: builtins.seq (check what value) value;

  /** An `extra*` attrset, which may not set the fields nixoci writes. */
  checkExtra =
    what: reserved: value:
    let
      v = checkAttrset what value;
      bad = builtins.filter (n: builtins.elem n reserved) (builtins.attrNames v);
    in
    if bad == [ ] then v else throw "${what} may not set ${builtins.concatStringsSep ", " bad}: nixoci writes them";

  /**
    Why the tool would refuse `path` as a place in the image (null when it
    takes it): what `parse_destination` (src/spec.rs) refuses, and a
    component named like an OCI whiteout (`.wh.NAME`, src/tree.rs), which
    would delete a lower layer's file instead of adding this one.
  */
  pathProblem =
    path:
    let
      rest = builtins.substring 1 (-1) path;
      body = if endsWithSlash rest then builtins.substring 0 (builtins.stringLength rest - 1) rest else rest;
      comps = builtins.filter builtins.isString (builtins.split "/" body);
      first = cond: builtins.any cond comps;
    in
    if builtins.substring 0 1 path != "/" then
      "must be an absolute path (start with /)"
    else if rest == "" then
      null
    else if first (c: c == "") then
      "has an empty component (//); write the normalised path"
    else if first (c: c == "." || c == "..") then
      "has a '.' or '..' component; write the normalised path"
    else if first (c: builtins.stringLength c > 255) then
      "has a component longer than 255 bytes, the limit of Linux file systems"
    else if first (c: builtins.substring 0 4 c == ".wh.") then
      "has a component named like an OCI whiteout (.wh.NAME), which would delete a lower layer's file; rename it"
    else
      null;

  /** `path` if the tool takes it as a place in the image, else a throw. */
  checkPath =
    what: path:
    let
      problem = pathProblem path;
    in
    if problem == null then path else throw "${what} ${builtins.toJSON path} ${problem}";

  /**
    A source: a Nix path, a derivation, or a string that is an absolute
    path (a store path such as "${pkg}/bin/x"); returned as it is.
  */
  checkSource =
    what: src:
    if builtins.isPath src || (builtins.isAttrs src && src ? outPath) then
      src
    else if builtins.isString src then
      if builtins.substring 0 1 src == "/" then
        src
      else
        throw "${what} ${builtins.toJSON src} must be an absolute path: a Nix path (./file), a derivation, or a store path string such as \"\${pkg}/bin/x\""
    else
      throw "${what} must be a path, a string or a derivation, not ${describe src}";

  /**
    A derivation name as the Nix store takes it: 1 to 211 of
    A-Z a-z 0-9 + - . _ ? =, not starting with a dot.
  */
  checkName =
    what: v:
    let
      ok = builtins.isString v && builtins.match "[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]{0,210}" v != null;
      # A registry reference (ghcr.io/org/app, app:1.0) given as a name.
      parts = builtins.match "(.*/)?([^/:@]*)([:@].*)?" v;
      short = if parts == null then "" else builtins.elemAt parts 1;
    in
    if ok then
      v
    else if builtins.isString v && builtins.match ".*[/:@].*" v != null then
      throw (
        "${what} must be a derivation name: 1 to 211 of A-Z a-z 0-9 + - . _ ? =, not starting with ., not ${describe v}; "
        + "it names the derivation and the layout, not where the image goes: write name = ${builtins.toJSON (if short == "" then "app" else short)} "
        + "and give the reference when pushing (nixoci push result ${v}), or as imageName of ociImageArchive"
      )
    else
      throw "${what} must be a derivation name: 1 to 211 of A-Z a-z 0-9 + - . _ ? =, not starting with ., not ${describe v}";

  # `label`: how the tool's messages name the entry (set by ociImage, whose
  # layer lists contents and files together).
  fileAttrs = [ "source" "text" "destination" "mode" "uid" "gid" "link" "label" ];

  endsWithSlash = s: builtins.match ".*/" s != null;
  /** A path without its trailing slashes. */
  stripSlashes = s: let m = builtins.match "(.*[^/])/*" s; in if m == null then "" else builtins.head m;

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
        if builtins.isAttrs f && !(f ? outPath) then
          f
        else
          throw "${what}: expected { source, destination?, mode?, uid?, gid?, link? } or { text, destination, mode?, uid?, gid? }, not ${describe f}"
      );
    in
    if checked ? text then normaliseText what checked else normaliseSource what checked;

  # A `files` entry with `source`.
  normaliseSource =
    what: checked:
    let
      dest = checked.destination or null;
      src = checked.source;
      mainProgram = src.meta.mainProgram or null;
      pkgName = src.pname or src.name or "pkg";
      # The output given (drv.dev), so that a hint names it.
      selected = if (src.outputName or "out") == "out" then pkgName else "${pkgName}.${src.outputName}";
      source =
        if !(checked ? source) then
          throw "${what}: source (or text, for an inline file) is required"
        else if dest == null || endsWithSlash dest || !(isPackage src) then
          "${checkSource "${what}.source" src}"
        else if mainProgram != null then
          "${src}/bin/${mainProgram}"
        else
          throw (
            "${what}: the package ${selected} has no meta.mainProgram, so destination ${builtins.toJSON dest} "
            + "(which does not end in /) cannot name its program. Write destination = \"${dest}/\" to copy "
            + "the package's contents there, or source = \"\${${selected}}/bin/NAME\" (NAME: the file's "
            + "path in the package) for one of its files (or source = \"\${${selected}}\" when the "
            + "package's output is itself that file)"
          );
    in
    dropNulls {
      source =
        # Without a destination, the source's own path is its place.
        if dest == null then builtins.seq (checkPath "${what}: source" (stripSlashes source)) source else source;
      destination =
        if dest == null then
          dest
        else if builtins.isString dest then
          checkPath "${what}: destination" dest
        else
          throw "${what}: destination must be a string, an absolute path, not ${describe dest}";
      mode = checkNullOr checkMode "${what}.mode" (checked.mode or null);
      uid = checkNullOr checkId "${what}.uid" (checked.uid or null);
      gid = checkNullOr checkId "${what}.gid" (checked.gid or null);
      label = checkNullOr checkString "${what}.label" (checked.label or null);
      # Only when set: a spec without it is the spec it always was.
      link =
        let
          l = checkBool "${what}.link" (checked.link or false);
        in
        if !l then
          null
        else if dest == null then
          throw "${what}: link needs a destination (without one, the store path is at its own path already)"
        else
          true;
    };

  # A `files` entry with `text`: an inline file, at its full path.
  normaliseText =
    what: checked:
    let
      dest = checked.destination or null;
    in
    if checked ? source then
      throw "${what}: give source or text, not both"
    else if (checked.link or false) != false then
      throw "${what}: link goes with a source in the store, not with text"
    else
      dropNulls {
        text = checkString "${what}.text" checked.text;
        destination =
          if dest == null then
            throw "${what}: text needs a destination (the file's full path in the image)"
          else
            checkEntryPath "${what}: destination" dest;
        mode = checkNullOr checkMode "${what}.mode" (checked.mode or null);
        uid = checkNullOr checkId "${what}.uid" (checked.uid or null);
        gid = checkNullOr checkId "${what}.gid" (checked.gid or null);
        label = checkNullOr checkString "${what}.label" (checked.label or null);
      };

  /** The checked `files` list of function `fn` (as `ociLayerTar` takes it). */
  normaliseFiles =
    fn: files:
    let
      list = checkList "${fn}: files" files;
    in
    builtins.genList (i: normaliseFile fn i (builtins.elemAt list i)) (builtins.length list);

  /**
    A path in the image that a declared entry (a directory, a link, an
    inline file) is made at: `checkPath`'s rules, and neither `/` nor
    ending in `/`.
  */
  checkEntryPath =
    what: v:
    if !builtins.isString v then
      throw "${what} must be a string, an absolute path in the image, not ${describe v}"
    else if v == "/" || endsWithSlash v then
      throw "${what} ${builtins.toJSON v} must name an entry: not / and not ending in /"
    else
      checkPath what v;

  /**
    A list of attribute sets (`what`: "function: attribute"), each with
    only the names in `allowed` and all of `required`, checked by `check
    at entry` (`at`: "function: attribute[i]"); null fields dropped.
    `shape` is what an entry looks like, for messages.
  */
  checkEntries =
    what: shape: required: allowed: check: v:
    let
      l = expect what "a list of ${shape}" builtins.isList v;
    in
    builtins.genList (
      i:
      let
        at = "${what}[${toString i}]";
        e = builtins.elemAt l i;
        a = checkAttrs at allowed (if isPlainAttrs e then e else throw "${at} must be ${shape}, not ${describe e}");
        missing = builtins.filter (n: !(a ? ${n})) required;
      in
      if missing != [ ] then
        throw "${at}: ${builtins.head missing} is required (${shape})"
      else
        dropNulls (check at a)
    ) (builtins.length l);

  /**
    A user or group name as the tool (and shadow's `useradd`) takes it:
    `[a-z_][a-z0-9_-]*[$]?`, 1 to 32 bytes.
  */
  checkAccountName = what: expect what "a name of 1 to 32 of a-z, 0-9, _ and -, not starting with a digit or -, optionally ending with $" (
    v: builtins.isString v && builtins.stringLength v <= 32 && builtins.match "[a-z_][a-z0-9_-]*[$]?" v != null
  );

  /** A user or group id of `/etc/passwd`: 0 to 4294967294 (4294967295 is "no id"). */
  checkAccountId = what: expect what "an integer from 0 to 4294967294" (v: builtins.isInt v && v >= 0 && v <= 4294967294);

  # A home or a shell: an absolute path that fits in a line of /etc/passwd.
  checkAccountPath =
    what: v:
    if !builtins.isString v then
      throw "${what} must be a string, an absolute path, not ${describe v}"
    else if builtins.match "[^:\n]*" v == null then
      throw "${what} ${builtins.toJSON v} holds a ':' or a newline, which end fields and lines of /etc/passwd"
    else if builtins.substring 0 1 v != "/" then
      throw "${what} ${builtins.toJSON v} must be an absolute path (start with /)"
    else
      v;

  /** The `users` of function `fn`, checked (see `ociLayerTar`). */
  checkUsers =
    fn:
    checkEntries "${fn}: users" "{ name, uid, gid?, group?, home?, shell?, groups?, createHome? }" [ "name" "uid" ] [
      "name"
      "uid"
      "gid"
      "group"
      "home"
      "shell"
      "groups"
      "createHome"
    ] (
      at: u: {
        name = checkAccountName "${at}.name" u.name;
        uid = checkAccountId "${at}.uid" u.uid;
        gid = checkNullOr checkAccountId "${at}.gid" (u.gid or null);
        group = checkNullOr checkAccountName "${at}.group" (u.group or null);
        home =
          let
            h = checkNullOr checkAccountPath "${at}.home" (u.home or null);
          in
          if h != null && builtins.any (c: c == "." || c == "..") (builtins.filter builtins.isString (builtins.split "/" h)) then
            throw "${at}.home ${builtins.toJSON h} has a '.' or '..' component; write the normalised path"
          else
            h;
        shell = checkNullOr checkAccountPath "${at}.shell" (u.shell or null);
        groups = if u ? groups then checkAccountNames "${at}.groups" "a list of group names" u.groups else null;
        createHome = checkNullOr checkBool "${at}.createHome" (u.createHome or null);
      }
    );

  # A list of account names at `at` (`what` says which), each checked.
  checkAccountNames =
    at: what: v:
    let
      l = expect at what builtins.isList v;
    in
    builtins.genList (j: checkAccountName "${at}[${toString j}]" (builtins.elemAt l j)) (builtins.length l);

  /** The `groups` of function `fn`, checked. */
  checkGroups =
    fn:
    checkEntries "${fn}: groups" "{ name, gid, members? }" [ "name" "gid" ] [ "name" "gid" "members" ] (
      at: g: {
        name = checkAccountName "${at}.name" g.name;
        gid = checkAccountId "${at}.gid" g.gid;
        members = if g ? members then checkAccountNames "${at}.members" "a list of user names" g.members else null;
      }
    );

  # The mode and owner fields of a declared entry, checked.
  modeOwner = at: e: {
    mode = checkNullOr checkMode "${at}.mode" (e.mode or null);
    uid = checkNullOr checkId "${at}.uid" (e.uid or null);
    gid = checkNullOr checkId "${at}.gid" (e.gid or null);
  };

  /** The `directories` of function `fn`, checked. */
  checkDirectories =
    fn:
    checkEntries "${fn}: directories" "{ path, mode?, uid?, gid? }" [ "path" ] [ "path" "mode" "uid" "gid" ] (
      at: d: { path = checkEntryPath "${at}.path" d.path; } // modeOwner at d
    );

  /**
    The `symlinks` of function `fn`, checked; a target keeps its string
    context (`"${coreutils}/bin/env"`), which brings its store path.
  */
  checkSymlinks =
    fn:
    checkEntries "${fn}: symlinks" "{ path, target }" [ "path" "target" ] [ "path" "target" ] (
      at: l: {
        path = checkEntryPath "${at}.path" l.path;
        target =
          if !builtins.isString l.target then
            throw "${at}.target must be a string (what the link points to), not ${describe l.target}"
          else if l.target == "" then
            throw "${at}.target is empty: give what the link points to"
          else
            l.target;
      }
    );

  /**
    `nixUid` or `nixGid` of function `fn`: null, or an id that goes with
    `nixDatabase = true`.
  */
  checkNixId =
    fn: attr: nixDatabase: v:
    if v == null then
      v
    else if !nixDatabase then
      throw "${fn}: ${attr} is given without nixDatabase = true: it owns /nix for the Nix database"
    else
      checkId "${fn}: ${attr}" v;

  /**
    The store paths that the entries of a layer bring into it besides
    their sources: each symbolic link target in the store, and each store
    path an inline text names, when the string carries them as context
    (`"${coreutils}/bin/env"`). Each keeps its context, so that the layer
    can export its closure.
  */
  entryRoots =
    { files, symlinks }:
    let
      linkRoots = builtins.filter (r: r != null) (
        map (l: if builtins.hasContext l.target then storeRoot l.target else null) symlinks
      );
      textRoots = builtins.concatMap (
        f:
        if f ? text && builtins.hasContext f.text then
          map (m: "${builtins.head m}${builtins.substring 0 0 f.text}") (
            builtins.filter builtins.isList (
              builtins.split "(${builtins.storeDir}/[0-9a-z]{32}-[-+._?=0-9A-Za-z]+)" (builtins.unsafeDiscardStringContext f.text)
            )
          )
        else
          [ ]
      ) files;
    in
    linkRoots ++ textRoots;

  /** A list without its repeated elements, in the order of their first place. */
  unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];

  /** The store paths the sources of checked `files` lie in (inline texts have none). */
  sourceRoots = files: builtins.filter (r: r != null) (map (f: if f ? source then storeRoot f.source else null) files);

  /**
    The image config settings (`architecture`, `os`, `variant`, `created`,
    `author`, `config`, `extraConfig`; unset: null), checked in the name of
    function `fn`, and returned once every check has passed.
  */
  checkConfigArgs =
    fn: a:
    let
      c = {
        architecture = checkNullOr checkArchitecture "${fn}: architecture" (a.architecture or null);
        os = checkNullOr checkPlatformName "${fn}: os" (a.os or null);
        variant = checkNullOr checkPlatformName "${fn}: variant" (a.variant or null);
        created = checkCreated "${fn}: created" (a.created or null);
        author = checkNullOr checkString "${fn}: author" (a.author or null);
        config = checkConfig "${fn}: config" (a.config or { });
      };
      extraConfig = checkDoc "${fn}: extraConfig" doc.extraConfig (
        checkExtra "${fn}: extraConfig" [ "rootfs" ] (a.extraConfig or { })
      );
    in
    builtins.deepSeq c (builtins.seq extraConfig (c // { inherit extraConfig; }));

  /** The store paths of a list of `ociLayerTar` results given to `fn`. */
  checkLayers =
    what: layers:
    map (
      l:
      if builtins.elem (l.command or null) [ "layer" "layers" ] then
        "${l}"
      else
        throw "${what} must list ociLayerTar results (or ociLayers results), not ${describe l}"
    ) (checkList what layers);

  /**
    The `fromImage` of a spec: null, or `{ path; name?; tag?; symlinks; }`
    for a base image given as an `ociPullImage` or `ociImageLayout` (or
    `ociImage`) result, a layout directory, or an image archive (a path, or
    a derivation whose output is one, such as dockerTools' `buildImage`).
    A layer, config or manifest step is refused.
  */
  checkFromImage =
    fn: fromImage: fromImageTag: baseSymlinks:
    let
      step = if builtins.isAttrs fromImage then fromImage.command or null else null;
      symlinks = checkOneOf "${fn}: baseSymlinks" [ "error" "follow" ] baseSymlinks;
    in
    if fromImage == null then
      (if fromImageTag != null then throw "${fn}: fromImageTag is given without fromImage" else null)
    else if builtins.elem step [ "layer" "layers" "config" "manifest" ] then
      throw "${fn}: fromImage must be an image (an ociPullImage, ociImageLayout or ociImage result, a layout directory or an image archive), not the ${step} step"
    else if builtins.isString fromImage && builtins.substring 0 1 fromImage != "/" then
      throw "${fn}: fromImage ${builtins.toJSON fromImage} is not a path: an image from a registry is pinned first, with ociPullImage { imageName; imageDigest; hash; } (`nixoci prefetch ${fromImage}` prints them), and its result given as fromImage"
    else if !(builtins.isPath fromImage || builtins.isString fromImage || (builtins.isAttrs fromImage && fromImage ? outPath)) then
      throw "${fn}: fromImage must be an image (an ociPullImage, ociImageLayout or ociImage result, a layout directory or an image archive), not ${describe fromImage}"
    else
      dropNulls {
        path = "${checkSource "${fn}: fromImage" fromImage}";
        # An ociPullImage result's registry reference (a layout made here
        # names its image by tag only).
        name = if builtins.isAttrs fromImage && step != "layout" then fromImage.imageName or null else null;
        tag = checkNullOr checkTag "${fn}: fromImageTag" fromImageTag;
        inherit symlinks;
      };

  /**
    The provenance annotations of an image: `source` (a URL), `revision`,
    `version`, and from a flake's `self` its revision (`rev`, or
    `dirtyRev` for a tree with uncommitted changes) and its time
    (`lastModifiedDate`, never the wall clock) as
    `org.opencontainers.image.revision` and `.created`. What is given
    explicitly wins over what `self` says.
  */
  provenance =
    fn:
    {
      source ? null,
      revision ? null,
      version ? null,
      self ? null,
    }:
    let
      str = what: v: if v == null || builtins.isString v then v else throw "${fn}: ${what} must be a string, not ${describe v}";
      fromSelf =
        if self == null then
          { }
        else if !builtins.isAttrs self then
          throw "${fn}: self must be the flake's self (an attribute set), not ${describe self}"
        else
          {
            revision = self.rev or self.dirtyRev or null;
            created =
              let
                d = self.lastModifiedDate or null;
                at = i: n: builtins.substring i n d;
              in
              if d == null then
                null
              else if builtins.match "[0-9]{14}" d == null then
                throw "${fn}: self.lastModifiedDate ${builtins.toJSON d} is not YYYYMMDDHHMMSS"
              else
                "${at 0 4}-${at 4 2}-${at 6 2}T${at 8 2}:${at 10 2}:${at 12 2}Z";
          };
      rev = if revision != null then str "revision" revision else fromSelf.revision or null;
    in
    dropNulls {
      "org.opencontainers.image.source" = str "source" source;
      "org.opencontainers.image.revision" = rev;
      "org.opencontainers.image.version" = str "version" version;
      "org.opencontainers.image.created" = fromSelf.created or null;
    };

  /** The `remove` list of a layer: absolute paths, not the root. */
  checkRemove =
    what: remove:
    builtins.genList (
      i:
      let
        r = builtins.elemAt remove i;
        at = "${what}[${toString i}]";
      in
      if !builtins.isString r then
        throw "${at} must be a string (an absolute path in the image), not ${describe r}"
      else if builtins.substring 0 1 r != "/" || builtins.match "/+" r != null then
        throw "${at} ${builtins.toJSON r} must be an absolute path in the image other than /"
      else
        r
    ) (builtins.length (checkList what remove));

  /** `checkLayers`, for the layers of an image: at least one. */
  checkImageLayers =
    what: layers:
    let
      l = checkLayers what layers;
    in
    if l == [ ] then throw "${what} is empty: an image needs at least one layer (an ociLayerTar result)" else l;

  /**
    The platform (as the tool writes it in an index) of an image config
    made from the checked settings `args` (of `checkConfigArgs`): its own
    fields, replaced by those `extraConfig` sets. Null when it is only
    known at build time (architecture or os left to the tool's default).
  */
  platformOfConfig =
    args:
    let
      extra = args.extraConfig;
      pick = n: if extra ? ${n} then extra.${n} else args.${n} or null;
      p = dropNulls {
        architecture = pick "architecture";
        os = pick "os";
        variant = pick "variant";
        "os.version" = extra."os.version" or null;
        "os.features" = extra."os.features" or null;
      };
    in
    if p ? architecture && p ? os then p else null;

  /** The name of a platform's manifest under a tag: TAG-OS-ARCH[-VARIANT] (src/tags.rs). */
  platformTag = tag: p: "${tag}-${p.os}-${p.architecture}${if p ? variant then "-${p.variant}" else ""}";

  /**
    The SBOM formats of an `sbom` argument of function `fn`: `false` (none),
    `true` (SPDX), a format, or a list of formats.
  */
  checkSbom =
    fn: sbom:
    let
      formats = [ "spdx" "cyclonedx" ];
      one = f: if builtins.elem f formats then f else throw "${fn}: sbom: ${builtins.toJSON f} is not one of spdx, cyclonedx (or true, false)";
    in
    if sbom == false then
      [ ]
    else if sbom == true then
      [ "spdx" ]
    else if builtins.isString sbom then
      [ (one sbom) ]
    else if builtins.isList sbom then
      map one sbom
    else
      throw "${fn}: sbom must be true, false, a format or a list of formats, not ${describe sbom}";

  /** A list of tags given to `fn`, each checked. */
  checkTags =
    what: tags:
    let
      list = checkList what tags;
    in
    builtins.genList (i: checkTag "${what}[${toString i}]" (builtins.elemAt list i)) (builtins.length list);

  /**
    The checked `perms` rules of function `fn`, as the tool takes them:
    each `{ path; regex; mode?; uid?; gid?; }` with `path` an absolute
    path (a string, or a derivation for its store path), `regex` a string,
    `mode` an octal string, `uid` and `gid` ids, and at least one of the
    last three.
  */
  normalisePerms =
    fn: perms:
    let
      list = checkList "${fn}: perms" perms;
      one =
        i: r:
        let
          what = "${fn}: perms[${toString i}]";
          checked = checkAttrs what [ "path" "regex" "mode" "uid" "gid" ] (
            if isPlainAttrs r then r else throw "${what}: expected { path, regex, mode?, uid?, gid? }, not ${describe r}"
          );
          path =
            if !(checked ? path) then
              throw "${what}: path is required: the rule considers the entries at or under it (\"\${pkg}\")"
            else if builtins.isAttrs checked.path && checked.path ? outPath then
              "${checked.path}"
            else
              checkString "${what}.path" checked.path;
          rule = dropNulls {
            path = checkPath "${what}: path" path;
            regex =
              if !(checked ? regex) then
                throw "${what}: regex is required: it is matched against each entry's full path, anchored (\".*/var(/.*)?\")"
              else
                checkString "${what}.regex" checked.regex;
            mode = checkNullOr checkMode "${what}.mode" (checked.mode or null);
            uid = checkNullOr checkId "${what}.uid" (checked.uid or null);
            gid = checkNullOr checkId "${what}.gid" (checked.gid or null);
          };
        in
        if rule ? mode || rule ? uid || rule ? gid then rule else throw "${what} sets nothing: give mode, uid or gid";
    in
    builtins.genList (i: one i (builtins.elemAt list i)) (builtins.length list);
}
