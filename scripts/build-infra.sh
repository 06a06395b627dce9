#!/usr/bin/env bash
# Compiles infra/main.bicep with the pinned Bicep CLI into infra/compiled/main.json (committed: the infra tests read
# it on every machine), records the SHA-256 of every source it was compiled from in infra/compiled/sources.sha256,
# and lints every Bicep file. Run it after any change under infra/ or to bicepconfig.json, and commit both files.
#
# It fails when the compiler or the linter reports anything, error or warning: fix it, or relax it by name with a
# reason (bicepconfig.json for a linter rule, #disable-next-line beside the line for a BCP diagnostic).
#
# Usage: bash scripts/build-infra.sh        (installs the CLI first if needed, with scripts/install-bicep.sh)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
version="$(sed -n 's/^BICEP_VERSION="\(.*\)"$/\1/p' scripts/install-bicep.sh)"
bin="$root/.tools/bicep/$version/bicep"
[ -x "$bin" ] || bash scripts/install-bicep.sh

out="infra/compiled"
mkdir -p "$out"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

"$bin" build infra/main.bicep --outfile "$out/main.json" 2>"$log"
"$bin" lint --pattern 'infra/**/*.bicep' >>"$log" 2>&1
if [ -s "$log" ]; then
  cat "$log" >&2
  echo "build-infra: the compiler or the linter reported the diagnostics above; nothing may be left" >&2
  exit 1
fi

# Same list and format as tests/infra/compiled.ts computes: every .bicep file under infra/ and bicepconfig.json,
# sorted by path, "<sha256>  <path>" per line.
{ find infra -name '*.bicep' -type f; echo bicepconfig.json; } | LC_ALL=C sort | xargs sha256sum >"$out/sources.sha256"
echo "build-infra: compiled infra/main.bicep into $out/main.json with $("$bin" --version); no diagnostics"
