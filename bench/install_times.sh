#!/usr/bin/env bash
# Install times and sizes of the lab (README, "Platforms"), each in a fresh virtual environment
# outside the checkout, with the pip cache as it is (say whether it was warm):
#   lab        pip install '.[lab]'                      (a student: make run / make lab)
#   dev        pip install '.[dev]'                      (a developer: make test)
#   beam-src   '.[lab]' with apache-beam compiled from source, as on macOS arm64, without the
#              build constraint (fails: pkg_resources) and with it (tools/build-constraints.txt)
# Usage: bench/install_times.sh [lab] [dev] [beam-src]   (default: all; PY=python3.11)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
work=$(mktemp -d /tmp/clicklab-install-XXXX)
trap 'rm -rf "$work"' EXIT
one() {  # name, pip arguments...
  local name=$1; shift
  "$PY" -m venv "$work/$name" && "$work/$name/bin/python" -m pip install -q --upgrade pip
  local t0=$SECONDS
  if (cd "$work" && "$work/$name/bin/python" -m pip install -q "$@" >"$work/$name.log" 2>&1); then
    local ok=ok
  else
    local ok="FAILED: $(grep -m1 "ModuleNotFoundError" "$work/$name.log" || grep -m1 "error:" "$work/$name.log")"
  fi
  printf '%-22s %4d s  %6s  %s\n' "$name" $((SECONDS - t0)) \
    "$(du -sh "$work/$name" | cut -f1)" "$ok"
  rm -rf "$work/$name"
}
src=$PWD
echo "pip $("$PY" -m pip --version | cut -d' ' -f2) (upgraded in each venv), $(nproc) cores; machine shared with other work"
for what in "${@:-lab dev beam-src}"; do
  for w in $what; do
    case $w in
      lab) one lab "$src[lab]" ;;
      dev) one dev "$src[dev]" ;;
      beam-src)
        # pip reuses a wheel it compiled before, even with --no-binary: forget it first
        "$PY" -m pip cache remove 'apache_beam*' >/dev/null 2>&1
        one beam-src-plain --no-binary apache-beam "$src[lab]"
        one beam-src-constraint --no-binary apache-beam \
          --build-constraint "$src/tools/build-constraints.txt" "$src[lab]" ;;
    esac
  done
done
