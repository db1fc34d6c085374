package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"
)

// The helpers every subcommand's report shares: aligned text lines, JSON,
// durations and rounding.

// yesNo is a boolean in a text report.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// orNone is s, or "none" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// writeJSON writes v as indented JSON (the --json reports).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// labelWidth aligns the human reports.
const labelWidth = 24

// line writes one "label   value" line of a text report.
func line(w io.Writer, label, format string, a ...any) {
	fmt.Fprintf(w, "%-*s%s\n", labelWidth, label, fmt.Sprintf(format, a...))
}

// durationMS is a duration in milliseconds, for reports.
func durationMS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// fmtMS formats a duration as milliseconds with three decimals.
func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", durationMS(d))
}

// round2 rounds to two decimals (rates and ratios in JSON).
func round2(f float64) float64 { return math.Round(f*100) / 100 }

// round3 rounds to three decimals.
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// writeHeader writes the lines every connection report opens with: the
// target, the OpenSSL and the protocol.
func writeHeader(w io.Writer, target string, embedded bool, openssl, protocol string) {
	if embedded {
		target += " (embedded server)"
	}
	line(w, "target", "%s", esc(target))
	line(w, "openssl", "%s", openssl)
	line(w, "protocol", "%s", protocol)
}
