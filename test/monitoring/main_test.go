package monitoring

import (
	"fmt"
	"net/netip"
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
const apiServerIP = "10.244.0.1"

func nodeIP(i int) string { return fmt.Sprintf("10.244.0.%d", 10+i) }

// TestMain enters the network namespace and silences controller-runtime's
// logger, which envtest and the controller of the name check use.
func TestMain(m *testing.M) {
	addrs := []netip.Prefix{netip.MustParsePrefix(apiServerIP + "/32")}
	for i := range liveNodes {
		addrs = append(addrs, netip.MustParsePrefix(nodeIP(i)+"/32"))
	}
	inside, code, err := netns.Enter(addrs)
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
