import * as Scrub from "@mcp-auth/service-account/Scrub"
import { ConfigIssue, ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"

/**
 * A `ConfigurationError` for `server.url` when it carries user info (`https://user:pass@host/…`), else `undefined`.
 *
 * @internal
 */
export const userInfoError = (url: URL): ConfigurationError | undefined =>
  url.username === "" && url.password === "" ? undefined : new ConfigurationError({
    issues: [
      new ConfigIssue({
        path: "server.url",
        message: `${
          Scrub.url(url)
        } carries user info (user:password@): remove it; credentials belong in the auth provider's config`
      })
    ]
  })
