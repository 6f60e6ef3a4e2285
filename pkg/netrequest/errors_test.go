package netrequest

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBoundError(t *testing.T) {
	if BoundError(nil) != nil {
		t.Error("BoundError(nil) is not nil")
	}
	short := fmt.Errorf("short: %w", fs.ErrNotExist)
	if got := BoundError(short); got != short {
		t.Errorf("BoundError of a short error = %v, want it unchanged", got)
	}
	exact := errors.New(strings.Repeat("x", MaxErrorLen))
	if got := BoundError(exact); got != exact {
		t.Error("BoundError of an error of MaxErrorLen bytes changed it")
	}
	for _, tc := range []struct {
		name, msg string
	}{
		{"ASCII", strings.Repeat("x", MaxErrorLen+1)},
		{"large", strings.Repeat("x", 1<<20)},
		{"two-byte runes", strings.Repeat("é", MaxErrorLen)},
		{"four-byte runes", "x" + strings.Repeat("😀", MaxErrorLen)},
		{"invalid UTF-8", strings.Repeat("\xff", 2*MaxErrorLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := fmt.Errorf("%s: %w", tc.msg, fs.ErrNotExist)
			got := BoundError(orig).Error()
			if len(got) > MaxErrorLen {
				t.Errorf("%d bytes, more than %d", len(got), MaxErrorLen)
			}
			kept, cut, ok := strings.Cut(got, " ... (")
			n, err := strconv.Atoi(strings.TrimSuffix(cut, " bytes cut)"))
			if !ok || err != nil || !strings.HasSuffix(got, " bytes cut)") || len(kept)+n != len(orig.Error()) || !strings.HasPrefix(orig.Error(), kept) {
				t.Errorf("message %q... does not keep a prefix and say how much was cut", got[:min(len(got), 80)])
			}
			if len(kept) < MaxErrorLen-40 {
				t.Errorf("kept %d bytes, want close to %d", len(kept), MaxErrorLen)
			}
			if utf8.ValidString(orig.Error()) && !utf8.ValidString(got) {
				t.Error("cut inside a rune")
			}
			if b := BoundError(orig); !errors.Is(b, fs.ErrNotExist) || !errors.Is(b, orig) {
				t.Error("the bounded error does not wrap the original")
			}
			var be *boundedError
			if !errors.As(BoundError(orig), &be) || be.Unwrap() != orig {
				t.Error("errors.As does not find the bounded error")
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"blue", `"blue"`},
		{"", `""`},
		{"a\nb", `"a\nb"`},
		{strings.Repeat("a", maxQuoted), `"` + strings.Repeat("a", maxQuoted) + `"`},
		{strings.Repeat("a", maxQuoted+1), `"` + strings.Repeat("a", maxQuoted) + `"... (65 bytes)`},
		{"a" + strings.Repeat("é", maxQuoted), `"a` + strings.Repeat("é", maxQuoted/2-1) + `"... (129 bytes)`},
		{strings.Repeat("\xff", 1000), `"` + strings.Repeat(`\xff`, maxQuoted/4) + `"... (1000 bytes)`},
		{strings.Repeat("\x00", 10), `"` + strings.Repeat(`\x00`, 10) + `"`},
		{strings.Repeat("\u2028", 50), `"` + strings.Repeat(`\u2028`, 21) + `"... (150 bytes)`},
	} {
		if got := quote(tc.in); got != tc.want {
			t.Errorf("quote(%.80q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestProblems(t *testing.T) {
	// Few problems: all of them, joined.
	var p problems
	p.addf(0, "a", "first")
	p.addf(2, "b", "second %d", 2)
	if err := p.err(); err == nil || err.Error() != "networks[0] (\"a\"): first\nnetworks[2] (\"b\"): second 2" {
		t.Errorf("err() = %q", err)
	}
	// Many short ones: maxProblems, then the line that says so.
	p = problems{}
	for i := range 1000 {
		p.add(fmt.Errorf("p%d", i))
	}
	lines := strings.Split(p.err().Error(), "\n")
	if len(lines) != maxProblems+1 || lines[maxProblems-1] != "p31" || lines[maxProblems] != moreProblems || !p.full() {
		t.Errorf("%d lines: %q", len(lines), lines)
	}
	// Long ones: as many as fit, the first always, each cut to maxProblemLen.
	p = problems{}
	for range 10 {
		p.add(errors.New(strings.Repeat("x", 10*MaxErrorLen)))
	}
	msg := p.err().Error()
	lines = strings.Split(msg, "\n")
	if len(msg) > MaxErrorLen || len(lines) != 2+1 || len(lines[0]) > maxProblemLen || lines[2] != moreProblems {
		t.Errorf("%d bytes in %d lines: %q", len(msg), len(lines), msg)
	}
	// A problem wraps its cause.
	p = problems{}
	p.addf(1, "x", "%w: more", fs.ErrExist)
	if !errors.Is(p.err(), fs.ErrExist) {
		t.Error("a problem does not wrap its cause")
	}
	if (&problems{}).err() != nil {
		t.Error("no problems, but an error")
	}
}
