/*
Copyright 2026 The peermesh Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	"testing"
)

// FuzzParsePeerNodeConfiguration checks that parsing never panics, that
// whatever parses is valid, and that it survives Marshal and a second parse
// with the same hash (the generation nodes report).
func FuzzParsePeerNodeConfiguration(f *testing.F) {
	seed, err := validConfig().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(seed),
		"",
		"{}",
		"meshName: lab\nmode: Audit\n",
		"blocked:\n- cidr: 10.0.0.0/8\n  except: [10.1.0.0/16]\n- identifier: n1\n",
		"allowed: [{cidr: 'fd00::/8'}, {identifier: a.b}]\nallowlistActive: true\n",
		"incoming: {trustProtocol: {type: SharedKey, sharedKeyFile: /k}}\n",
		"incoming: {allowDefaultCommunication: false, allowEnhancedPacketExchange: false, runDefaultTrustProtocol: false}\n",
		"limits: {idleTimeout: 1h, keepaliveInterval: 59m, maxInboundPeers: 0}\n",
		"discovery: {seeds: ['[::1]:7946', 'a:1', 'a:1']}\n",
		`{"apiVersion":"p2p.peermesh.io/v1alpha1","kind":"PeerNodeConfiguration","generation":"x"}`,
		"a: &a [*a, *a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParsePeerNodeConfiguration(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed configuration is invalid: %v", err)
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := ParsePeerNodeConfiguration(out)
		if err != nil {
			t.Fatalf("re-parsing marshalled configuration: %v\n%s", err, out)
		}
		if back.Hash() != c.Hash() {
			t.Fatalf("hash changed over a round trip: %s != %s\n%s", back.Hash(), c.Hash(), out)
		}
		if back.Generation != c.Generation {
			t.Fatalf("generation changed over a round trip: %s != %s", back.Generation, c.Generation)
		}
	})
}
