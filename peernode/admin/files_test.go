package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peermesh/peermesh/peernode/admin"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/transfer"
)

// TestSendFileRequests: POST /v1/files is refused to non-loopback clients
// (the node would read any file it can for them) and checked before
// anything starts; GET /debug/transfers lists transfers.
func TestSendFileRequests(t *testing.T) {
	n, err := node.New(node.Config{ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := transfer.New(n, transfer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.New(n, prometheus.NewRegistry(), nil, nil, nil)
	srv.EnableFileTransfers(svc)
	cases := []struct {
		name, remote, body string
		status             int
		want               string
	}{
		{"remote client", "192.0.2.1:1234", `{"to":"b","path":"/etc/hostname"}`, http.StatusForbidden, "loopback"},
		{"ipv6 loopback", "[::1]:1234", `{"to":"b","path":"relative"}`, http.StatusBadRequest, "not absolute"},
		{"neither to nor all", "127.0.0.1:1234", `{"path":"/x"}`, http.StatusBadRequest, "exactly one"},
		{"both", "127.0.0.1:1234", `{"to":"b","all":true,"path":"/x"}`, http.StatusBadRequest, "exactly one"},
		{"unknown field", "127.0.0.1:1234", `{"to":"b","path":"/x","mode":1}`, http.StatusBadRequest, "unknown field"},
		{"no channel", "127.0.0.1:1234", `{"to":"b","path":"/x"}`, http.StatusNotFound, "no open channel"},
		{"no trusted peer", "127.0.0.1:1234", `{"all":true,"path":"/x"}`, http.StatusNotFound, "no trusted peer"},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodPost, "/v1/files", strings.NewReader(tc.body))
		req.RemoteAddr = tc.remote
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, rec.Code, rec.Body, tc.status, tc.want)
		}
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/transfers", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"transfers": []`) {
		t.Errorf("/debug/transfers: %d %s", rec.Code, rec.Body)
	}
}
