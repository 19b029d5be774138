package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/internal/version"
	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/admin"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/discovery"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/transfer"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// runOptions are the flags of `peernode run`.
type runOptions struct {
	listen        string
	adminListen   string
	advertise     string
	id            string
	seeds         string
	configFile    string
	mesh          string
	kubeConfigMap string
	failClosed    bool
	dataDir       string
	receiveDir    string
	logFormat     string
	logLevel      string

	// Discovery (docs/discovery.md).
	dnsName      string
	dnsPort      int
	dnsSRV       bool
	dnsInterval  time.Duration
	dnsServer    string
	lanDiscovery bool
	lanGroup     string
	lanInterface string
}

func parseRunFlags(args []string, stderr io.Writer) (*runOptions, error) {
	o := &runOptions{}
	fs := flag.NewFlagSet("peernode run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "0.0.0.0:7946", "`HOST:PORT` the peer listener binds (fixed; port 0 picks one)")
	fs.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:9090", "`HOST:PORT` of the admin HTTP server (/healthz, /readyz, /metrics, /debug/*)")
	fs.StringVar(&o.advertise, "advertise", "", "`HOST:PORT` announced to peers (default: the listener's address)")
	fs.StringVar(&o.id, "id", "", "node identifier (default: derived from POD_NAMESPACE/POD_NAME, else a UUID kept in --data-dir)")
	fs.StringVar(&o.seeds, "seeds", "", "comma-separated `h:p,h:p` peers to dial at start")
	fs.StringVar(&o.configFile, "config", "", "PeerNodeConfiguration YAML `FILE` (trust flags, block lists, limits, seeds)")
	fs.StringVar(&o.mesh, "mesh", "", "mesh `NAME`; peers of other meshes are refused")
	fs.StringVar(&o.kubeConfigMap, "kube-configmap", "", "`NS/NAME` of the mesh ConfigMap to follow through the Kubernetes API (default with POD_NAMESPACE and --mesh: $POD_NAMESPACE/peermesh-<mesh>)")
	fs.BoolVar(&o.failClosed, "fail-closed", false, "Kubernetes mode: admit no inbound peer and report not Ready until the first configuration is applied")
	fs.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "`DIR` that keeps the generated node identifier")
	fs.StringVar(&o.receiveDir, "receive-dir", "", "`DIR` where files received from peers are stored (default <data-dir>/received; \"\" after an explicit --receive-dir= disables receiving)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.dnsName, "dns-name", "", "DNS `NAME` of a headless Service whose records list the peers (a trailing dot skips the search list)")
	fs.IntVar(&o.dnsPort, "dns-port", 0, "peer `PORT` paired with the A/AAAA addresses of --dns-name (default: the --listen port)")
	fs.BoolVar(&o.dnsSRV, "dns-srv", false, "resolve SRV records _peer._tcp.<--dns-name> (or --dns-name itself if it starts with _) instead of A/AAAA; ports come from the records")
	fs.DurationVar(&o.dnsInterval, "dns-interval", discovery.DefaultDNSInterval, "mean period between DNS resolutions (jittered by ±20%)")
	fs.StringVar(&o.dnsServer, "dns-server", "", "`HOST:PORT` of a DNS server to query instead of the system resolver")
	fs.BoolVar(&o.lanDiscovery, "lan-discovery", false, "announce and discover peers by UDP multicast on the local network (outside Kubernetes)")
	fs.StringVar(&o.lanGroup, "lan-group", discovery.DefaultLANGroup, "IPv4 multicast `GROUP:PORT` of --lan-discovery")
	fs.StringVar(&o.lanInterface, "lan-interface", "", "network interface `NAME` for --lan-discovery (default: the system's choice)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("peernode run: unexpected argument %q", fs.Arg(0))
	}
	if !set["receive-dir"] {
		o.receiveDir = filepath.Join(o.dataDir, "received")
	}
	for name, v := range map[string]string{"--listen": o.listen, "--admin-listen": o.adminListen} {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return nil, fmt.Errorf("%s %q: want HOST:PORT: %w", name, v, err)
		}
	}
	if o.advertise == "" {
		o.advertise = advertiseFromPod(o.listen)
	}
	if o.advertise != "" {
		if _, _, err := net.SplitHostPort(o.advertise); err != nil {
			return nil, fmt.Errorf("--advertise %q: want HOST:PORT: %w", o.advertise, err)
		}
	}
	for _, s := range o.seedList() {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("--seeds: %q: want HOST:PORT: %w", s, err)
		}
	}
	switch o.logFormat {
	case "text", "json":
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		return nil, err
	}
	if err := o.checkDiscoveryFlags(set); err != nil {
		return nil, err
	}
	if _, _, _, err := kubeTarget(o); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *runOptions) seedList() []string {
	var out []string
	for _, s := range strings.Split(o.seeds, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// unspecifiedHost reports whether addr's host is 0.0.0.0 or ::.
func unspecifiedHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// advertiseFromPod returns POD_IP:port when the listener binds an
// unspecified address in a pod, so peers learn a dialable address.
func advertiseFromPod(listen string) string {
	podIP := os.Getenv("POD_IP")
	host, port, err := net.SplitHostPort(listen)
	if podIP == "" || err != nil || !unspecifiedHost(listen) || host == podIP {
		return ""
	}
	return net.JoinHostPort(podIP, port)
}

func defaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".peernode")
	}
	return ".peernode"
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(o *runOptions, w io.Writer) *slog.Logger {
	level, _ := parseLevel(o.logLevel)
	opts := &slog.HandlerOptions{Level: level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// nodeID picks the identifier: --id, the pod's derived identity, or a UUID
// generated once and kept in the data directory.
func nodeID(o *runOptions) (string, string, error) {
	if o.id != "" {
		return o.id, "flag", nil
	}
	if ns, name := os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME"); ns != "" && name != "" {
		return v1alpha1.NodeIdentifierForPod(ns, name), "pod", nil
	}
	path := filepath.Join(o.dataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		id := strings.TrimSpace(string(b))
		if _, err := uuid.Parse(id); err != nil {
			return "", "", fmt.Errorf("%s: not a UUID: %q", path, id)
		}
		return id, "data-dir", nil
	}
	id := uuid.NewString()
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return "", "", fmt.Errorf("--data-dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("--data-dir: keeping the node identifier: %w", err)
	}
	return id, "generated", nil
}

// loadConfig reads the --config file, or returns the defaults.
func loadConfig(path string) (*v1alpha1.PeerNodeConfiguration, error) {
	if path == "" {
		return v1alpha1.DefaultPeerNodeConfiguration(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	cfg, err := v1alpha1.ParsePeerNodeConfiguration(data)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	return cfg, nil
}

// nodeConfig turns the options and the configuration file into node.Config.
func nodeConfig(o *runOptions, id string, cfg *v1alpha1.PeerNodeConfiguration, reg prometheus.Registerer, log *slog.Logger) (node.Config, error) {
	policy, err := trust.PolicyFromConfig(cfg)
	if err != nil {
		return node.Config{}, fmt.Errorf("--config: %w", err)
	}
	placement, err := node.ParsePlacement(string(cfg.Incoming.Placement))
	if err != nil {
		return node.Config{}, fmt.Errorf("--config: incoming.placement: %w", err)
	}
	mesh := o.mesh
	if mesh == "" {
		mesh = cfg.MeshName
	} else if cfg.MeshName != "" && cfg.MeshName != mesh {
		return node.Config{}, fmt.Errorf("--mesh %q differs from meshName %q of --config", mesh, cfg.MeshName)
	}
	ch := channel.DefaultConfig(wire.Hello{}) // the node sets its own Hello
	lim := cfg.Limits
	if lim.HandshakeTimeout != nil {
		ch.HandshakeTimeout = lim.HandshakeTimeout.Duration
	}
	if lim.IdleTimeout != nil {
		ch.IdleTimeout = lim.IdleTimeout.Duration
	}
	if lim.KeepaliveInterval != nil {
		ch.KeepaliveInterval = lim.KeepaliveInterval.Duration
	}
	if lim.MaxFrameSize != nil {
		ch.MaxFrameSize = uint32(*lim.MaxFrameSize)
	}
	if lim.SendQueueLength != nil {
		ch.SendQueueLength = int(*lim.SendQueueLength)
	}
	seeds := o.seedList()
	if cfg.Discovery != nil {
		seeds = append(seeds, cfg.Discovery.Seeds...)
	}
	protocols, err := trustProtocols(cfg, o.configFile, log)
	if err != nil {
		return node.Config{}, err
	}
	nc := node.Config{
		ID: id, Mesh: mesh, ListenAddr: o.listen, AdvertiseAddr: o.advertise, Seeds: seeds,
		Placement: placement, Channel: ch, Policy: policy, TrustProtocols: protocols,
		Registerer: reg, Logger: log,
	}
	nc.Events.MessageReceived = func(c peernode.Channel, text string) {
		log.Info("message received", "peer", c.Peer().ID(), "text", truncate(text, 200))
	}
	nc.Events.DataReceived = func(c peernode.Channel, d wire.Data) {
		log.Info("data received", "peer", c.Peer().ID(), "format", d.Format.String(), "bytes", len(d.Body))
	}
	live := policyLimits(cfg)
	nc.MaxInbound, nc.MaxOutbound = live.MaxInbound, live.MaxOutbound
	if nc.Discoverers, err = discoverers(o, nc, reg, log); err != nil {
		return node.Config{}, err
	}
	return nc, nil
}

// policyLimits returns the limits of cfg that a running node applies with
// SetLimits (the caps and the channel timeouts); unset ones are zero, which
// keeps what the node started with.
func policyLimits(cfg *v1alpha1.PeerNodeConfiguration) node.PolicyLimits {
	lim := cfg.Limits
	// In the configuration 0 means "no channel in that direction"; in
	// node.Config that is a negative cap (0 selects the default there).
	capOf := func(v *int32) int {
		if v == nil {
			return 0
		}
		if *v == 0 {
			return -1
		}
		return int(*v)
	}
	dur := func(d *metav1.Duration) time.Duration {
		if d == nil {
			return 0
		}
		return d.Duration
	}
	return node.PolicyLimits{
		MaxInbound: capOf(lim.MaxInboundPeers), MaxOutbound: capOf(lim.MaxOutboundPeers),
		HandshakeTimeout: dur(lim.HandshakeTimeout), IdleTimeout: dur(lim.IdleTimeout), KeepaliveInterval: dur(lim.KeepaliveInterval),
	}
}

// sharedKeyFileField names the configuration field of the key file in errors.
const sharedKeyFileField = "incoming.trustProtocol.sharedKeyFile"

// trustProtocols returns node.Config.TrustProtocols for cfg: the key-less
// built-ins and, when the trust protocol is SharedKey, the SharedKey
// protocol with the key read from sharedKeyFile. A relative sharedKeyFile is
// relative to the directory of the --config file, as kubeconfig paths are,
// so that the pair can move together. The key never goes into logs or
// /debug/config (the configuration holds only its path).
func trustProtocols(cfg *v1alpha1.PeerNodeConfiguration, configFile string, log *slog.Logger) (func(string) (peernode.TrustProtocol, error), error) {
	tp := cfg.Incoming.TrustProtocol
	if tp.Type != v1alpha1.TrustProtocolSharedKey {
		return trust.Resolver(nil), nil
	}
	if tp.SharedKeyFile == "" {
		if ref := tp.SharedKeySecretRef; ref != nil {
			return nil, fmt.Errorf("--config: incoming.trustProtocol.sharedKeySecretRef (Secret %s/%s): the Secret is read through the API in Kubernetes mode "+
				"(--kube-configmap); outside Kubernetes set %s to a file holding the key instead",
				ref.Namespace, ref.Name, sharedKeyFileField)
		}
		return nil, fmt.Errorf("--config: %s: required with trustProtocol type SharedKey", sharedKeyFileField)
	}
	path := tp.SharedKeyFile
	if !filepath.IsAbs(path) && configFile != "" {
		path = filepath.Join(filepath.Dir(configFile), path)
	}
	key, err := readSharedKey(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %s: %w", sharedKeyFileField, err)
	}
	defer clear(key) // the SharedKey keeps its own copy
	resolve := trust.Resolver(key)
	if _, err := resolve(trust.ProtocolSharedKey); err != nil {
		return nil, fmt.Errorf("--config: %s %s: %w", sharedKeyFileField, path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the shared key file is readable by other users; make it readable by the node's user only (chmod 600, or defaultMode: 0400 for a Secret volume)",
			"file", path, "mode", fi.Mode().Perm().String())
	}
	log.Info("trust protocol sharedKey: key loaded", "file", path, "bytes", len(key))
	return resolve, nil
}

// readSharedKey reads a key file. Trailing whitespace is not part of the
// key: editors and `echo` add a newline, and one side's file having it while
// the other's does not must not make the keys differ. Everything else,
// leading whitespace included, is the key, byte for byte (a base64 text is
// used as is, not decoded).
func readSharedKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key := bytes.TrimRight(data, " \t\r\n")
	if len(key) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return key, nil
}

// appliedConfig serves /debug/config.
type appliedConfig struct {
	mu  sync.Mutex
	cfg *v1alpha1.PeerNodeConfiguration
}

func (a *appliedConfig) set(cfg *v1alpha1.PeerNodeConfiguration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cfg = cfg
}

func (a *appliedConfig) AppliedConfig() (any, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg, a.cfg.Generation
}

func runNode(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(o, stderr)
	cfg, err := loadConfig(o.configFile)
	if err != nil {
		return err
	}
	id, idSource, err := nodeID(o)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	nc, err := nodeConfig(o, id, cfg, reg, log)
	if err != nil {
		return err
	}
	var km *kubeMode
	if ns, name, ok, _ := kubeTarget(o); ok {
		if km, err = newKubeMode(o, ns, name, log); err != nil {
			return err
		}
		nc.TrustProtocols = km.resolver
		if o.failClosed {
			nc.Policy = trust.FailClosedPolicy()
		}
	}
	n, err := node.New(nc)
	if err != nil {
		return err
	}
	if o.advertise == "" && unspecifiedHost(n.AdvertiseAddr()) {
		log.Warn("listening on an unspecified address and no --advertise (or POD_IP) given: peers learn an address they cannot dial", "listen", n.AdvertiseAddr())
	}
	n.Metrics().BuildInfo.WithLabelValues(version.Version).Set(1)
	files, err := transfer.New(n, transfer.Config{ReceiveDir: o.receiveDir, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", o.adminListen)
	if err != nil {
		return fmt.Errorf("--admin-listen %s: %w", o.adminListen, err)
	}
	applied := &appliedConfig{cfg: cfg}
	var ready admin.ReadinessCheck
	if km != nil {
		km.start(n, applied)
		ready = km.ready
	}
	srv := admin.New(n, reg, applied, ready, log)
	srv.EnableFileTransfers(files)
	log.Info("peernode starting", "version", version.Version, "id", id, "idSource", idSource,
		"listen", n.AdvertiseAddr(), "admin", adminLn.Addr().String(), "mesh", nc.Mesh, "seeds", len(nc.Seeds),
		"receiveDir", o.receiveDir)

	var wg sync.WaitGroup
	adminErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		adminErr <- srv.Serve(ctx, adminLn)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = files.Run(ctx) // returns once ctx ends and its transfers are over
	}()
	if km != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := km.watcher.Run(ctx); err != nil {
				log.Error("configuration watcher stopped", "err", err)
			}
		}()
	}
	runErr := n.Run(ctx)
	wg.Wait()
	if err := <-adminErr; err != nil && !errors.Is(err, context.Canceled) {
		log.Error("admin server failed", "err", err)
	}
	log.Info("peernode stopped")
	return runErr
}

// checkDiscoveryFlags validates the discovery flags; set holds the names of
// the flags given on the command line.
func (o *runOptions) checkDiscoveryFlags(set map[string]bool) error {
	if o.dnsName == "" {
		for _, name := range []string{"dns-port", "dns-srv", "dns-interval", "dns-server"} {
			if set[name] {
				return fmt.Errorf("--%s needs --dns-name", name)
			}
		}
	} else {
		switch {
		case o.dnsSRV && set["dns-port"]:
			return errors.New("--dns-port: not used with --dns-srv (SRV records carry the port)")
		case set["dns-port"] && (o.dnsPort < 1 || o.dnsPort > 65535):
			return fmt.Errorf("--dns-port %d: want 1-65535", o.dnsPort)
		case !o.dnsSRV && !set["dns-port"] && o.listenPort() == 0:
			return fmt.Errorf("--dns-port is required: --listen %s has no fixed port to pair with the DNS addresses", o.listen)
		case o.dnsInterval <= 0:
			return fmt.Errorf("--dns-interval %s: want a positive duration such as 10s", o.dnsInterval)
		}
		if o.dnsServer != "" {
			if _, _, err := net.SplitHostPort(o.dnsServer); err != nil {
				return fmt.Errorf("--dns-server %q: want HOST:PORT: %w", o.dnsServer, err)
			}
		}
	}
	if !o.lanDiscovery {
		for _, name := range []string{"lan-group", "lan-interface"} {
			if set[name] {
				return fmt.Errorf("--%s needs --lan-discovery", name)
			}
		}
		return nil
	}
	if g, err := netip.ParseAddrPort(o.lanGroup); err != nil || !g.Addr().Is4() || !g.Addr().IsMulticast() || g.Port() == 0 {
		return fmt.Errorf("--lan-group %q: want an IPv4 multicast GROUP:PORT such as %s", o.lanGroup, discovery.DefaultLANGroup)
	}
	if _, port, _ := net.SplitHostPort(o.lanAddr()); port == "0" {
		return errors.New("--lan-discovery: announcing needs a fixed port: set --listen HOST:PORT with a non-zero port, or --advertise")
	}
	return nil
}

// listenPort returns the port of --listen (0 when unset or invalid).
func (o *runOptions) listenPort() int {
	_, p, err := net.SplitHostPort(o.listen)
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(p)
	return port
}

// lanAddr is the address LAN discovery announces: --advertise (or the
// POD_IP address derived from it), else --listen. An unspecified host
// (0.0.0.0) is replaced by receivers with the datagram's source address.
func (o *runOptions) lanAddr() string {
	if o.advertise != "" {
		return o.advertise
	}
	return o.listen
}

// discoverers builds node.Config.Discoverers from the discovery flags.
func discoverers(o *runOptions, nc node.Config, reg prometheus.Registerer, log *slog.Logger) ([]peernode.Discoverer, error) {
	if o.dnsName == "" && !o.lanDiscovery {
		return nil, nil
	}
	m, err := discovery.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	var ds []peernode.Discoverer
	if o.dnsName != "" {
		port := o.dnsPort
		if port == 0 && !o.dnsSRV {
			port = o.listenPort()
		}
		d, err := discovery.NewDNS(discovery.DNSConfig{
			Name: o.dnsName, Port: port, SRV: o.dnsSRV, Interval: o.dnsInterval,
			Server: o.dnsServer, Logger: log, Metrics: m,
		})
		if err != nil {
			return nil, fmt.Errorf("--dns-name: %w", err)
		}
		log.Info("DNS discovery enabled", "name", o.dnsName, "srv", o.dnsSRV, "port", port, "interval", o.dnsInterval)
		ds = append(ds, d)
	}
	if o.lanDiscovery {
		l, err := discovery.NewLAN(discovery.LANConfig{
			ID: nc.ID, Mesh: nc.Mesh, Addr: o.lanAddr(), Group: o.lanGroup,
			Interface: o.lanInterface, Logger: log, Metrics: m,
		})
		if err != nil {
			return nil, fmt.Errorf("--lan-discovery: %w", err)
		}
		log.Info("LAN discovery enabled", "group", o.lanGroup, "interface", o.lanInterface, "announce", o.lanAddr())
		ds = append(ds, l)
	}
	return ds, nil
}
