#!/usr/bin/env bash
# Check the systemd units and example configuration in deploy/:
#   - systemd-analyze verify on both units (any message counts as a failure:
#     verify exits 0 on unknown keys and unparsable values, it only warns);
#   - systemd-analyze security --offline: prints each unit's exposure score
#     and fails above MAX_EXPOSURE (default 2.0, scale 0..10);
#   - systemd-sysusers --dry-run on codetta.sysusers;
#   - the example TOML files parse (python3 tomllib, if available).
# Works without systemd running (containers): the units are copied with
# ExecStart pointing at a stub executable, since verify insists that the
# binary exists. Installs the systemd package if systemd-analyze is missing.
# Exit status: 0 all clean, 1 problems found, 2 cannot run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
fail=0
problem() { echo "FAIL: $*"; fail=1; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not found; installing the systemd package" >&2
  if [[ $EUID -ne 0 ]]; then echo "need root to install systemd" >&2; exit 2; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq systemd >&2 || { apt-get update -qq >&2 && apt-get install -y -qq systemd >&2; } \
    || { echo "cannot install systemd" >&2; exit 2; }
fi
echo "using $(systemd-analyze --version | head -n1)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nexit 0\n' >"$tmp/codetta"
chmod 0755 "$tmp/codetta"
for u in codetta-server@.service codetta-client.service; do
  sed "s|/usr/local/bin/codetta|$tmp/codetta|g" "$here/$u" >"$tmp/$u"
done
# a template is checked through an instance
ln -s codetta-server@.service "$tmp/codetta-server@s1.service"
units=("$tmp/codetta-server@s1.service" "$tmp/codetta-client.service")

echo "== systemd-analyze verify"
for u in "${units[@]}"; do
  rc=0
  out=$(cd "$tmp" && systemd-analyze verify --man=no "$u" 2>&1) || rc=$?
  if [[ $rc -ne 0 || -n $out ]]; then
    problem "verify ${u##*/} (exit $rc):"
    printf '%s\n' "$out" | sed "s|$tmp/||g; s/^/    /"
  else
    echo "PASS: verify ${u##*/}"
  fi
done

echo "== systemd-analyze security --offline=yes (threshold $MAX_EXPOSURE)"
threshold=$(awk -v m="$MAX_EXPOSURE" 'BEGIN{printf "%d", m*10}')
for u in "${units[@]}"; do
  rc=0
  out=$(cd "$tmp" && systemd-analyze security --offline=yes --no-pager --threshold="$threshold" "$u" 2>&1) || rc=$?
  # the settings that still cost points, then the overall score
  printf '%s\n' "$out" | grep -E '^✗' | sed -E 's/ {2,}/  /g; s/^/    /' || true
  score=$(printf '%s\n' "$out" | grep -E 'Overall exposure level' | sed 's/.*: //') || true
  if [[ $rc -ne 0 || -z $score ]]; then
    problem "security ${u##*/}: exposure ${score:-unknown} (exit $rc)"
    [[ -n $score ]] || printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
  else
    echo "PASS: security ${u##*/}: exposure $score"
  fi
done

echo "== sysusers"
mkdir -p "$tmp/root"
if command -v systemd-sysusers >/dev/null 2>&1; then
  if out=$(systemd-sysusers --dry-run --root="$tmp/root" "$here/codetta.sysusers" 2>&1) \
     && printf '%s\n' "$out" | grep -q "Creating user 'codetta'"; then
    echo "PASS: codetta.sysusers creates user codetta"
  else
    problem "codetta.sysusers:"; printf '%s\n' "$out" | sed 's/^/    /'
  fi
else
  echo "SKIP: systemd-sysusers not installed"
fi

echo "== example configuration"
if command -v python3 >/dev/null 2>&1 && python3 -c 'import tomllib' 2>/dev/null; then
  for f in "$here"/examples/*.toml; do
    if out=$(python3 -c '
import sys, tomllib
try: tomllib.load(open(sys.argv[1], "rb"))
except Exception as e: sys.exit(str(e))' "$f" 2>&1); then
      echo "PASS: ${f#"$here"/} parses"
    else
      problem "${f#"$here"/}: $out"
    fi
  done
else
  echo "SKIP: no python3 with tomllib"
fi

if [[ $fail -ne 0 ]]; then echo "verify.sh: problems found"; exit 1; fi
echo "verify.sh: all clean"
