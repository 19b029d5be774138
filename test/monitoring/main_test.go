package monitoring

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/peermesh/peermesh/internal/netns"
)

// The package runs in a network namespace of its own (internal/netns), where
// node i of the live mesh listens on nodeIP(i), as a pod on its own address:
// the nodes are then endpoints of their mesh's Service (the API server
// refuses loopback addresses there) and the operator counts them in sync.
func nodeIP(i int) string { return netns.NodeAddr(i) }

// TestMain enters the network namespace and silences controller-runtime's
// logger, which envtest and the controller of the name check use.
func TestMain(m *testing.M) {
	inside, code, err := netns.Enter(netns.Addrs(liveNodes))
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitoring:", err)
		os.Exit(1)
	}
	if !inside {
		os.Exit(code)
	}
	log.SetLogger(logr.Discard())
	os.Exit(m.Run())
}
