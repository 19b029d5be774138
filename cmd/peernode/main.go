// Command peernode is the peermesh node daemon.
package main

import (
	"fmt"
	"os"

	"github.com/peermesh/peermesh/internal/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("peernode", version.Version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: peernode version")
	os.Exit(2)
}
