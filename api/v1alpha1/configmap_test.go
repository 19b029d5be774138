package v1alpha1

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

func TestConfigMapDataRoundTrip(t *testing.T) {
	small := []byte("meshName: m\n")
	large := []byte(strings.Repeat("- identifier: peer\n  source: {kind: PeerAllowlist}\n", 20000))
	for _, in := range [][]byte{small, large} {
		data, bin, err := EncodeConfigMapData(in)
		if err != nil {
			t.Fatal(err)
		}
		if (bin != nil) != (len(in) > ConfigMapCompressThreshold) {
			t.Errorf("%d bytes: compressed=%v", len(in), bin != nil)
		}
		out, err := DecodeConfigMapData(data, bin)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip of %d bytes: %v", len(in), err)
		}
		// Deterministic: an unchanged configuration writes nothing new.
		data2, bin2, _ := EncodeConfigMapData(in)
		if data[ConfigMapKey] != data2[ConfigMapKey] || !bytes.Equal(bin[ConfigMapGzipKey], bin2[ConfigMapGzipKey]) {
			t.Error("encoding is not deterministic")
		}
	}
	if _, bin, _ := EncodeConfigMapData(large); len(bin[ConfigMapGzipKey]) > len(large)/5 {
		t.Errorf("compressed %d bytes to %d", len(large), len(bin[ConfigMapGzipKey]))
	}
}

func TestDecodeConfigMapDataErrors(t *testing.T) {
	if _, err := DecodeConfigMapData(nil, nil); err == nil || !strings.Contains(err.Error(), ConfigMapKey) {
		t.Errorf("empty ConfigMap: %v", err)
	}
	if _, err := DecodeConfigMapData(nil, map[string][]byte{ConfigMapGzipKey: []byte("not gzip")}); err == nil {
		t.Error("garbage accepted")
	}
	// A gzip bomb is cut off at MaxConfigurationSize.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zeros := make([]byte, 1<<20)
	for range MaxConfigurationSize/len(zeros) + 1 {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	if _, err := DecodeConfigMapData(nil, map[string][]byte{ConfigMapGzipKey: buf.Bytes()}); err == nil || !strings.Contains(err.Error(), "64 MiB") {
		t.Errorf("bomb: %v", err)
	}
}
