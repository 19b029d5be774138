package channel

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode/wire"
)

// The targets (docs/benchmarks.md): one channel carries at least 1,000,000
// 64-byte messages per second one way over loopback, reported beside a
// length-prefixed framed TCP baseline with a buffered writer; and bulk 64 KiB
// Data reaches at least 80 % of raw TCP throughput. These benchmarks measure
// both sides of each comparison in the same run:
//
//	go test -run '^$' -bench . -benchtime 2000000x ./peernode/channel/   (64 B)
//	go test -run '^$' -bench 64KiB -benchtime 20000x ./peernode/channel/
//
// They report msg/s (and MB/s through SetBytes) from the first send until the
// receiver has handled the last packet.

// benchPair opens two channels over loopback whose receiving side calls
// onPacket, and waits until both are open.
func benchPair(b *testing.B, onPacket func()) (a *PeerChannel) {
	b.Helper()
	ra, rb := newRecorder(), newRecorder()
	hb := rb.hooks()
	hb.OnPacket = func(context.Context, *PeerChannel, wire.Packet) { onPacket() }
	cfg := DefaultConfig(hello("a"))
	cfgB := DefaultConfig(hello("b"))
	ca, _ := pair(b, cfg, ra.hooks(), cfgB, hb)
	ra.waitOpen(b)
	rb.waitOpen(b)
	return ca.PeerChannel
}

// runChannelBench sends b.N packets with send and waits for the receiver.
func runChannelBench(b *testing.B, frameSize int, send func(ctx context.Context, c *PeerChannel) error) {
	var got atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	c := benchPair(b, func() {
		if got.Add(1) == n {
			close(all)
		}
	})
	ctx := context.Background()
	b.SetBytes(int64(frameSize))
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for range b.N {
		if err := send(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("receiver got %d of %d packets", got.Load(), n)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}

func BenchmarkChannel64B(b *testing.B) {
	body := make([]byte, 64)
	text := string(make([]byte, 64))
	frame := wire.HeaderSize + 1 + 64
	b.Run("Data/SendPacket", func(b *testing.B) {
		runChannelBench(b, frame, func(ctx context.Context, c *PeerChannel) error {
			return SendPacket(ctx, c, wire.Data{Format: wire.DataFormatMisc, Body: body})
		})
	})
	b.Run("Message/SendPacket", func(b *testing.B) {
		runChannelBench(b, wire.HeaderSize+64, func(ctx context.Context, c *PeerChannel) error {
			return SendPacket(ctx, c, wire.Message{Text: text})
		})
	})
	b.Run("Data/Send", func(b *testing.B) { // through the interface: boxes p
		runChannelBench(b, frame, func(ctx context.Context, c *PeerChannel) error {
			return c.Send(ctx, wire.Data{Format: wire.DataFormatMisc, Body: body})
		})
	})
	b.Run("Raw/SendRaw", func(b *testing.B) {
		runChannelBench(b, wire.HeaderSize+64, func(ctx context.Context, c *PeerChannel) error {
			return c.SendRaw(ctx, 0x80, body)
		})
	})
}

func BenchmarkChannel64KiB(b *testing.B) {
	body := make([]byte, 64<<10)
	runChannelBench(b, wire.HeaderSize+1+len(body), func(ctx context.Context, c *PeerChannel) error {
		return SendPacket(ctx, c, wire.Data{Format: wire.DataFormatMisc, Body: body})
	})
}

// BenchmarkFramedTCP64B is the baseline of BenchmarkChannel64B: 64-byte
// frames behind an 8-byte length header, through a 64 KiB bufio.Writer
// flushed once at the end, read with a bufio.Reader into a reused buffer.
func BenchmarkFramedTCP64B(b *testing.B) {
	const size = 64
	w, r := tcpPair(b)
	done := make(chan error, 1)
	n := b.N
	go func() {
		br := bufio.NewReaderSize(r, 64<<10)
		var hdr [wire.HeaderSize]byte
		buf := make([]byte, size)
		for range n {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				done <- err
				return
			}
			if _, err := io.ReadFull(br, buf[:binary.BigEndian.Uint32(hdr[4:])]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	bw := bufio.NewWriterSize(w, 64<<10)
	frame := make([]byte, wire.HeaderSize+size)
	binary.BigEndian.PutUint32(frame[4:], size)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for range b.N {
		if _, err := bw.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "msg/s")
}

// BenchmarkRawTCP64KiB is the baseline of BenchmarkChannel64KiB: 64 KiB
// writes on a bare TCP connection, read into a reused buffer.
func BenchmarkRawTCP64KiB(b *testing.B) {
	const size = 64 << 10
	w, r := tcpPair(b)
	done := make(chan error, 1)
	total := int64(b.N) * size
	go func() {
		buf := make([]byte, size)
		for got := int64(0); got < total; {
			n, err := r.Read(buf)
			if err != nil {
				done <- err
				return
			}
			got += int64(n)
		}
		done <- nil
	}()
	buf := make([]byte, size)
	b.SetBytes(size)
	b.ResetTimer()
	begin := time.Now()
	for range b.N {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "msg/s")
}
