// Package terraform is deploybot's interface to the infrastructure repository:
// it bumps versions in .tf files, runs Terraform (init, plan to a saved file,
// show, apply of that file only) and turns a plan into a diff short enough
// for chat.
//
// Terraform runs as a separate binary through terraform-exec so that the bot
// uses exactly the release the infrastructure repository is pinned to
// (1.5.7, the last under the MPL) and state is never written by another one.
package terraform
