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
        Env = [ "PATH=/bin:${pkgs.nginx}/bin" ];
        ExposedPorts."8080/tcp" = { };
      };
      annotations."org.opencontainers.image.title" = "web";
    })
  ];
}
