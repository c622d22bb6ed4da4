/**
 * This package's version, generated from its package.json by scripts/versions.mjs (run by `changeset-version`).
 * Do not edit: test/versions.test.ts checks that it matches package.json.
 *
 * @internal
 */
export const version: string = "0.1.0"
