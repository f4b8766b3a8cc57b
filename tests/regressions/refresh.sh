#!/usr/bin/env bash
# Regenerates the regression corpus: for each sidecar NAME.toml, runs its
# `command`, saves the trace, shrinks it (deterministic: same input, same
# output) into
# NAME.walsim, and records the shrunk run's outcome, events and trace_hash in
# the sidecar. Run from the repository root after the model changed a
# finding's meaning on purpose; review the diff (git diff tests/regressions).
#
#   tests/regressions/refresh.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
walsim=target/release/walsim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for sidecar in tests/regressions/*.toml; do
  name=$(basename "$sidecar" .toml)
  command=$(python3 -c 'import sys,tomllib; print(tomllib.load(open(sys.argv[1],"rb"))["command"])' "$sidecar")
  # shellcheck disable=SC2086
  $walsim $command --save-trace "$tmp/$name.walsim" >/dev/null || true
  $walsim shrink "$tmp/$name.walsim" -o "tests/regressions/$name.walsim" --json > "$tmp/$name.json"
  python3 - "$sidecar" "$tmp/$name.json" <<'PY'
import json, sys, tomllib
path, summary = sys.argv[1], sys.argv[2]
side = tomllib.load(open(path, "rb"))
s = json.load(open(summary))
assert s["invariant"] == side["invariant"], f"{path}: the run now violates {s['invariant']}"
keep = {k: side[k] for k in ("finding", "command", "invariant")}
keep["outcome"] = "violation"
keep["events"] = s["after"]["events"]
keep["trace_hash"] = s["after"]["trace_hash"]
with open(path, "w") as f:
    for k, v in keep.items():
        f.write(f"{k} = {json.dumps(v)}\n")
PY
  echo "$name: $(grep -E '^(events|trace_hash)' "$sidecar" | tr '\n' ' ')"
done
