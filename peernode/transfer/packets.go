package transfer

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/google/uuid"

	"github.com/peermesh/peermesh/peernode/wire"
)

// Packet types of file transfer, in the data-distribution range 0x20-0x3F of
// docs/protocol.md (section 9 gives every byte). Like every packet type they
// are append-only: the numbers are the wire format.
const (
	// TypeFileOffer (sender to receiver) proposes a file: its name, size,
	// SHA-256 and the chunk size and window the sender will use.
	TypeFileOffer = wire.TypeFileOffer
	// TypeFileChunk (sender to receiver) carries the bytes of a file at an
	// offset.
	TypeFileChunk = wire.TypeFileChunk
	// TypeFileAck (receiver to sender) accepts an offer (offset 0) and then
	// reports how many bytes have been received and written contiguously.
	TypeFileAck = wire.TypeFileAck
	// TypeFileResult (receiver to sender) ends a transfer: success once the
	// file is verified and stored, or the reason it failed or was refused.
	TypeFileResult = wire.TypeFileResult
	// TypeFileAbort (sender to receiver) ends a transfer the sender gives up.
	TypeFileAbort = wire.TypeFileAbort
)

// Limits of the transfer packets. Decoders reject larger values with
// wire.ErrMalformed; Validate checks them before a packet is sent.
const (
	// MaxNameLen bounds FileOffer.Name, the longest file name of common
	// file systems.
	MaxNameLen = 255
	// MaxChunkSize bounds FileOffer.ChunkSize and the data of one
	// FileChunk, which keeps a chunk frame (24 + 1 MiB bytes) well below
	// the default maximum frame size of 4 MiB.
	MaxChunkSize = 1 << 20
	// MaxDetailLen bounds FileResult.Detail and FileAbort.Reason.
	MaxDetailLen = wire.MaxReasonLen
)

// Fixed sizes of the layouts, in bytes.
const (
	idSize          = 16
	offerFixedSize  = idSize + 8 + 4 + 4 + 32 // before the Name string
	chunkHeaderSize = idSize + 8              // before the data
	ackSize         = idSize + 8
)

// ID identifies a transfer: a random (version 4) UUID chosen by the sender,
// unique per sender and receiver. The zero ID is never valid.
type ID [idSize]byte

// NewID returns a random transfer ID.
func NewID() ID { return ID(uuid.New()) }

// ParseID parses the textual UUID form of an ID.
func ParseID(s string) (ID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("transfer: invalid ID %q: %w", s, err)
	}
	return ID(u), nil
}

// String returns the UUID form, e.g. "6ba7b810-9dad-11d1-80b4-00c04fd430c8".
func (id ID) String() string { return uuid.UUID(id).String() }

// IsZero reports whether id is the (invalid) zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// Compile-time checks: every transfer packet can be sent on a channel as is.
var (
	_ wire.Packet = Offer{}
	_ wire.Packet = Chunk{}
	_ wire.Packet = Ack{}
	_ wire.Packet = Result{}
	_ wire.Packet = Abort{}
)

// Offer is a FileOffer: the sender proposes a file.
type Offer struct {
	ID ID
	// Size is the file's size in bytes.
	Size uint64
	// ChunkSize is the data length of every FileChunk but the last (which
	// carries the rest); 1 to MaxChunkSize.
	ChunkSize uint32
	// Window is the most bytes the sender keeps unacknowledged; at least
	// ChunkSize. The receiver acknowledges often enough for it (see
	// docs/transfer.md) and may refuse a window it cannot buffer.
	Window uint32
	// SHA256 is the digest of the whole file, which the receiver checks
	// over the assembled file before storing it.
	SHA256 [32]byte
	// Name is the file's base name, at most MaxNameLen bytes of UTF-8.
	// The wire layer checks only length and encoding; the receiver
	// refuses names that ValidateName rejects.
	Name string
}

// Type returns TypeFileOffer.
func (Offer) Type() wire.Type { return TypeFileOffer }

// AppendPayload appends the encoded payload to dst.
func (o Offer) AppendPayload(dst []byte) []byte {
	dst = append(dst, o.ID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, o.Size)
	dst = binary.BigEndian.AppendUint32(dst, o.ChunkSize)
	dst = binary.BigEndian.AppendUint32(dst, o.Window)
	dst = append(dst, o.SHA256[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(o.Name)))
	return append(dst, o.Name...)
}

