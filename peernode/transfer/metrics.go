package transfer

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the transfer metrics.
const (
	directionSend    = "send"
	directionReceive = "receive"
	resultSuccess    = "success"
	resultFailure    = "failure"
)

// Metrics are the file-transfer collectors. The node's own metrics live in
// package metrics; these follow the same conventions (prefix
// peermesh_node_, no per-peer labels) and are registered on the Registerer
// of the Config.
type Metrics struct {
	// Transfers counts finished transfers:
	// peermesh_node_file_transfers_total{direction="send|receive",result="success|failure"}.
	// A refused offer counts as a failed transfer of its receiver.
	Transfers *prometheus.CounterVec
	// Bytes counts file bytes: queued to the channel (send) or written to
	// the temporary file (receive):
	// peermesh_node_file_transfer_bytes_total{direction}.
	Bytes *prometheus.CounterVec

	finished [2][2]prometheus.Counter // [direction][result]
	bytes    [2]prometheus.Counter    // [direction]
}

// NewMetrics creates the collectors and registers them on reg (nil: not
// registered). Registering twice on one registry fails.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peermesh_node_file_transfers_total",
			Help: "File transfers finished, by direction (send, receive) and result (success, failure).",
		}, []string{"direction", "result"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peermesh_node_file_transfer_bytes_total",
			Help: "File bytes sent to the channel (send) or written to disk (receive), by direction.",
		}, []string{"direction"}),
	}
	// Pre-declare every series so that rates start at zero.
	for i, d := range []string{directionSend, directionReceive} {
		m.bytes[i] = m.Bytes.WithLabelValues(d)
		for j, r := range []string{resultSuccess, resultFailure} {
			m.finished[i][j] = m.Transfers.WithLabelValues(d, r)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Transfers, m.Bytes} {
			if err := reg.Register(c); err != nil {
				return nil, errors.Join(errors.New("transfer: registering metrics"), err)
			}
		}
	}
	return m, nil
}

func dirIndex(d Direction) int {
	if d == Receive {
		return 1
	}
	return 0
}

func (m *Metrics) finishedTransfer(d Direction, ok bool) {
	r := 1
	if ok {
		r = 0
	}
	m.finished[dirIndex(d)][r].Inc()
}

func (m *Metrics) addBytes(d Direction, n int) { m.bytes[dirIndex(d)].Add(float64(n)) }
