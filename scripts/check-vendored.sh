#!/usr/bin/env bash
# Checks that every vendored crate under third_party/ is its upstream release plus the changes
# recorded in third_party/patches/, so that those changes stay reviewable:
#   <crate>-<version>.removed  upstream paths the copy leaves out, one per line ('#' comments)
#   <crate>-<version>.patch    unified diff (patch -p1) from the release, less those paths, to the copy
# The release's .crate comes from the registry through cargo (`cargo fetch` in a throw-away
# project; cargo checks the download against the index, and this script checks the cached file
# against the checksum cargo wrote to that project's Cargo.lock). The copy's own note,
# SECURECONSULT-PATCH.md, is the one file not compared.
#
#   scripts/check-vendored.sh           check; exits 1 and names the files on any difference
#   scripts/check-vendored.sh --update  after changing a vendored crate: rewrite its .patch from
#                                       the copy (then review `git diff third_party/patches`)
set -euo pipefail
cd "$(dirname "$0")/.."

NOTE=SECURECONSULT-PATCH.md
PATCHES=third_party/patches

update=0
case "${1:-}" in
  "") ;;
  --update) update=1 ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

say() { printf '%s\n' "$*"; }
err() { printf 'check-vendored: %s\n' "$*" >&2; }

# A key of the [package] table of a Cargo.toml (the vendored manifests are cargo's normalized ones).
manifest_field() {
  awk -v key="$2" '
    /^[[:space:]]*\[/ { in_pkg = ($0 ~ /^[[:space:]]*\[package\][[:space:]]*$/); next }
    in_pkg && $1 == key && $2 == "=" { v = $3; gsub(/"/, "", v); print v; exit }' "$1"
}

# The checksum of a registry package in a Cargo.lock.
lock_checksum() {
  awk -v n="$2" -v v="$3" '
    /^\[\[package\]\]/ { name = ""; ver = ""; next }
    /^name = /     { name = $3; gsub(/"/, "", name) }
    /^version = /  { ver = $3; gsub(/"/, "", ver) }
    /^checksum = / { c = $3; gsub(/"/, "", c); if (name == n && ver == v) { print c; exit } }' "$1"
}

crates=() names=() versions=()
for manifest in third_party/*/Cargo.toml; do
  [ -f "$manifest" ] || continue
  dir="${manifest%/Cargo.toml}"
  name="$(manifest_field "$manifest" name)"
  version="$(manifest_field "$manifest" version)"
  if [ -z "$name" ] || [ -z "$version" ]; then
    err "cannot read [package] name and version from $manifest"
    exit 1
  fi
  crates+=("$dir") names+=("$name") versions+=("$version")
done
if [ "${#crates[@]}" -eq 0 ]; then
  err "no vendored crates under third_party/"
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Fetch the releases: one throw-away project that depends on each crate at its exact version.
mkdir -p "$tmp/fetch/src"
: >"$tmp/fetch/src/lib.rs"
{
  printf '[package]\nname = "check-vendored"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
  printf '[workspace]\n\n[dependencies]\n'
  for i in "${!crates[@]}"; do printf '%s = "=%s"\n' "${names[$i]}" "${versions[$i]}"; done
} >"$tmp/fetch/Cargo.toml"
host="$(rustc -vV | awk '$1 == "host:" { print $2 }')"
fetch() {
  (cd "$tmp/fetch" && CARGO_TARGET_DIR="$tmp/target" cargo generate-lockfile "$@" &&
    CARGO_TARGET_DIR="$tmp/target" cargo fetch --target "$host" "$@")
}
# Offline first (cargo's cache holds everything after the first run), the network otherwise.
if ! fetch --offline --quiet 2>/dev/null; then
  rm -f "$tmp/fetch/Cargo.lock"
  fetch --quiet
fi
cache="${CARGO_HOME:-$HOME/.cargo}/registry/cache"

failed=0
for i in "${!crates[@]}"; do
  dir="${crates[$i]}" name="${names[$i]}" version="${versions[$i]}"
  id="$name-$version"
  patch_file="$PATCHES/$id.patch"
  removed_file="$PATCHES/$id.removed"

  sum="$(lock_checksum "$tmp/fetch/Cargo.lock" "$name" "$version")"
  crate_file=""
  for f in "$cache"/*/"$id.crate"; do
    [ -f "$f" ] || continue
    if [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$sum" ]; then crate_file="$f"; break; fi
  done
  if [ -z "$sum" ] || [ -z "$crate_file" ]; then
    err "$id: no .crate in $cache matching the registry checksum '${sum:-?}'"
    exit 1
  fi

  # Upstream, less the listed paths.
  work="$tmp/$id"
  mkdir -p "$work"
  tar -xzf "$crate_file" -C "$work"
  up="$work/$id"
  if [ -f "$removed_file" ]; then
    while IFS= read -r path || [ -n "$path" ]; do
      case "$path" in "" | "#"*) continue ;; esac
      case "/$path/" in */../* | //*)
        err "$removed_file: bad path '$path'"
        exit 1 ;;
      esac
      if [ ! -e "$up/$path" ] && [ ! -L "$up/$path" ]; then
        err "$removed_file lists '$path', which is not in the $id release"
        failed=1
      fi
      rm -rf "${up:?}/$path"
    done <"$removed_file"
  fi

  if [ "$update" -eq 1 ]; then
    # The copy less its note, as b/, against upstream less the removed paths, as a/.
    mkdir -p "$work/diff"
    mv "$up" "$work/diff/a"
    cp -a "$dir" "$work/diff/b"
    rm -f "$work/diff/b/$NOTE"
    {
      say "$name $version from the registry -> $dir (SecureConsult changes; paths in $id.removed left out)."
      say "Written by scripts/check-vendored.sh --update; apply with patch -p1 in the release's root."
      say ""
      # git names an added (deleted) file b/x b/x (a/x a/x) here: make it a/x b/x.
      (cd "$work/diff" && git -c core.quotePath=false diff --no-index --no-prefix --no-color --no-ext-diff \
        --no-renames a b) >"$work/diff.out" || [ $? -eq 1 ]
      sed -E 's#^diff --git [ab]/(.*) [ab]/(.*)$#diff --git a/\1 b/\2#' "$work/diff.out"
    } >"$patch_file"
    say "updated $patch_file ($(grep -c '^diff --git ' "$patch_file" || true) files)"
    continue
  fi

  # Upstream + patch.
  changed=0
  if [ -f "$patch_file" ] && grep -q '^diff --git ' "$patch_file"; then
    changed="$(grep -c '^diff --git ' "$patch_file")"
    if ! out="$(patch -d "$up" -p1 --batch --forward --fuzz=0 --no-backup-if-mismatch \
      <"$patch_file" 2>&1)"; then
      err "$patch_file does not apply to the $id release:"
      printf '%s\n' "$out" | sed 's/^/  /' >&2
      failed=1
      continue
    fi
  elif [ ! -f "$patch_file" ]; then
    err "$dir has no $patch_file (run $0 --update if the copy is meant to differ from the release)"
  fi
  [ -f "$dir/$NOTE" ] && cp "$dir/$NOTE" "$up/$NOTE"

  # Compare: any difference fails, every file named.
  if report="$(diff -rq "$up" "$dir" 2>&1)"; then
    removed=0
    [ -f "$removed_file" ] && removed="$(grep -cv '^[[:space:]]*\(#\|$\)' "$removed_file" || true)"
    say "ok: $dir = $name $version (sha256 ${sum:0:12}...) less $removed paths + $patch_file ($changed files)"
    continue
  fi
  failed=1
  err "$dir is not $name $version + $patch_file:"
  while IFS= read -r line; do
    case "$line" in
      "Files $up/"*" and $dir/"*" differ")
        rel="${line#"Files $up/"}"
        say "  differs:                $dir/${rel%% and *}" ;;
      "Only in $up"*)
        rel="${line#"Only in $up"}"
        rel="${rel#/}"
        rel="${rel/: //}"
        say "  missing from the copy:  $dir/${rel#/}" ;;
      "Only in $dir"*)
        rel="${line#"Only in $dir"}"
        rel="${rel#/}"
        rel="${rel/: //}"
        say "  not in release + patch: $dir/${rel#/}" ;;
      *) say "  $line" ;;
    esac
  done <<<"$report" >&2
done

# A patch or list for no vendored crate is stale (e.g. left behind by an upgrade).
for f in "$PATCHES"/*; do
  [ -e "$f" ] || continue
  base="${f##*/}"
  known=0
  for i in "${!crates[@]}"; do
    case "$base" in "${names[$i]}-${versions[$i]}".patch | "${names[$i]}-${versions[$i]}".removed) known=1 ;; esac
  done
  if [ "$known" -eq 0 ]; then
    err "$f belongs to no vendored crate (third_party/*/Cargo.toml)"
    failed=1
  fi
done

if [ "$failed" -ne 0 ]; then
  err "FAILED: the vendored tree differs from upstream + patches. If a change to a vendored crate is"
  err "meant, run $0 --update, review \`git diff $PATCHES\` and update the crate's $NOTE."
  exit 1
fi
