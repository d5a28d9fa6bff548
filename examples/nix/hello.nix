# The one-call form: a package merged at /, and a command.
{ pkgs }:
pkgs.ociImage {
  name = "hello";
  contents = [ pkgs.hello ];
  config.Cmd = [ "/bin/hello" ];
}
