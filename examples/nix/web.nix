# A two-layer web image: nginx in the bottom layer; bash, jq, an entrypoint
# script and a JSON config file in the top one (which leaves out whatever
# the bottom layer already holds). With the nixoci overlay applied to pkgs.
{ pkgs }:
let
  config = pkgs.writeText "config.json" (builtins.toJSON {
    listen = 8080;
    greeting = "hello";
  });
  entrypoint = pkgs.writeShellScript "entrypoint" ''
    echo "starting with $(jq -c . /etc/app/config.json)"
    exec nginx -g 'daemon off;'
  '';

  nginxLayer = pkgs.ociLayerTar {
    name = "nginx-layer";
    files = [ { source = pkgs.nginx; } ];
  };
  appLayer = pkgs.ociLayerTar {
    name = "app-layer";
    files = [
      { source = pkgs.bash; destination = "/bin/bash"; }
      { source = pkgs.jq; destination = "/bin/jq"; }
      { source = entrypoint; destination = "/entrypoint.sh"; }
      { source = config; destination = "/etc/app/config.json"; }
      # nginx on the PATH: a link into its store path, which nginxLayer holds.
      { source = "${pkgs.nginx}/bin/nginx"; destination = "/bin/nginx"; link = true; }
    ];
    base = [ nginxLayer ];
  };
in
pkgs.ociImageLayout {
  name = "web";
  tags = [ "latest" "1.0" ];
  manifests = [
    (pkgs.ociImageManifest {
      layers = [ nginxLayer appLayer ];
      config = {
        Entrypoint = [ "/bin/bash" "/entrypoint.sh" ];
        # No store path here: the config would reference nginx, and
        # `nix copy` of the image would carry it (docs/nix.md).
        Env = [ "PATH=/bin" ];
        ExposedPorts."8080/tcp" = { };
      };
      annotations."org.opencontainers.image.title" = "web";
    })
  ];
}
