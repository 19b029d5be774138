// Package transfer is peermesh's data distribution (P2PNet's
// DistributionHandler): verified, flow-controlled file transfers between
// nodes, broadcast of files to every trusted peer, and helpers to send Task
// and Misc data.
//
// A Service is built on a node with New, which registers the handlers of
// the file-transfer packets (types 0x20-0x24, docs/protocol.md section 9),
// and runs with Run beside the node. Send and Broadcast start transfers and
// return Transfers, which report progress (Progress), completion (Done,
// Err) and can be cancelled; Transfers lists running and recent transfers
// in both directions.
//
// A transfer is a FileOffer (name, size, SHA-256, chunk size, window), an
// Ack accepting it, FileChunks sent in order within a window of
// unacknowledged bytes shared by every transfer on the channel, Acks from
// the receiver as it writes, and a FileResult once the receiver has
// verified the SHA-256 of the assembled file, read back from disk, and
// linked it into its receive directory under a name that did not exist.
// Anything else (a hash mismatch, a gap, a timeout, a disconnect, an abort)
// fails the transfer on both sides and removes the temporary file, so a
// file under its final name is always complete and verified. The protocol,
// limits and failure modes are described in docs/transfer.md.
//
// Goroutines: each transfer is owned by one goroutine started by the
// service and joined by Run. Packet handlers run on the channel's reader
// goroutine and only hand packets to those goroutines, so neither disk I/O
// nor a full send queue ever blocks a channel's reader.
package transfer
