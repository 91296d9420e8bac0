// Package sentry is deploybot's client for the Sentry web API (not the SDK,
// which reports the bot's own errors): after each apply it asks which issues
// the new version caused, and it marks each deploy on the release so Sentry
// can attribute issues to it.
//
// Only the few endpoints the runbook needs are spoken, over net/http, so the
// behaviour that matters here is explicit rather than hidden in a generated
// client:
//
//   - Issue listing asks for every status (Sentry silently applies
//     is:unresolved otherwise), pages by the cursor in the Link header while
//     it says results="true", and drops duplicates that cursor paging can
//     produce while issues change under it.
//   - The organisation issues endpoint filters by numeric project id only,
//     while configuration names projects by slug; slugs are resolved once
//     through the organisation's project list and cached.
//   - A deploy needs its release; a release that the build pipeline did not
//     create is created on the spot, because a missing deploy marker is worse
//     than an extra release.
//   - 429 waits for Retry-After, 5xx and transport failures back off, both
//     bounded by the retry limit and the context: a watch must never hang
//     the runbook.
//
// The auth token travels only in the Authorization header; errors are
// scrubbed of it even when a server echoes it back, since they are shown
// in Slack.
package sentry
