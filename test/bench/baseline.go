package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sort"
	"time"
)

// The baselines measure what the loopback itself can do, in the same run as
// peernode, so ratios are fair on whatever machine runs `make bench`.

// loopbackPair returns both ends of a fresh TCP connection on 127.0.0.1.
func loopbackPair() (client, server net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	r := <-accepted
	if r.err != nil {
		client.Close()
		return nil, nil, r.err
	}
	return client, r.c, nil
}

// rawBulk copies total bytes in writes of chunk bytes over raw TCP and
// returns the throughput in bytes per second.
func rawBulk(total, chunk int) (float64, error) {
	c, s, err := loopbackPair()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, s, int64(total))
		done <- err
	}()
	buf := make([]byte, chunk)
	start := time.Now()
	for sent := 0; sent < total; sent += chunk {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := <-done; err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// framedSmall sends n messages of size bytes, each with a 4-byte length
// prefix, through a bufio.Writer (flushed when done), and reads them back as
// frames: the fair baseline for a framed protocol's small-message rate.
func framedSmall(n, size int) (float64, error) {
	c, s, err := loopbackPair()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(s, 64<<10)
		var hdr [4]byte
		for i := 0; i < n; i++ {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				done <- err
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(r, body); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	w := bufio.NewWriterSize(c, 64<<10)
	msg := make([]byte, 4+size)
	binary.BigEndian.PutUint32(msg, uint32(size))
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := w.Write(msg); err != nil {
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if err := <-done; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// rawRoundTrips measures n ping-pong round trips of size bytes over raw TCP.
func rawRoundTrips(n, size int) ([]time.Duration, error) {
	c, s, err := loopbackPair()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	defer s.Close()
	go func() {
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, size)
	rtts := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		rtts = append(rtts, time.Since(start))
	}
	return rtts, nil
}

// percentile returns the p-th percentile (0..100) of ds, sorting ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

func mbps(bytesPerSec float64) string { return fmt.Sprintf("%.0f MiB/s", bytesPerSec/(1<<20)) }
