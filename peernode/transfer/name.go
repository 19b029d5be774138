package transfer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tempPrefix and tempSuffix name the receiver's temporary files:
// ".peermesh-transfer-<random>.part". Offered names may not start with the
// prefix, so a received file can never be mistaken for (or removed as) a
// leftover temporary file.
const (
	tempPrefix  = ".peermesh-transfer-"
	tempSuffix  = ".part"
	tempPattern = tempPrefix + "*" + tempSuffix
)

// ValidateName returns nil if name is acceptable as the base name of a
// received file, else an error wrapping ErrInvalidName that says why. The
// receiver refuses offers whose name fails it (code invalid_name) rather
// than rewriting the name, so what is stored is what the sender named, or
// that name with a " (n)" suffix when it is taken.
//
// A valid name is 1 to MaxNameLen bytes of UTF-8; it is not "." or "..";
// it contains no '/' or '\' (a path, on any system), no control character
// (C0, DEL, C1: NUL, newlines, escape sequences that would corrupt logs and
// terminals) and no bidirectional-formatting character (U+200E, U+200F,
// U+202A-U+202E, U+2066-U+2069, which can disguise "gpj.exe" as
// "exe.jpg"); and it does not start with the receiver's temporary-file
// prefix ".peermesh-transfer-".
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: name of %d bytes exceeds %d", ErrInvalidName, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name %q is not valid UTF-8", ErrInvalidName, name)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not a file name", ErrInvalidName, name)
	case strings.HasPrefix(name, tempPrefix):
		return fmt.Errorf("%w: %q uses the reserved prefix %q", ErrInvalidName, name, tempPrefix)
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '\\':
			return fmt.Errorf("%w: %q contains a path separator", ErrInvalidName, name)
		case unicode.IsControl(r):
			return fmt.Errorf("%w: %q contains the control character %U", ErrInvalidName, name, r)
		case isBidiControl(r):
			return fmt.Errorf("%w: %q contains the bidirectional-formatting character %U", ErrInvalidName, name, r)
		}
	}
	return nil
}

func isBidiControl(r rune) bool {
	return r == '\u200e' || r == '\u200f' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}
