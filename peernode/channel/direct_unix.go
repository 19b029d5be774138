//go:build unix

package channel

import (
	"errors"
	"net"
	"syscall"
)

// directWriter writes what the socket buffer takes at once, and no more.
type directWriter interface {
	tryWrite(b []byte) (int, error)
}

// rawDirectWriter makes one non-blocking write(2) through the connection's
// RawConn: the netpoller keeps sockets non-blocking, and a callback that
// reports itself done is never made to wait for writability.
type rawDirectWriter struct{ rc syscall.RawConn }

// newDirectWriter returns a directWriter for the TCP and Unix connections of
// package net, and nil for other connections (TLS, pipes), whose bytes are
// not the socket's.
func newDirectWriter(conn net.Conn) directWriter {
	var sc syscall.Conn
	switch c := conn.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rawDirectWriter{rc}
}

func (w rawDirectWriter) tryWrite(b []byte) (int, error) {
	var n int
	var werr error
	err := w.rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := syscall.Write(int(fd), b[n:])
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN):
				return true // the socket is full: the writer takes over
			case err != nil:
				werr = err
				return true
			}
			n += m
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, werr
}
