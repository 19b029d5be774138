package transfer

import (
	"errors"
	"strconv"
)

// Code says how a transfer ended (FileResult.Code, FileAbort.Code). The list
// is append-only: the numbers are the wire format. Receivers treat a code
// they do not know as a failure.
type Code uint16

// Transfer codes.
const (
	CodeOK            Code = 0  // verified and stored (FileResult only)
	CodeCancelled     Code = 1  // a user cancelled the transfer
	CodeNotReceiving  Code = 2  // the receiver does not accept files
	CodeInvalidName   Code = 3  // the offered name is not a safe base name
	CodeTooLarge      Code = 4  // the file exceeds the receiver's maximum size
	CodeBusy          Code = 5  // the receiver runs its maximum of incoming transfers
	CodeHashMismatch  Code = 6  // the assembled file's SHA-256 differs from the offer's
	CodeProtocolError Code = 7  // offset gap, wrong chunk length, window exceeded, duplicate ID...
	CodeTimeout       Code = 8  // no progress within the idle timeout
	CodeIOError       Code = 9  // reading the file (sender) or storing it (receiver) failed
	CodeShutdown      Code = 10 // the node is stopping
	CodeRejected      Code = 11 // the offer's chunk size or window is outside the receiver's limits
	// CodeDisconnected is never sent: the channel to the peer closed, so
	// nothing can be. It is how the local side reports that cause.
	CodeDisconnected Code = 12
)

var codeNames = [...]string{
	CodeOK:            "ok",
	CodeCancelled:     "cancelled",
	CodeNotReceiving:  "not_receiving",
	CodeInvalidName:   "invalid_name",
	CodeTooLarge:      "too_large",
	CodeBusy:          "busy",
	CodeHashMismatch:  "hash_mismatch",
	CodeProtocolError: "protocol_error",
	CodeTimeout:       "timeout",
	CodeIOError:       "io_error",
	CodeShutdown:      "shutdown",
	CodeRejected:      "rejected",
	CodeDisconnected:  "disconnected",
}

// String returns the code's name ("hash_mismatch"), or "code_42".
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code_" + strconv.Itoa(int(c))
}

// Error is how a transfer failed: a code, a detail for people, and whether
// the peer reported it (a FileResult or FileAbort) or this side decided.
//
// errors.Is matches an Error against the sentinels below by code alone, so
// callers write errors.Is(t.Err(), transfer.ErrHashMismatch).
type Error struct {
	Code   Code
	Reason string
	Remote bool
}

// Error formats the failure, e.g. "transfer: hash_mismatch (reported by the
// peer): sha256 of the assembled file is ..., offered ...".
func (e *Error) Error() string {
	s := "transfer: " + e.Code.String()
	if e.Remote {
		s += " (reported by the peer)"
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// describe is the Reason of a transfer's Info: the code and the detail.
func (e *Error) describe() string {
	s := e.Code.String()
	if e.Remote {
		s += " (peer)"
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Sentinels for errors.Is, one per failure code.
var (
	ErrCancelled    = &Error{Code: CodeCancelled}
	ErrNotReceiving = &Error{Code: CodeNotReceiving}
	ErrInvalidName  = &Error{Code: CodeInvalidName}
	ErrTooLarge     = &Error{Code: CodeTooLarge}
	ErrBusy         = &Error{Code: CodeBusy}
	ErrHashMismatch = &Error{Code: CodeHashMismatch}
	ErrProtocol     = &Error{Code: CodeProtocolError}
	ErrTimeout      = &Error{Code: CodeTimeout}
	ErrIO           = &Error{Code: CodeIOError}
	ErrShutdown     = &Error{Code: CodeShutdown}
	ErrRejected     = &Error{Code: CodeRejected}
	ErrDisconnected = &Error{Code: CodeDisconnected}
)

// Errors of the Service's methods.
var (
	// ErrNotRunning is returned when the Service's Run is not running.
	ErrNotRunning = errors.New("transfer: service not running")
	// ErrNoPeers is returned by Broadcast when no peer is trusted.
	ErrNoPeers = errors.New("transfer: no trusted peer to send to")
	// ErrNotRegularFile is returned by Send for a directory, device, etc.
	ErrNotRegularFile = errors.New("transfer: not a regular file")
	// ErrFileData is returned by SendData and BroadcastData for
	// wire.DataFormatFile: files travel as verified transfers (Send).
	ErrFileData = errors.New("transfer: files are sent with Send, not as Data packets")
)

func newError(code Code, reason string) *Error { return &Error{Code: code, Reason: reason} }
