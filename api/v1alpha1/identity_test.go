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
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestNodeIdentifierNamespace(t *testing.T) {
	want := uuid.NewSHA1(uuid.NameSpaceDNS, []byte("p2p.peermesh.io")).String()
	if NodeIdentifierNamespace != want {
		t.Errorf("NodeIdentifierNamespace = %s, want the DNS-namespace UUID of p2p.peermesh.io %s", NodeIdentifierNamespace, want)
	}
}

func TestNodeIdentifierForPod(t *testing.T) {
	// Golden values: changing them changes every pod's identity, which
	// breaks allowlists written with identifiers and mixed-version meshes.
	tests := []struct{ namespace, name, want string }{
		{"default", "peer-0", "431f6833-421d-5ebd-a865-300f22894169"},
		{"team-a", "frontend-0", "4cadc93d-b898-532d-b92f-7d8c92666b94"},
	}
	for _, tt := range tests {
		got := NodeIdentifierForPod(tt.namespace, tt.name)
		if got != tt.want {
			t.Errorf("NodeIdentifierForPod(%q, %q) = %s, want %s", tt.namespace, tt.name, got, tt.want)
		}
		if u := uuid.MustParse(got); u.Version() != 5 {
			t.Errorf("%s is not a version-5 UUID", got)
		}
		if !IsValidIdentifier(got) {
			t.Errorf("%s is not a valid PeerIdentifier", got)
		}
	}
	if NodeIdentifierForPod("a", "b") == NodeIdentifierForPod("b", "a") {
		t.Error("namespace and name are not distinguished")
	}
}

func TestIsValidIdentifier(t *testing.T) {
	for id, want := range map[string]bool{
		"n1":                                   true,
		"node.example.com":                     true,
		"74698d63-1cdd-5d65-b09d-3cf69644d238": true,
		"a:b_c":                                true,
		"":                                     false,
		"-leading":                             false,
		"trailing.":                            false,
		"has space":                            false,
		"slash/ed":                             false,
		strings.Repeat("a", 253):               true,
		strings.Repeat("a", 254):               false,
	} {
		if got := IsValidIdentifier(id); got != want {
			t.Errorf("IsValidIdentifier(%q) = %v, want %v", id, got, want)
		}
	}
}
