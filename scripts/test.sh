#!/usr/bin/env bash
# Every check and test, as `pnpm test` runs them, on both cores: the type-check (one core) beside the API reference
# and its examples check (which read the sources, not the build); then lint (it needs the build's declarations)
# beside the tests (they need the build: the pack test packs it). Any failing step fails the whole.
set -euo pipefail
cd "$(dirname "$0")/.."
tsc -b tsconfig.json &
build=$!
pnpm run docs &
docs=$!
wait "$build"
wait "$docs"
eslint . &
lint=$!
vitest run
wait "$lint"
