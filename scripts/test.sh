#!/usr/bin/env bash
# Every check and test, as `pnpm test` runs them, on both cores: the build (the type-check, then the CLI bundle, once,
# so that no test rebuilds it while another runs it) beside the API reference and its examples check (which read the
# sources, not the build); then lint (it needs the build's declarations) beside the tests (they need the build: the
# pack test packs it). Any failing step fails the whole, and no background job outlives it.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
{ tsc -b tsconfig.json && node packages/cli/scripts/bundle.mjs; } &
build=$!
pnpm run docs &
docs=$!
wait "$build"
wait "$docs"
eslint . &
lint=$!
vitest run
wait "$lint"
