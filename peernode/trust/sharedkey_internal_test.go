package trust

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestSharedKeyProofVector pins the MAC input layout documented on
// SharedKey (and in docs/architecture.md). The expected values were
// computed independently (Python's hmac module over the documented bytes).
func TestSharedKeyProofVector(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	nonceI, nonceR := seq(0, 32), seq(32, 32)
	mac := hmac.New(sha256.New, key)
	tests := []struct {
		role             byte
		prover, verifier string
		want             string
	}{
		{roleInitiator, "node-a", "node-b", "dba73880c283c33d10004e7972ca543c4d2b64304909e57bdd83b60c27bc11b1"},
		{roleResponder, "node-b", "node-a", "330fcd6f43d54af26645eecb23c21da7f27f91f05fa73b768677eebce80c8e3d"},
	}
	for _, tt := range tests {
		got := hex.EncodeToString(sharedKeyProof(mac, tt.role, tt.prover, tt.verifier, nonceI, nonceR))
		if got != tt.want {
			t.Errorf("proof(%c, %s, %s) = %s, want %s", tt.role, tt.prover, tt.verifier, got, tt.want)
		}
	}
}

// TestSharedKeyProofBindsEveryField: changing any one field of the MAC
// input changes the proof, including the swaps a reflection or a relay
// between sessions would need (role, identifiers, nonces), and moving bytes
// between the two length-prefixed identifiers.
func TestSharedKeyProofBindsEveryField(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	nI, nR := seq(0, 32), seq(32, 32)
	mac := hmac.New(sha256.New, key)
	base := sharedKeyProof(mac, roleInitiator, "node-a", "node-b", nI, nR)
	variants := map[string][]byte{
		"other role":           sharedKeyProof(mac, roleResponder, "node-a", "node-b", nI, nR),
		"identifiers swapped":  sharedKeyProof(mac, roleInitiator, "node-b", "node-a", nI, nR),
		"nonces swapped":       sharedKeyProof(mac, roleInitiator, "node-a", "node-b", nR, nI),
		"the peer's proof":     sharedKeyProof(mac, roleResponder, "node-b", "node-a", nI, nR),
		"other prover":         sharedKeyProof(mac, roleInitiator, "node-c", "node-b", nI, nR),
		"other verifier":       sharedKeyProof(mac, roleInitiator, "node-a", "node-c", nI, nR),
		"other nonceI":         sharedKeyProof(mac, roleInitiator, "node-a", "node-b", seq(1, 32), nR),
		"other nonceR":         sharedKeyProof(mac, roleInitiator, "node-a", "node-b", nI, seq(33, 32)),
		"byte moved across id": sharedKeyProof(mac, roleInitiator, "node-an", "ode-b", nI, nR),
		"other key":            sharedKeyProof(hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdeF")), roleInitiator, "node-a", "node-b", nI, nR),
	}
	for name, v := range variants {
		if bytes.Equal(v, base) {
			t.Errorf("%s: same proof", name)
		}
	}
	if again := sharedKeyProof(mac, roleInitiator, "node-a", "node-b", nI, nR); !bytes.Equal(again, base) {
		t.Error("proof is not deterministic (mac not reset?)")
	}
}

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}
