package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// normalize returns addrs sorted and without duplicates, in a new slice.
func normalize(addrs []string) []string {
	out := slices.Clone(addrs)
	slices.Sort(out)
	return slices.Compact(out)
}

// checkHostPort reports whether addr is "host:port" with a non-empty host and
// a port in 1-65535.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if !validHost(host) {
		return fmt.Errorf("%q: host is neither an IP address nor a DNS name", addr)
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	return nil
}

func parsePort(s string) (uint16, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port %q: want 1-65535", s)
	}
	return uint16(p), nil
}

// validHost reports whether host is an IP literal (with an optional IPv6
// zone) or made of DNS name characters.
func validHost(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	for _, c := range []byte(host) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}
