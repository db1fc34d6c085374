package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Human reports go to terminals: a string that came from a peer (a
// certificate's names, a server's reply) or from a file must not be able to
// move the cursor, retitle the window, clear the screen, overwrite a line
// or reorder text. esc writes such a string with every character that is
// not plainly printable as an escape, the way strconv.Quote does, without
// the quotes. JSON output needs none of this: encoding/json escapes control
// characters itself.

// esc returns s with backslash, control characters (C0, DEL, C1), Unicode
// format characters (bidi overrides and isolates, zero-width characters),
// line and paragraph separators and invalid UTF-8 escaped: \\, \n, \r,
// \t, \xNN for a byte, \u{NNNN} for a character.
func esc(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && !plainRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case !plainRune(r):
			fmt.Fprintf(&b, `\u{%04X}`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// isPlain reports whether esc leaves s as it is.
func isPlain(s string) bool {
	for _, r := range s { // an invalid byte reads as utf8.RuneError
		if r == '\\' || !plainRune(r) {
			return false
		}
	}
	return true
}

// plainRune reports whether r prints as itself and moves nothing: a
// graphic character or a space, not a format character.
func plainRune(r rune) bool {
	if r == utf8.RuneError {
		return false // a real U+FFFD is shown escaped too: it may hide bytes
	}
	return r == ' ' || (unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r) && !unicode.Is(unicode.Zl, r) && !unicode.Is(unicode.Zp, r))
}

// escAll applies esc to each string of ss.
func escAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = esc(s)
	}
	return out
}

// terminalSafe is the last guard on a line about to be printed whose parts
// were not all escaped at their source (the one-line error): the control
// and format characters and invalid UTF-8 that esc escapes, except that a
// backslash stays as it is, so that what was escaped already is not
// escaped twice.
func terminalSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteByte('\\')
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			b.WriteString(esc(s[i : i+size]))
		}
		i += size
	}
	return b.String()
}
