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
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// ConfigMapGzipKey is the binaryData key of a mesh ConfigMap whose
// configuration is too large to keep as text: the same YAML, gzipped.
const ConfigMapGzipKey = ConfigMapKey + ".gz"

// ConfigMapCompressThreshold is the YAML size above which the configuration
// is stored gzipped. A ConfigMap holds at most 1 MiB, and large allowlists
// compress about tenfold (every rule repeats its provenance); small
// configurations stay readable with kubectl.
const ConfigMapCompressThreshold = 256 << 10

// MaxConfigurationSize bounds a decompressed configuration, so that a
// hostile ConfigMap cannot exhaust a node's memory.
const MaxConfigurationSize = 64 << 20

// EncodeConfigMapData returns the data and binaryData of a mesh ConfigMap
// holding yaml: as text under ConfigMapKey, or gzipped under
// ConfigMapGzipKey when larger than ConfigMapCompressThreshold. The encoding
// is deterministic, so an unchanged configuration produces an unchanged
// ConfigMap.
func EncodeConfigMapData(yaml []byte) (map[string]string, map[string][]byte, error) {
	if len(yaml) <= ConfigMapCompressThreshold {
		return map[string]string{ConfigMapKey: string(yaml)}, nil, nil
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, nil, err
	}
	if _, err := zw.Write(yaml); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return nil, map[string][]byte{ConfigMapGzipKey: buf.Bytes()}, nil
}

// DecodeConfigMapData returns the configuration YAML held by a mesh
// ConfigMap's data or binaryData.
func DecodeConfigMapData(data map[string]string, binaryData map[string][]byte) ([]byte, error) {
	if s, ok := data[ConfigMapKey]; ok {
		return []byte(s), nil
	}
	z, ok := binaryData[ConfigMapGzipKey]
	if !ok {
		return nil, fmt.Errorf("the ConfigMap has neither data key %q nor binaryData key %q", ConfigMapKey, ConfigMapGzipKey)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("binaryData %q: %w", ConfigMapGzipKey, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxConfigurationSize+1))
	if err != nil {
		return nil, fmt.Errorf("binaryData %q: %w", ConfigMapGzipKey, err)
	}
	if len(out) > MaxConfigurationSize {
		return nil, errors.New("binaryData " + ConfigMapGzipKey + ": the configuration is larger than 64 MiB")
	}
	return out, nil
}
