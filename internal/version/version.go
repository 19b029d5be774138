// Package version holds the build version that hack/build.sh injects.
package version

// Version is set at build time with -ldflags -X; "dev" for `go run`.
var Version = "dev"
