package netns_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/peermesh/peermesh/internal/netns"
)

const envChild = "NETNS_TEST_CHILD"

// TestMain: in the child started by TestEnter, enter a namespace and report
// what it looks like from inside.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "1" {
		os.Exit(m.Run())
	}
	inside, code, err := netns.Enter([]netip.Prefix{netip.MustParsePrefix("10.244.9.1/32"), netip.MustParsePrefix("10.244.9.2/32")})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	if !inside {
		os.Exit(code)
	}
	ifaces, _ := net.Interfaces()
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	fmt.Println("interfaces:", strings.Join(names, ","))
	ln, err := net.Listen("tcp", "10.244.9.2:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(4)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.244.9.1")}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(5)
	}
	fmt.Println("connected from", c.LocalAddr())
	os.Exit(7) // the parent must see this exit code
}

func TestEnter(t *testing.T) {
	if netns.Inside() {
		t.Fatal("the test process itself claims to be inside")
	}
	if err := netns.Available(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("child: %v, want exit code 7; output:\n%s", err, out)
	}
	for _, want := range []string{"interfaces: lo\n", "connected from 10.244.9.1:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}
