package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/wire"
)

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }

// channelPair connects two PeerChannels over a loopback TCP connection, with
// onPacket as the receiving side's handler; both are running and open when
// it returns. stop closes both and waits for them.
func channelPair(onPacket func(context.Context, *channel.PeerChannel, wire.Packet)) (a, b *channel.PeerChannel, stop func(), err error) {
	ca, cb, err := loopbackPair()
	if err != nil {
		return nil, nil, nil, err
	}
	mk := func(conn net.Conn, id string, dir peernode.Direction, h channel.Hooks) *channel.PeerChannel {
		cfg := channel.DefaultConfig(wire.Hello{ProtocolVersion: wire.ProtocolVersion, NodeID: id})
		cfg.KeepaliveInterval, cfg.IdleTimeout = 0, 0
		return channel.New(conn, peernode.NewGenericPeer(conn, dir), cfg, h)
	}
	opened := make(chan struct{}, 2)
	onState := func(_ *channel.PeerChannel, _, to peernode.ChannelState) {
		if to == peernode.StateOpen {
			opened <- struct{}{}
		}
	}
	a = mk(ca, "bench-a", peernode.Outbound, channel.Hooks{OnStateChange: onState, OnPacket: onPacket})
	b = mk(cb, "bench-b", peernode.Inbound, channel.Hooks{OnStateChange: onState, OnPacket: onPacket})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	for _, c := range []*channel.PeerChannel{a, b} {
		go func() { _ = c.Run(ctx); done <- struct{}{} }()
	}
	for range 2 {
		select {
		case <-opened:
		case <-time.After(10 * time.Second):
			cancel()
			return nil, nil, nil, fmt.Errorf("channels did not open")
		}
	}
	stop = func() {
		cancel()
		<-done
		<-done
	}
	return a, b, stop, nil
}

func benchCodec(int) error {
	body := bytes.Repeat([]byte{0xab}, 64)
	enc := testing.Benchmark(func(b *testing.B) {
		buf := make([]byte, 0, 128)
		b.ReportAllocs()
		for b.Loop() {
			buf = wire.AppendFrame(buf[:0], wire.Data{Format: wire.DataFormatMisc, Body: body})
		}
	})
	frame := wire.AppendFrame(nil, wire.Data{Format: wire.DataFormatMisc, Body: body})
	dec := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h, err := wire.ParseHeader(frame, wire.DefaultMaxFrameSize)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := wire.DecodePayload(h.Type, frame[wire.HeaderSize:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	record(result{name: "codec: encode 64 B Data frame", value: fmt.Sprintf("%d ns/op, %d allocs", enc.NsPerOp(), enc.AllocsPerOp()), baseline: "-", ratio: "-", target: "no allocation", verdict: verdict(enc.AllocsPerOp() == 0)})
	record(result{name: "codec: decode 64 B Data frame", value: fmt.Sprintf("%d ns/op, %d allocs", dec.NsPerOp(), dec.AllocsPerOp()), baseline: "-", ratio: "-", target: "-", verdict: "-"})
	return nil
}

// benchBulk sends 64 KiB Data packets one way on one channel.
func benchBulk(scale int) error {
	const chunk = 64 << 10
	total := (2 << 30) / scale
	raw, err := rawBulk(total, chunk)
	if err != nil {
		return err
	}
	var got atomic.Int64
	done := make(chan struct{})
	a, _, stop, err := channelPair(func(_ context.Context, _ *channel.PeerChannel, p wire.Packet) {
		if d, ok := p.(wire.Data); ok && got.Add(int64(len(d.Body))) >= int64(total) {
			close(done)
		}
	})
	if err != nil {
		return err
	}
	defer stop()
	body := make([]byte, chunk)
	ctx := context.Background()
	start := time.Now()
	for sent := 0; sent < total; sent += chunk {
		if err := channel.SendPacket(ctx, a, wire.Data{Format: wire.DataFormatMisc, Body: body}); err != nil {
			return err
		}
	}
	<-done
	pm := float64(total) / time.Since(start).Seconds()
	ratio := pm / raw
	record(result{name: "bulk: one channel, 64 KiB Data", value: mbps(pm), baseline: "raw TCP " + mbps(raw), ratio: fmt.Sprintf("%.0f %%", 100*ratio), target: ">= 80 %", verdict: verdict(ratio >= 0.8)})
	return nil
}

// benchSmall sends 64-byte Data packets one way on one channel.
func benchSmall(scale int) error {
	n := 5_000_000 / scale
	base, err := framedSmall(n, 64)
	if err != nil {
		return err
	}
	var got atomic.Int64
	done := make(chan struct{})
	a, _, stop, err := channelPair(func(context.Context, *channel.PeerChannel, wire.Packet) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return err
	}
	defer stop()
	body := make([]byte, 64-4) // 64 B payload: the format byte counts too
	ctx := context.Background()
	start := time.Now()
	for range n {
		if err := channel.SendPacket(ctx, a, wire.Data{Format: wire.DataFormatMisc, Body: body}); err != nil {
			return err
		}
	}
	<-done
	rate := float64(n) / time.Since(start).Seconds()
	record(result{name: "small: 64 B messages, one channel", value: fmt.Sprintf("%.2f M msg/s", rate/1e6), baseline: fmt.Sprintf("framed TCP %.2f M msg/s", base/1e6), ratio: fmt.Sprintf("%.0f %%", 100*rate/base), target: ">= 1 M msg/s", verdict: verdict(rate >= 1e6)})
	return nil
}

// benchRTT measures request/response round trips of a 64-byte Message.
func benchRTT(scale int) error {
	n := 20_000 / scale
	rawRTT, err := rawRoundTrips(n, 64)
	if err != nil {
		return err
	}
	reply := make(chan struct{}, 1)
	a, _, stop, err := channelPair(func(ctx context.Context, c *channel.PeerChannel, p wire.Packet) {
		m := p.(wire.Message)
		if c.Peer().Direction() == peernode.Inbound {
			_ = channel.SendPacket(ctx, c, m) // echo
			return
		}
		reply <- struct{}{}
	})
	if err != nil {
		return err
	}
	defer stop()
	msg := wire.Message{Text: string(bytes.Repeat([]byte("x"), 64))}
	ctx := context.Background()
	rtts := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := channel.SendPacket(ctx, a, msg); err != nil {
			return err
		}
		<-reply
		rtts = append(rtts, time.Since(start))
	}
	p50, p99 := percentile(rtts, 50), percentile(rtts, 99)
	r50, r99 := percentile(rawRTT, 50), percentile(rawRTT, 99)
	ratio := float64(p50) / float64(r50)
	record(result{name: "round trip p50 (64 B)", value: p50.String(), baseline: "raw TCP " + r50.String(), ratio: fmt.Sprintf("%.2fx", ratio), target: "<= 1.5x", verdict: verdict(ratio <= 1.5)})
	record(result{name: "round trip p99 (64 B)", value: p99.String(), baseline: "raw TCP " + r99.String(), ratio: fmt.Sprintf("%.2fx", float64(p99)/float64(r99)), target: "-", verdict: "-"})
	return nil
}
