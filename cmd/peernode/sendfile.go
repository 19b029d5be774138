package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/peermesh/peermesh/peernode/admin"
	"github.com/peermesh/peermesh/peernode/transfer"
)

// sendFileCommand is `peernode send-file`: it asks a running node, through
// its loopback admin endpoint, to send a file of the node's own file system,
// and with --wait follows the transfers until they end.
func sendFileCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("peernode send-file", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", "127.0.0.1:9090", "admin `HOST:PORT` of the sending node (loopback: the node reads FILE itself)")
	to := fs.String("to", "", "identifier of the peer to send to")
	all := fs.Bool("all", false, "send to every trusted peer")
	wait := fs.Bool("wait", false, "print progress until every transfer ends; exit non-zero if one fails")
	interval := fs.Duration("interval", time.Second, "progress polling `interval` with --wait")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: peernode send-file --admin HOST:PORT (--to ID | --all) [--wait] FILE")
		fmt.Fprintln(stderr, "\nThe running node reads FILE from its own file system (a relative path is made absolute here).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*to == "") == !*all {
		return fmt.Errorf("%w: peernode send-file: give exactly one of --to ID and --all", errUsage)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: peernode send-file: give one FILE", errUsage)
	}
	if *interval <= 0 {
		return fmt.Errorf("%w: peernode send-file: --interval must be positive", errUsage)
	}
	path, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := newAdminClient(*addr)
	if err != nil {
		return err
	}
	var started admin.TransfersResponse
	if err := c.do(ctx, http.MethodPost, "/v1/files", admin.FileRequest{To: *to, All: *all, Path: path}, &started); err != nil {
		return err
	}
	for _, t := range started.Transfers {
		fmt.Fprintf(stdout, "started %s: %s (%d bytes) to %s\n", t.ID, t.Name, t.Total, t.Peer)
	}
	if !*wait {
		return nil
	}
	return followTransfers(ctx, c, started.Transfers, *interval, stdout)
}

// followTransfers polls /debug/transfers, printing a line whenever a
// transfer progressed, until all of them ended. It fails if one failed.
func followTransfers(ctx context.Context, c *adminClient, started []transfer.Info, interval time.Duration, stdout io.Writer) error {
	last := make(map[string]transfer.Info, len(started))
	pending := make(map[string]bool, len(started))
	for _, t := range started {
		pending[t.ID] = true
	}
	var failed []string
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for len(pending) > 0 {
		var resp admin.TransfersResponse
		if err := c.do(ctx, http.MethodGet, "/debug/transfers", nil, &resp); err != nil {
			return err
		}
		want, seen := len(pending), 0
		for _, t := range resp.Transfers {
			if !pending[t.ID] || t.Direction != transfer.Send.String() {
				continue
			}
			seen++
			if prev, ok := last[t.ID]; ok && prev.Acked == t.Acked && prev.State == t.State {
				continue
			}
			last[t.ID] = t
			switch t.State {
			case transfer.Running.String():
				fmt.Fprintf(stdout, "%s to %s: %s\n", t.Name, t.Peer, progressText(t))
			case transfer.Completed.String():
				fmt.Fprintf(stdout, "%s to %s: completed, %d bytes verified, stored as %q\n", t.Name, t.Peer, t.Total, t.StoredAs)
				delete(pending, t.ID)
			default:
				fmt.Fprintf(stdout, "%s to %s: FAILED after %d of %d bytes: %s\n", t.Name, t.Peer, t.Acked, t.Total, t.Reason)
				failed = append(failed, t.Peer+": "+t.Reason)
				delete(pending, t.ID)
			}
		}
		if seen < want {
			// The node keeps its last transfers (100 by default): one that
			// left the list cannot be followed any more.
			return errors.New("a transfer is no longer listed by the node; see its logs")
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d transfer(s) failed: %s", len(failed), len(started), strings.Join(failed, "; "))
	}
	return nil
}

func progressText(t transfer.Info) string {
	pct := 100.0
	if t.Total > 0 {
		pct = 100 * float64(t.Acked) / float64(t.Total)
	}
	return fmt.Sprintf("%5.1f%% (%d of %d bytes acknowledged)", pct, t.Acked, t.Total)
}