// Validate returns an error wrapping wire.ErrMalformed if DecodeOffer would
// reject the encoding of o.
func (o Offer) Validate() error {
	if o.ID.IsZero() {
		return malformed("FileOffer", "ID", "zero transfer ID")
	}
	if err := o.checkSizes(); err != nil {
		return err
	}
	return checkString("FileOffer", "Name", o.Name, MaxNameLen)
}

func (o Offer) checkSizes() error {
	if o.ChunkSize == 0 || o.ChunkSize > MaxChunkSize {
		return malformed("FileOffer", "ChunkSize", "%d is outside 1..%d", o.ChunkSize, MaxChunkSize)
	}
	if o.Window < o.ChunkSize {
		return malformed("FileOffer", "Window", "%d is below the chunk size %d", o.Window, o.ChunkSize)
	}
	return nil
}

// DecodeOffer decodes a FileOffer payload.
func DecodeOffer(b []byte) (Offer, error) {
	d := newDecoder("FileOffer", b)
	var o Offer
	o.ID = d.id()
	o.Size = d.Uint64("Size")
	o.ChunkSize = d.Uint32("ChunkSize")
	o.Window = d.Uint32("Window")
	copy(o.SHA256[:], d.Fixed("SHA256", 32))
	o.Name = d.String("Name", MaxNameLen)
	if err := d.Finish(); err != nil {
		return Offer{}, err
	}
	if err := o.checkSizes(); err != nil {
		return Offer{}, err
	}
	return o, nil
}

// Chunk is a FileChunk: Data are the file's bytes at Offset.
type Chunk struct {
	ID     ID
	Offset uint64
	// Data is 1 to MaxChunkSize bytes. A decoded Data aliases the payload.
	Data []byte
}

// Type returns TypeFileChunk.
func (Chunk) Type() wire.Type { return TypeFileChunk }

// AppendPayload appends the encoded payload to dst.
func (c Chunk) AppendPayload(dst []byte) []byte {
	dst = append(dst, c.ID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, c.Offset)
	return append(dst, c.Data...)
}

// Validate returns an error wrapping wire.ErrMalformed if DecodeChunk would
// reject the encoding of c.
func (c Chunk) Validate() error {
	if c.ID.IsZero() {
		return malformed("FileChunk", "ID", "zero transfer ID")
	}
	return checkChunkData(c.Offset, len(c.Data))
}

func checkChunkData(offset uint64, n int) error {
	if n == 0 || n > MaxChunkSize {
		return malformed("FileChunk", "Data", "length %d is outside 1..%d", n, MaxChunkSize)
	}
	if offset > math.MaxUint64-uint64(n) {
		return malformed("FileChunk", "Offset", "%d + %d overflows 64 bits", offset, n)
	}
	return nil
}

// DecodeChunk decodes a FileChunk payload. Data aliases b.
func DecodeChunk(b []byte) (Chunk, error) {
	d := newDecoder("FileChunk", b)
	var c Chunk
	c.ID = d.id()
	c.Offset = d.Uint64("Offset")
	c.Data = d.Rest()
	if err := d.Finish(); err != nil {
		return Chunk{}, err
	}
	if err := checkChunkData(c.Offset, len(c.Data)); err != nil {
		return Chunk{}, err
	}
	return c, nil
}

// Ack is a FileAck: the receiver has received and written the first Offset
// bytes of the file. Offset 0, the first Ack, accepts the offer.
type Ack struct {
	ID     ID
	Offset uint64
}

// Type returns TypeFileAck.
func (Ack) Type() wire.Type { return TypeFileAck }

// AppendPayload appends the encoded payload to dst.
func (a Ack) AppendPayload(dst []byte) []byte {
	dst = append(dst, a.ID[:]...)
	return binary.BigEndian.AppendUint64(dst, a.Offset)
}

// Validate returns an error wrapping wire.ErrMalformed for a zero ID.
func (a Ack) Validate() error {
	if a.ID.IsZero() {
		return malformed("FileAck", "ID", "zero transfer ID")
	}
	return nil
}

// DecodeAck decodes a FileAck payload (exactly 24 bytes).
func DecodeAck(b []byte) (Ack, error) {
	d := newDecoder("FileAck", b)
	var a Ack
	a.ID = d.id()
	a.Offset = d.Uint64("Offset")
	if err := d.Finish(); err != nil {
		return Ack{}, err
	}
	return a, nil
}

// Result is a FileResult: how a transfer ended on the receiver. Code OK
// means the file was verified and stored; Detail then holds the name it was
// stored under (which differs from the offered one when that was taken).
// Any other code is a failure or a refusal, and Detail says why.
type Result struct {
	ID     ID
	Code   Code
	Detail string
}

