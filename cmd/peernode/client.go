package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/peermesh/peermesh/peernode/admin"
)

// adminClient talks to a running node's admin endpoint.
type adminClient struct {
	base string
	http *http.Client
}

func newAdminClient(addr string) (*adminClient, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: --admin HOST:PORT is required", errUsage)
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &adminClient{base: strings.TrimSuffix(addr, "/"), http: &http.Client{Timeout: 15 * time.Second}}, nil
}

// do sends a request and decodes a JSON answer into out, turning an error
// answer into an error that carries the node's message.
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin endpoint %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("node answered %s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("node answered %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	return json.Unmarshal(data, out)
}

func sendCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("peernode send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", "127.0.0.1:9090", "admin `HOST:PORT` of the sending node")
	to := fs.String("to", "", "identifier of the peer to send to")
	all := fs.Bool("all", false, "send to every trusted peer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*to == "") == !*all {
		return fmt.Errorf("%w: peernode send: give exactly one of --to ID and --all", errUsage)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: peernode send: give the message as one argument", errUsage)
	}
	c, err := newAdminClient(*addr)
	if err != nil {
		return err
	}
	var resp admin.SendResponse
	if err := c.do(ctx, http.MethodPost, "/v1/send", admin.SendRequest{To: *to, All: *all, Message: fs.Arg(0)}, &resp); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sent to %d peer(s)\n", resp.Sent)
	if resp.Error != "" {
		return fmt.Errorf("some peers failed: %s", resp.Error)
	}
	return nil
}

func explainCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("peernode explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", "127.0.0.1:9090", "admin `HOST:PORT` of the node to ask")
	id := fs.String("id", "", "peer identifier")
	peerAddr := fs.String("addr", "", "peer address, `IP[:PORT]`")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" && *peerAddr == "" {
		return fmt.Errorf("%w: peernode explain: give --id, --addr or both", errUsage)
	}
	c, err := newAdminClient(*addr)
	if err != nil {
		return err
	}
	q := url.Values{}
	q.Set("id", *id)
	q.Set("addr", *peerAddr)
	var resp admin.ExplainResponse
	if err := c.do(ctx, http.MethodGet, "/debug/explain?"+q.Encode(), nil, &resp); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	who := strings.TrimSpace(*id + " " + *peerAddr)
	switch {
	case resp.Admitted && resp.Rule != "":
		fmt.Fprintf(stdout, "ADMIT %s: allowed by %s (policy %s)\n", who, resp.Rule, resp.Policy)
	case resp.Admitted:
		fmt.Fprintf(stdout, "ADMIT %s: no rule denies it (policy %s)\n", who, resp.Policy)
	case resp.Verdict == "audit-deny":
		fmt.Fprintf(stdout, "ADMIT (audit) %s: would be denied (%s) by %s (policy %s)\n", who, resp.Reason, resp.Rule, resp.Policy)
	default:
		fmt.Fprintf(stdout, "DENY %s: %s by %s (policy %s)\n", who, resp.Reason, resp.Rule, resp.Policy)
	}
	return nil
}
