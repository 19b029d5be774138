package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/transfer"
	"github.com/peermesh/peermesh/peernode/wire"
)

// benchTransfer sends a file between two nodes (chunked, windowed, SHA-256
// verified by the receiver) and compares it with a raw TCP copy of the same
// file, file to socket to file, in the same run; a second baseline hashes on
// both ends like the transfer does.
func benchTransfer(scale int) error {
	size := (256 << 20) / scale
	dir, err := os.MkdirTemp("", "peermesh-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "payload.bin")
	if err := writeRandomFile(src, size); err != nil {
		return err
	}
	raw, err := rawFileCopy(src, filepath.Join(dir, "raw.bin"), false)
	if err != nil {
		return err
	}
	rawHashed, err := rawFileCopy(src, filepath.Join(dir, "rawhash.bin"), true)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mk := func(id string, seeds []string, recv string) (*node.Node, *transfer.Service, chan error, error) {
		n, err := node.New(node.Config{ID: id, ListenAddr: "127.0.0.1:0", Seeds: seeds, Channel: channel.DefaultConfig(wire.Hello{})})
		if err != nil {
			return nil, nil, nil, err
		}
		svc, err := transfer.New(n, transfer.Config{ReceiveDir: recv, NoSync: true})
		if err != nil {
			return nil, nil, nil, err
		}
		done := make(chan error, 2)
		go func() { done <- n.Run(ctx) }()
		go func() { done <- svc.Run(ctx) }()
		return n, svc, done, nil
	}
	recvNode, _, doneA, err := mk("bench-recv", nil, filepath.Join(dir, "received"))
	if err != nil {
		return err
	}
	sendNode, sender, doneB, err := mk("bench-send", []string{recvNode.Addr().String()}, "")
	if err != nil {
		return err
	}
	defer func() {
		cancel()
		for range 2 {
			for _, c := range []chan error{doneA, doneB} {
				if err := <-c; err != nil {
					fmt.Fprintln(os.Stderr, "bench: transfer node:", err)
				}
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(sendNode.TrustedPeerChannels()) == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("the two nodes did not connect")
		}
		time.Sleep(10 * time.Millisecond) // polling the condition before the measurement starts
	}
	start := time.Now()
	tr, err := sender.Send(ctx, "bench-recv", src)
	if err != nil {
		return err
	}
	if err := tr.Wait(ctx); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	rate := float64(size) / time.Since(start).Seconds()
	record(result{name: fmt.Sprintf("file transfer, %d MiB, SHA-256 verified", size>>20), value: mbps(rate),
		baseline: fmt.Sprintf("raw TCP copy %s (hashing both ends %s)", mbps(raw), mbps(rawHashed)),
		ratio:    fmt.Sprintf("%.0f %% (%.0f %%)", 100*rate/raw, 100*rate/rawHashed), target: "reported", verdict: "-"})
	return nil
}

func writeRandomFile(path string, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, int64(size)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rawFileCopy copies src over a loopback TCP connection into dst and returns
// bytes per second; with hash, both ends also compute the SHA-256.
func rawFileCopy(src, dst string, hash bool) (float64, error) {
	c, s, err := loopbackPair()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	defer s.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return 0, err
	}
	recvDone := make(chan error, 1)
	start := time.Now()
	go func() {
		var w io.Writer = out
		if hash {
			w = io.MultiWriter(out, sha256.New())
		}
		_, err := io.CopyN(w, s, st.Size())
		recvDone <- err
	}()
	var r io.Reader = in
	if hash {
		r = io.TeeReader(in, sha256.New())
	}
	if _, err := io.Copy(c, r); err != nil {
		return 0, err
	}
	if err := <-recvDone; err != nil {
		return 0, err
	}
	return float64(st.Size()) / time.Since(start).Seconds(), nil
}
