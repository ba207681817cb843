#!/usr/bin/env bash
# Copy the generated CRDs from the top-level crds/ (the output of `mtls-gate crd`) into the
# chart's crds/, which Helm installs before the templates. The two copies must stay
# byte-identical; tests/chart checks that.
#
#   scripts/sync-crds.sh          copy (and remove chart CRDs that no longer exist)
#   scripts/sync-crds.sh --check  only compare; exit 1 if they differ
#
# After a CRD change, also regenerate deploy/: .venv/bin/python scripts/render-deploy.py
set -euo pipefail

cd "$(dirname "$0")/.."
src=crds
dst=charts/mtls-gate/crds
mode=${1:-sync}
case "$mode" in
  sync|--check) ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

shopt -s nullglob
src_files=("$src"/*.yaml)
dst_files=("$dst"/*.yaml)

if [ ${#src_files[@]} -eq 0 ]; then
  echo "sync-crds: no CRD in $src/ yet (generate it with: mtls-gate crd > $src/apiproviderprofiles.yaml); nothing to sync."
  exit 0
fi

if [ "$mode" = "--check" ]; then
  status=0
  for f in "${src_files[@]}"; do
    if ! cmp -s "$f" "$dst/$(basename "$f")"; then
      echo "sync-crds: $dst/$(basename "$f") differs from $f (or is missing). Run scripts/sync-crds.sh." >&2
      status=1
    fi
  done
  for f in "${dst_files[@]}"; do
    if [ ! -e "$src/$(basename "$f")" ]; then
      echo "sync-crds: $f has no counterpart in $src/. Run scripts/sync-crds.sh." >&2
      status=1
    fi
  done
  [ $status -eq 0 ] && echo "sync-crds: $dst/ matches $src/."
  exit $status
fi

mkdir -p "$dst"
for f in "${dst_files[@]}"; do
  [ -e "$src/$(basename "$f")" ] || { rm -f "$f"; echo "sync-crds: removed stale $f"; }
done
for f in "${src_files[@]}"; do
  cp "$f" "$dst/$(basename "$f")"
  echo "sync-crds: copied $f -> $dst/"
done
