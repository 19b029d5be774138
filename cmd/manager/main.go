// Command manager is the peermesh operator.
package main

import (
	"fmt"
	"os"

	"github.com/peermesh/peermesh/internal/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("manager", version.Version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: manager version")
	os.Exit(2)
}
