# The stand-in's installShellFiles setup hook (busybox sh): the two
# functions of nixpkgs' hook, with its names, flags and destinations, so
# that nix/package.nix's postInstall runs here as it does in nixpkgs:
#
#   installManPage PAGE...   PAGE (NAME.N, or NAME.N.gz) into
#                            $out/share/man/manN/
#   installShellCompletion [--cmd NAME] ([--bash|--zsh|--fish] [--name FILE] PATH)...
#       bash: $out/share/bash-completion/completions/NAME.bash
#       zsh:  $out/share/zsh/site-functions/_NAME
#       fish: $out/share/fish/vendor_completions.d/NAME.fish
#
# PATH may be a named pipe (`<(cmd)`), which needs a shell flag and --cmd
# or --name. A file's shell is read from its name otherwise (.bash, .fish,
# .zsh, or _NAME for zsh). An empty result is an error. One output, $out,
# holds everything (nixoci's package has no man or bin output of its own);
# store paths given as PATH keep their name (the package gives none).

installManPage() {
  for page in "$@"; do
    name=${page##*/}
    section=${name%.gz}
    section=${section##*.}
    if [ -z "$page" ] || [ "$section" = "${name%.gz}" ] || [ -z "$section" ]; then
      echo "installManPage: $page: no section in its name (NAME.N or NAME.N.gz)" >&2
      return 1
    fi
    mkdir -p "$out/share/man/man$section" || return 1
    cp "$page" "$out/share/man/man$section/$name" || return 1
    chmod 644 "$out/share/man/man$section/$name" || return 1
  done
}

installShellCompletion() {
  shell='' name='' cmd='' flags=1 status=0
  while [ $# -gt 0 ]; do
    arg=$1
    shift
    if [ "$flags" = 1 ]; then
      case $arg in
        --bash | --fish | --zsh) shell=${arg#--}; continue ;;
        --name) name=$1; shift; continue ;;
        --name=*) name=${arg#--name=}; continue ;;
        --cmd) cmd=$1; shift; continue ;;
        --cmd=*) cmd=${arg#--cmd=}; continue ;;
        --) flags=0; continue ;;
        --?*)
          echo "installShellCompletion: ${arg%%=*}: no such flag" >&2
          status=2
          continue
          ;;
      esac
    fi
    this=$shell
    file=''
    if [ -z "$arg" ]; then
      echo "installShellCompletion: a path is empty" >&2
      return 1
    elif [ -p "$arg" ]; then
      if [ -z "$this" ]; then
        echo "installShellCompletion: $arg: a pipe needs --bash, --zsh or --fish before it" >&2
        return 1
      elif [ -z "$name$cmd" ]; then
        echo "installShellCompletion: $arg: a pipe needs --cmd or --name" >&2
        return 1
      fi
    else
      file=${arg##*/}
      if [ -z "$this" ]; then
        case $file in
          ?*.bash) this=bash ;;
          ?*.fish) this=fish ;;
          ?*.zsh) this=zsh ;;
          _*) this=zsh ;;
          *)
            echo "installShellCompletion: $arg: which shell is it for? (give --bash, --zsh or --fish)" >&2
            status=2
            continue
            ;;
        esac
      fi
    fi
    if [ -n "$name" ]; then
      file=$name
    elif [ -n "$cmd" ]; then
      case $this in
        zsh) file=_$cmd ;;
        *) file=$cmd.$this ;;
      esac
    elif [ "$this" = zsh ]; then
      file=${file%.zsh}
      file=_${file#_}
    fi
    case $this in
      bash) dir=$out/share/bash-completion/completions ;;
      fish) dir=$out/share/fish/vendor_completions.d ;;
      zsh) dir=$out/share/zsh/site-functions ;;
    esac
    mkdir -p "$dir" || return 1
    cat "$arg" >"$dir/$file" || return 1
    chmod 644 "$dir/$file" || return 1
    if [ ! -s "$dir/$file" ]; then
      echo "installShellCompletion: $dir/$file is empty" >&2
      return 1
    fi
    name=''
  done
  return $status
}
