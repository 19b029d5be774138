// Command peernode is the peermesh node daemon and its command-line client.
//
//	peernode run --listen HOST:PORT --admin-listen HOST:PORT [--id ID] [--seeds h:p,h:p]
//	             [--config FILE] [--mesh NAME] [--receive-dir DIR]
//	peernode send --admin HOST:PORT (--to ID | --all) MESSAGE
//	peernode send-file --admin HOST:PORT (--to ID | --all) [--wait] FILE
//	peernode explain --admin HOST:PORT [--id ID] [--addr IP[:PORT]]
//	peernode version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/peermesh/peermesh/internal/version"
)

// errUsage marks errors after which the usage text helps.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "peernode:", err)
		}
		os.Exit(2)
	}
}

const usage = `peernode: the peermesh node daemon

Commands:
  run       run a node (see peernode run -h)
  send      send a message to one peer or to all trusted peers through a running node's admin endpoint
  send-file send a file (read by the node) to one peer or to all trusted peers, verified by SHA-256
  explain   ask a running node whether a peer would be admitted, and by which rule
  version   print the version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch args[0] {
	case "run":
		return runNode(ctx, args[1:], stderr)
	case "send":
		return sendCommand(ctx, args[1:], stdout, stderr)
	case "send-file":
		return sendFileCommand(ctx, args[1:], stdout, stderr)
	case "explain":
		return explainCommand(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "peernode", version.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}
