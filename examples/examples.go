// Package examples carries the example infrastructure repository inside the
// binary, so that `deploybot demo` works from any directory.
package examples

import (
	"embed"
	"io/fs"
)

//go:embed all:infrastructure
var files embed.FS

// Infrastructure is examples/infrastructure: a miniature of the Openverse
// infrastructure repository that Terraform 1.5.7 plans and applies offline.
func Infrastructure() fs.FS {
	sub, err := fs.Sub(files, "infrastructure")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}
