//go:build !unix

package channel

import "net"

// directWriter writes what the socket buffer takes at once, and no more.
type directWriter interface {
	tryWrite(b []byte) (int, error)
}

// newDirectWriter returns nil: without non-blocking writes every frame goes
// through the writer goroutine.
func newDirectWriter(net.Conn) directWriter { return nil }
