import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
// @ts-expect-error: a plain JavaScript script, without declarations
import { packages, versionModule } from "../scripts/versions.mjs"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")

describe("one version source", () => {
  for (const name of packages as ReadonlyArray<string>) {
    it(`packages/${name}/src/internal/version.ts is generated from its package.json`, () => {
      const dir = Path.join(root, "packages", name)
      const { version } = JSON.parse(Fs.readFileSync(Path.join(dir, "package.json"), "utf8")) as { version: string }
      expect(Fs.readFileSync(Path.join(dir, "src/internal/version.ts"), "utf8")).toBe(
        (versionModule as (v: string) => string)(version)
      )
    })
  }
})
