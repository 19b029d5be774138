package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/peermesh/peermesh/peernode/wire"
)

// A writer encodes frames into one reused buffer; a reader splits the stream
// back into frames and decodes them, dropping types it does not know.
func Example() {
	var conn bytes.Buffer // stands in for a TCP connection

	buf := make([]byte, 0, 4096)
	for _, p := range []wire.Packet{
		wire.Hello{ProtocolVersion: wire.ProtocolVersion, NodeID: "n1", MeshName: "default"},
		wire.Message{Text: "hello, peer"},
	} {
		buf = wire.AppendFrame(buf[:0], p)
		conn.Write(buf)
	}
	conn.Write(wire.AppendRawFrame(buf[:0], 0x80, []byte("app-defined")))

	r := wire.NewReader(&conn, wire.DefaultMaxFrameSize)
	for {
		f, err := r.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println("close channel:", err)
			return
		}
		p, err := f.Decode()
		if errors.Is(err, wire.ErrUnknownType) {
			fmt.Println("dropped", f.Header.Type)
			continue
		}
		if err != nil {
			fmt.Println("close channel:", err)
			return
		}
		fmt.Printf("%v %+v\n", p.Type(), p)
	}
	// Output:
	// Hello {ProtocolVersion:1 NodeID:n1 ListenAddr: MeshName:default Capabilities:[]}
	// Message {Text:hello, peer}
	// dropped Unknown(0x80)
}
