// Package git drives the git command line for deploybot's infrastructure
// repository: one shared clone per bot, one worktree and branch per run.
//
// The CLI is used instead of a Go implementation of git so that behaviour
// (auth, hooks, locking, crash recovery) is exactly what an operator gets when
// they reproduce a problem by hand in the same directory.
//
// Layout under Options.Workdir:
//
//	repo/          bare clone; nobody edits it, so runs can never see each
//	               other's half-done edits and any branch may be checked out
//	               by a run
//	runs/<run id>/ one linked worktree per run, on the run's own branch
//
// Secrets: the token reaches git only through the environment of the one
// child process that talks to the remote, read back by a GIT_ASKPASS script
// that holds no secret itself. Credential helpers are switched off for every
// command, because a globally configured helper (store, cache, osxkeychain)
// would otherwise be handed the token after a successful push and persist it.
package git
