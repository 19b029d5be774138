package transfer_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/peermesh/peermesh/peernode/transfer"
)

const benchSize = 100 << 20

// BenchmarkTransfer measures a 100 MiB file transfer between two nodes on
// loopback: hashing, chunks within the window, writing, and verification
// (without fsync, like the raw copy below). Compare its MB/s with
// BenchmarkRawTCPCopy's in the same run.
func BenchmarkTransfer(b *testing.B) {
	for _, chunk := range []int{64 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("chunk=%dKiB", chunk>>10), func(b *testing.B) {
			a, r := pair(b, peerOptions{transfer: func(c *transfer.Config) { c.ChunkSize = chunk }}, peerOptions{})
			path, _ := writeRandomFile(b, b.TempDir(), "bench.bin", benchSize, 11)
			b.SetBytes(benchSize)
			b.ResetTimer()
			for range b.N {
				tr, err := a.svc.Send(context.Background(), "b", path)
				if err != nil {
					b.Fatal(err)
				}
				if err := tr.Wait(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := os.Remove(filepath.Join(r.dir, tr.StoredAs())); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRawTCPCopy is the baseline: the same file copied from disk to a
// loopback TCP connection and from it to a new file with io.Copy (which
// uses sendfile and splice: no copy through user space). The sha256 variant
// adds what a verified transfer must do at least: the sender hashes the
// file before sending it, the receiver hashes the file it wrote.
func BenchmarkRawTCPCopy(b *testing.B) {
	for _, hashed := range []bool{false, true} {
		name := "plain"
		if hashed {
			name = "sha256"
		}
		b.Run(name, func(b *testing.B) { benchRawCopy(b, hashed) })
	}
}

func benchRawCopy(b *testing.B, hashed bool) {
	dir := b.TempDir()
	path, _ := writeRandomFile(b, dir, "bench.bin", benchSize, 11)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	hashFile := func(p string) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyBuffer(sha256.New(), f, make([]byte, 1<<20))
		return err
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := range b.N {
		out := filepath.Join(dir, fmt.Sprintf("out-%d", i))
		done := make(chan error, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			defer conn.Close()
			f, err := os.Create(out)
			if err != nil {
				done <- err
				return
			}
			_, err = io.Copy(f, conn)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil && hashed {
				err = hashFile(out)
			}
			done <- err
		}()
		if hashed {
			if err := hashFile(path); err != nil {
				b.Fatal(err)
			}
		}
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(conn, in); err != nil {
			b.Fatal(err)
		}
		in.Close()
		conn.Close()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(out)
		b.StartTimer()
	}
}
