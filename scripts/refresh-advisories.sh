#!/usr/bin/env bash
# Refreshes vendor/advisory-db/ (the RustSec advisory database, CC0) that
# `.ci/run` checks Cargo.lock against with `cargo audit --no-fetch`. CI has no
# access to the database's git host, so a copy is committed; run this where
# that host is reachable (or pass a local clone) and commit the result.
#   scripts/refresh-advisories.sh [PATH-TO-A-CLONE-OF-rustsec/advisory-db]
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-}"
if [ -z "$src" ]; then
  src="$(mktemp -d)"
  git clone --depth 1 https://github.com/rustsec/advisory-db "$src"
fi
rm -rf vendor/advisory-db && mkdir -p vendor/advisory-db
(cd "$src" && git archive HEAD crates rust LICENSE.txt README.md) | tar -x -C vendor/advisory-db
echo "vendored $(find vendor/advisory-db/crates -name '*.md' | wc -l) advisories from $(cd "$src" && git log -1 --format=%cs)"
