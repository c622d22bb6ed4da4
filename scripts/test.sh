#!/usr/bin/env bash
# Every check and test, as `pnpm test` runs them. The type-check (one core) and the API reference with its examples
# check (which reads the sources, not the build) run side by side; lint needs the build's declarations, and the tests
# need the build (the pack test packs it).
set -euo pipefail
cd "$(dirname "$0")/.."
tsc -b tsconfig.json &
build=$!
pnpm run docs &
docs=$!
wait "$build"
wait "$docs"
eslint .
vitest run
