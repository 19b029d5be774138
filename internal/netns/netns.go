// Package netns runs the current program again inside a network namespace of
// its own, with the loopback interface up and extra addresses on it. The
// e2e suite and the demo use it to give every node its own address, as pods
// have: addresses outside 127.0.0.0/8 can be registered as endpoints of a
// Service (the API server refuses loopback ones) and CIDR rules can tell
// the nodes apart, while all traffic stays inside the namespace.
//
// It needs unshare(1) and ip(8) (util-linux and iproute2) and either root or
// unprivileged user namespaces (then it maps the caller to root inside).
package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// envInside marks the re-executed program, so that it sets the namespace up
// instead of creating another one.
const envInside = "PEERMESH_NETNS_INSIDE"

// The addresses the e2e suite, the monitoring test and the demo give out in
// their namespace: kube-apiserver's advertise address (it binds 127.0.0.1,
// but refuses to start without an address to advertise when there is no
// default route) and node i's address, like a pod's.
const APIServerAddr = "10.244.0.1"

// NodeAddr is the address of node i: 10.244.0.(10+i).
func NodeAddr(i int) string { return fmt.Sprintf("10.244.0.%d", 10+i) }

// Addrs returns APIServerAddr and the addresses of nodes 0 to nodes-1, as
// /32 prefixes for Enter.
func Addrs(nodes int) []netip.Prefix {
	out := []netip.Prefix{netip.MustParsePrefix(APIServerAddr + "/32")}
	for i := range nodes {
		out = append(out, netip.MustParsePrefix(NodeAddr(i)+"/32"))
	}
	return out
}

// Inside reports whether the program runs in the namespace Enter created.
func Inside() bool { return os.Getenv(envInside) == "1" }

// Available reports whether Enter can work here: it creates a network
// namespace (with a user namespace when not root) and runs true(1) in it.
func Available() error {
	if Inside() {
		return nil
	}
	if err := lookTools(); err != nil {
		return err
	}
	if out, err := exec.Command("unshare", append(unshareArgs(), "--", "true")...).CombinedOutput(); err != nil {
		return fmt.Errorf("netns: cannot create a network namespace (needs root or unprivileged user namespaces): %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lookTools checks that unshare(1) and ip(8) are installed.
func lookTools() error {
	if _, err := exec.LookPath("unshare"); err != nil {
		return fmt.Errorf("netns: unshare (util-linux) is needed to create a network namespace: %w", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netns: ip (iproute2) is needed to set up the network namespace: %w", err)
	}
	return nil
}

func unshareArgs() []string {
	if os.Geteuid() != 0 {
		return []string{"--net", "--map-root-user"} // an unprivileged user namespace
	}
	return []string{"--net"}
}

// Enter makes sure the program runs inside a new network namespace whose
// loopback interface is up and carries addrs.
//
// Outside the namespace it runs the program again inside one, with the same
// arguments, environment, working directory and standard streams, waits for
// it, and returns inside=false with its exit code: the caller exits with it.
// Inside, it sets up the interface and returns inside=true: the caller goes
// on with its work.
func Enter(addrs []netip.Prefix) (inside bool, code int, err error) {
	if Inside() {
		return true, 0, setup(addrs)
	}
	if err := lookTools(); err != nil {
		return false, 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return false, 0, fmt.Errorf("netns: finding this program: %w", err)
	}
	args := append(append(unshareArgs(), "--", self), os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInside+"=1")
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return false, 0, nil
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return false, exit.ExitCode(), nil
	default:
		return false, 0, fmt.Errorf("netns: running %s in a new network namespace (needs root or unprivileged user namespaces): %w", self, err)
	}
}

// setup brings lo up and adds addrs to it.
func setup(addrs []netip.Prefix) error {
	if err := ip("link", "set", "lo", "up"); err != nil {
		return err
	}
	for _, a := range addrs {
		if err := ip("addr", "add", a.String(), "dev", "lo"); err != nil {
			return err
		}
	}
	return nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
