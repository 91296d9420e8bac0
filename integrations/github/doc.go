// Package github is deploybot's interface to GitHub: the monorepo's drafted
// releases and the workflow their publication starts, the changelog pull
// request that workflow opens, and the infrastructure repository's pull
// requests and rollback workflow.
//
// It speaks to the REST API through go-github v57 but hands back its own
// small value types, so the steps engine and its tests never depend on
// go-github's pointer-heavy structs, and a go-github upgrade stays inside this
// package.
//
// Every call goes through a retrying transport because a runbook step that
// fails on one transient 502 would otherwise stop a deployment half-way and
// wake a human. Rate limits are handled the way GitHub asks: a secondary
// limit is waited out, a primary limit is waited out only when its reset is
// near (WithMaxWait) and otherwise reported as a *RateLimitError naming the
// reset time, so the person in the channel knows when to press retry.
//
// Effects are checked before they are repeated. A POST (a review, a pull
// request, a workflow dispatch) is never resent by the transport after a
// 5xx, a timeout or a dropped connection, because GitHub may have applied
// it: Approve and CreatePR look for their effect and try again only if it
// is missing; Dispatch returns the error as Ambiguous and its caller looks
// for the run (DispatchedRuns) instead of dispatching again.
//
// Errors name the operation and the repository and never carry a credential.
// Text that comes back (release bodies, pull request titles) is returned
// verbatim: escaping it for chat is the chat layer's job.
package github
