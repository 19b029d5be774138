package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/transfer"
	"github.com/peermesh/peermesh/peernode/wire"
)

// ConfigSource reports the configuration a node applies, for /debug/config.
type ConfigSource interface {
	// AppliedConfig returns the applied configuration (any JSON-encodable
	// value) and its generation (content hash).
	AppliedConfig() (cfg any, generation string)
}

// ReadinessCheck reports nil when the node is ready to serve peers.
type ReadinessCheck func() error

// Server is the admin HTTP server of one node.
type Server struct {
	node     *node.Node
	gatherer prometheus.Gatherer
	config   ConfigSource
	ready    ReadinessCheck
	log      *slog.Logger
	mux      *http.ServeMux
	files    *transfer.Service // nil until EnableFileTransfers
}

// New returns the admin server for n. gatherer serves /metrics; config and
// ready may be nil (no configuration endpoint detail; always ready).
func New(n *node.Node, gatherer prometheus.Gatherer, config ConfigSource, ready ReadinessCheck, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{node: n, gatherer: gatherer, config: config, ready: ready, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	s.mux.HandleFunc("GET /debug/peers", s.peers)
	s.mux.HandleFunc("GET /debug/config", s.configz)
	s.mux.HandleFunc("GET /debug/explain", s.explain)
	s.mux.HandleFunc("POST /v1/send", s.send)
	return s
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serveErr := <-errc; err == nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = serveErr
	}
	return err
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.ready != nil {
		if err := s.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// PeersResponse is the body of /debug/peers.
type PeersResponse struct {
	Self       Self               `json:"self"`
	Limits     node.Limits        `json:"limits"`
	KnownPeers []node.KnownPeer   `json:"knownPeers"`
	Channels   []node.ChannelInfo `json:"channels"`
}

// Self describes the node itself.
type Self struct {
	ID            string `json:"id"`
	Mesh          string `json:"mesh"`
	ListenAddr    string `json:"listenAddr"`
	Policy        string `json:"policy"`
	PolicySource  string `json:"policySource"`
	Mode          string `json:"mode"`
	TrustProtocol string `json:"trustProtocol"`
}

func (s *Server) peers(w http.ResponseWriter, _ *http.Request) {
	p := s.node.Policy()
	proto := "off"
	if p.RunTrustProtocol {
		proto = p.TrustProtocol
	}
	writeJSON(w, http.StatusOK, PeersResponse{
		Self: Self{
			ID: s.node.ID(), Mesh: s.node.Mesh(), ListenAddr: s.node.AdvertiseAddr(),
			Policy: p.Generation, PolicySource: p.PolicySource, Mode: p.Mode.String(), TrustProtocol: proto,
		},
		Limits:     s.node.Limits(),
		KnownPeers: s.node.KnownPeers(),
		Channels:   s.node.Channels(),
	})
}

// ConfigResponse is the body of /debug/config.
type ConfigResponse struct {
	Generation string `json:"generation"`
	Config     any    `json:"config"`
}

func (s *Server) configz(w http.ResponseWriter, _ *http.Request) {
	if s.config == nil {
		writeJSON(w, http.StatusOK, ConfigResponse{Generation: s.node.Policy().Generation})
		return
	}
	cfg, gen := s.config.AppliedConfig()
	writeJSON(w, http.StatusOK, ConfigResponse{Generation: gen, Config: cfg})
}

// ExplainResponse is the body of /debug/explain.
type ExplainResponse struct {
	ID       string `json:"id,omitempty"`
	Addr     string `json:"addr"`
	Admitted bool   `json:"admitted"`
	Verdict  string `json:"verdict"`
	Reason   string `json:"reason,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Policy   string `json:"policy"`
}

// explain answers GET /debug/explain?id=ID&addr=IP[:PORT]: would an inbound
// peer with that identifier and address be admitted, and by which rule.
func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	id, addrText := r.URL.Query().Get("id"), r.URL.Query().Get("addr")
	addr, err := parseAddr(addrText)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	d := s.node.Explain(id, addr)
	writeJSON(w, http.StatusOK, ExplainResponse{
		ID: id, Addr: addr.String(), Admitted: d.Verdict == peernode.Allow, Verdict: verdictName(d.Verdict),
		Reason: d.Reason, Rule: d.Rule, Policy: d.Policy,
	})
}

// parseAddr accepts "IP:PORT" or a bare IP (port 0). An empty address is
// the unspecified IPv4 address, which no CIDR rule of a real policy matches.
func parseAddr(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), 0), nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("addr %q is neither IP nor IP:PORT", s)
	}
	return netip.AddrPortFrom(a.Unmap(), 0), nil
}

func verdictName(v peernode.Verdict) string {
	switch v {
	case peernode.Allow:
		return "allow"
	case peernode.Deny:
		return "deny"
	case peernode.AuditDeny:
		return "audit-deny"
	}
	return "unknown"
}

// SendRequest is the body of POST /v1/send: exactly one of To and All.
type SendRequest struct {
	To      string `json:"to,omitempty"`
	All     bool   `json:"all,omitempty"`
	Message string `json:"message"`
}

// SendResponse reports to how many peers the message was queued.
type SendResponse struct {
	Sent  int    `json:"sent"`
	Error string `json:"error,omitempty"`
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	var req SendRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("invalid request: %w", err))
		return
	}
	if (req.To == "") == !req.All {
		writeError(w, http.StatusBadRequest, errors.New("give exactly one of \"to\" and \"all\""))
		return
	}
	msg := wire.Message{Text: req.Message}
	if err := wire.Validate(msg); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if req.All {
		n, err := s.node.Broadcast(ctx, msg)
		resp := SendResponse{Sent: n}
		if err != nil {
			resp.Error = err.Error()
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	if err := s.node.Send(ctx, req.To, msg); err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, node.ErrNoChannel) {
			status = http.StatusNotFound
		}
		writeError(w, status, err)
		return
	}
	writeJSON(w, http.StatusOK, SendResponse{Sent: 1})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// EnableFileTransfers serves file transfers through svc: POST /v1/files
// starts sending a file of this node's file system to one peer or to every
// trusted peer, and GET /debug/transfers lists running and recent
// transfers. Call it before Serve.
func (s *Server) EnableFileTransfers(svc *transfer.Service) {
	s.files = svc
	s.mux.HandleFunc("POST /v1/files", s.sendFile)
	s.mux.HandleFunc("GET /debug/transfers", s.transfers)
}

// FileRequest is the body of POST /v1/files: exactly one of To and All, and
// the absolute Path of a regular file that the node itself reads.
type FileRequest struct {
	To   string `json:"to,omitempty"`
	All  bool   `json:"all,omitempty"`
	Path string `json:"path"`
}

// TransfersResponse is the body of GET /debug/transfers and of a
// successful POST /v1/files (the transfers it started).
type TransfersResponse struct {
	Transfers []transfer.Info `json:"transfers"`
}

// sendFile answers POST /v1/files. The daemon reads the path with its own
// permissions, so only loopback clients may ask, whatever address the admin
// server listens on.
func (s *Server) sendFile(w http.ResponseWriter, r *http.Request) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().Unmap().IsLoopback() {
		writeError(w, http.StatusForbidden, errors.New("file transfers can only be started from loopback"))
		return
	}
	var req FileRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("invalid request: %w", err))
		return
	}
	if (req.To == "") == !req.All {
		writeError(w, http.StatusBadRequest, errors.New("give exactly one of \"to\" and \"all\""))
		return
	}
	if !filepath.IsAbs(req.Path) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("path %q is not absolute: the node resolves it in its own file system", req.Path))
		return
	}
	var started []*transfer.Transfer
	var err error
	if req.All {
		started, err = s.files.Broadcast(r.Context(), req.Path)
	} else {
		var t *transfer.Transfer
		if t, err = s.files.Send(r.Context(), req.To, req.Path); err == nil {
			started = []*transfer.Transfer{t}
		}
	}
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, node.ErrNoChannel), errors.Is(err, transfer.ErrNoPeers):
			status = http.StatusNotFound
		case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission),
			errors.Is(err, transfer.ErrInvalidName), errors.Is(err, transfer.ErrNotRegularFile):
			status = http.StatusBadRequest
		case errors.Is(err, transfer.ErrNotRunning):
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, err)
		return
	}
	resp := TransfersResponse{Transfers: make([]transfer.Info, 0, len(started))}
	for _, t := range started {
		resp.Transfers = append(resp.Transfers, t.Info())
	}
	writeJSON(w, http.StatusAccepted, resp)
}

func (s *Server) transfers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, TransfersResponse{Transfers: s.files.Transfers()})
}
