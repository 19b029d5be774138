package channel

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
)

// TestIdleChannelMemory measures what an idle open channel costs: heap
// (channel, buffers, timers, connection) and goroutine stacks. The node's
// target is 10,000 idle channels at no more than 24 KiB each.
func TestIdleChannelMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	const pairs = 500
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := DefaultConfig(hello("n"))
	opened := make(chan struct{}, 2*pairs)
	hooks := Hooks{OnStateChange: func(_ *PeerChannel, _, to peernode.ChannelState) {
		if to == peernode.StateOpen {
			opened <- struct{}{}
		}
	}}

	before := memInUse()
	for range pairs {
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				t.Error(err)
			}
			accepted <- c
		}()
		ca, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cb := <-accepted
		start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), cfg, hooks))
		start(t, New(cb, peernode.NewGenericPeer(cb, peernode.Inbound), cfg, hooks))
	}
	for range 2 * pairs {
		select {
		case <-opened:
		case <-time.After(waitTimeout):
			t.Fatal("channels did not open")
		}
	}
	perChannel := float64(memInUse()-before) / (2 * pairs)
	t.Logf("idle open channel: %.1f KiB (heap and goroutine stacks, connection included)", perChannel/1024)
	if perChannel > 24<<10 {
		t.Errorf("an idle channel takes %.1f KiB, over the 24 KiB budget", perChannel/1024)
	}
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