// Type returns TypeFileResult.
func (Result) Type() wire.Type { return TypeFileResult }

// AppendPayload appends the encoded payload to dst.
func (r Result) AppendPayload(dst []byte) []byte {
	return appendEnd(dst, r.ID, r.Code, r.Detail)
}

// Validate returns an error wrapping wire.ErrMalformed if DecodeResult would
// reject the encoding of r.
func (r Result) Validate() error { return checkEnd("FileResult", "Detail", r.ID, r.Detail) }

// DecodeResult decodes a FileResult payload.
func DecodeResult(b []byte) (Result, error) {
	id, code, detail, err := decodeEnd("FileResult", "Detail", b)
	if err != nil {
		return Result{}, err
	}
	return Result{ID: id, Code: code, Detail: detail}, nil
}

// Abort is a FileAbort: the sender gives the transfer up. Code is never OK.
type Abort struct {
	ID     ID
	Code   Code
	Reason string
}

// Type returns TypeFileAbort.
func (Abort) Type() wire.Type { return TypeFileAbort }

// AppendPayload appends the encoded payload to dst.
func (a Abort) AppendPayload(dst []byte) []byte {
	return appendEnd(dst, a.ID, a.Code, a.Reason)
}

// Validate returns an error wrapping wire.ErrMalformed if DecodeAbort would
// reject the encoding of a.
func (a Abort) Validate() error {
	if a.Code == CodeOK {
		return malformed("FileAbort", "Code", "an abort cannot carry code OK")
	}
	return checkEnd("FileAbort", "Reason", a.ID, a.Reason)
}

// DecodeAbort decodes a FileAbort payload.
func DecodeAbort(b []byte) (Abort, error) {
	id, code, reason, err := decodeEnd("FileAbort", "Reason", b)
	if err != nil {
		return Abort{}, err
	}
	if code == CodeOK {
		return Abort{}, malformed("FileAbort", "Code", "an abort cannot carry code OK")
	}
	return Abort{ID: id, Code: code, Reason: reason}, nil
}

// FileResult and FileAbort share one layout: ID, uint16 code, string.
func appendEnd(dst []byte, id ID, code Code, text string) []byte {
	dst = append(dst, id[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	dst = binary.AppendUvarint(dst, uint64(len(text)))
	return append(dst, text...)
}

func checkEnd(packet, field string, id ID, text string) error {
	if id.IsZero() {
		return malformed(packet, "ID", "zero transfer ID")
	}
	return checkString(packet, field, text, MaxDetailLen)
}

func decodeEnd(packet, field string, b []byte) (ID, Code, string, error) {
	d := newDecoder(packet, b)
	id := d.id()
	code := Code(d.Uint16("Code"))
	text := d.String(field, MaxDetailLen)
	if err := d.Finish(); err != nil {
		return ID{}, 0, "", err
	}
	return id, code, text, nil
}

// Decode decodes the payload of a transfer packet of type t. It returns an
// error wrapping wire.ErrUnknownType for any other type and
// wire.ErrMalformed for a payload that breaks the format. A Chunk's Data
// aliases payload.
func Decode(t wire.Type, payload []byte) (wire.Packet, error) {
	switch t {
	case TypeFileOffer:
		return boxed(DecodeOffer(payload))
	case TypeFileChunk:
		return boxed(DecodeChunk(payload))
	case TypeFileAck:
		return boxed(DecodeAck(payload))
	case TypeFileResult:
		return boxed(DecodeResult(payload))
	case TypeFileAbort:
		return boxed(DecodeAbort(payload))
	}
	return nil, fmt.Errorf("%w: %v is not a file-transfer packet", wire.ErrUnknownType, t)
}

func boxed[P wire.Packet](p P, err error) (wire.Packet, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}

// decoder is wire's field decoder plus the transfer ID field.
type decoder struct{ *wire.FieldDecoder }

func newDecoder(packet string, b []byte) decoder { return decoder{wire.NewFieldDecoder(packet, b)} }

// malformed and checkString are wire's, named for this package's call sites.
var (
	malformed   = wire.Malformed
	checkString = wire.CheckString
)

func (d decoder) id() ID {
	var id ID
	copy(id[:], d.Fixed("ID", idSize))
	if d.Err() == nil && id.IsZero() {
		d.Fail("ID", "zero transfer ID")
	}
	return id
}
