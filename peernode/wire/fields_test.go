package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestFieldDecoder(t *testing.T) {
	payload := []byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 2, 'h', 'i', 'x', 'y'}
	d := NewFieldDecoder("Test", payload)
	if a, b, c, s := d.Uint16("a"), d.Uint32("b"), d.Uint64("c"), d.String("s", 8); a != 1 || b != 2 || c != 3 || s != "hi" {
		t.Fatalf("got %d %d %d %q", a, b, c, s)
	}
	if r := d.Rest(); string(r) != "xy" || d.Finish() != nil {
		t.Fatalf("rest %q, finish %v", r, d.Finish())
	}

	d = NewFieldDecoder("Test", []byte{0, 0, 0})
	if v := d.Uint32("b"); v != 0 || !errors.Is(d.Finish(), ErrMalformed) {
		t.Errorf("truncated uint32: %d, %v", v, d.Finish())
	}
	d = NewFieldDecoder("Test", []byte{1, 2})
	d.Uint16("a")
	d.Fail("x", "custom %d", 7)
	d.Fail("y", "second")
	if err := d.Finish(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "Test.x: custom 7") {
		t.Errorf("the first failure must stick: %v", err)
	}
	d = NewFieldDecoder("Test", []byte{1, 2, 3})
	d.Uint16("a")
	if err := d.Finish(); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
}
