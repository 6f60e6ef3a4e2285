package netrequest

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxErrorLen bounds, in bytes, the message of every error this package
// returns, and of every error callers build around one with BoundError: a
// request's error ends up in gRPC statuses, pod events and the PodScheduled
// condition, and a hostile request (256 KiB of annotations through the API,
// up to the CRI message limit through CRI) must not make it large.
const MaxErrorLen = 1024

// maxQuoted bounds, in bytes, the user-supplied text an error quotes: enough
// to recognise a value, not enough to let one fill the message.
const maxQuoted = 64

// maxProblems bounds the problems of a joined error, whatever their
// length: a hostile annotation could have thousands.
const maxProblems = 2 * MaxNetworks

// moreProblems ends an error that leaves problems out.
const moreProblems = "networks: further problems not shown"

// problemBudget is what the problems of a joined error may take, with a
// newline after each: the last one's makes room for the line that says
// problems were left out.
const problemBudget = MaxErrorLen - len(moreProblems)

// maxProblemLen bounds one problem of a joined error, so that at least two
// fit however hostile the first is.
const maxProblemLen = problemBudget/2 - 1

// BoundError returns err unchanged if its message is at most MaxErrorLen
// bytes, else an error whose message is the message's first bytes (cut on a
// UTF-8 boundary) followed by " ... (N bytes cut)", within MaxErrorLen, and
// which wraps err for errors.Is and errors.As. It returns nil for nil.
func BoundError(err error) error {
	return boundTo(err, MaxErrorLen)
}

// boundTo is BoundError with a bound of n bytes.
func boundTo(err error, n int) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if len(msg) <= n {
		return err
	}
	return &boundedError{err: err, msg: truncate(msg, n)}
}

// truncate cuts s, longer than n bytes, to at most n bytes, saying how much
// was cut; room is left for the count as if all of s were cut.
func truncate(s string, n int) string {
	keep := runeCut(s, n-len(" ... ( bytes cut)")-len(strconv.Itoa(len(s))))
	return s[:keep] + " ... (" + strconv.Itoa(len(s)-keep) + " bytes cut)"
}

// runeCut returns where to cut s to keep at most n bytes: n, moved back to
// the start of the rune it falls in. Invalid UTF-8 is cut anywhere, so the
// search looks back at most one rune's length.
func runeCut(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	n = max(n, 0)
	for k := n; k > 0 && k > n-utf8.UTFMax; k-- {
		if utf8.RuneStart(s[k]) {
			return k
		}
	}
	return n
}

// quote returns s quoted for an error message, at most about 2*maxQuoted
// bytes: beyond maxQuoted bytes, or where escapes would make the quote
// long, s is cut and its length follows the quote: "abc"... (70000 bytes).
func quote(s string) string {
	head := s[:runeCut(s, maxQuoted)]
	q := strconv.Quote(head)
	for len(q) > 2*maxQuoted { // mostly escapes: keep fewer bytes
		head = head[:runeCut(head, len(head)/2)]
		q = strconv.Quote(head)
	}
	if len(head) == len(s) {
		return q
	}
	return q + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// boundedError is an error whose message was cut; it wraps the original.
type boundedError struct {
	err error
	msg string
}

func (e *boundedError) Error() string { return e.msg }
func (e *boundedError) Unwrap() error { return e.err }

// problems collects the problems found in a request or a node's list, in
// order, up to maxProblems and as many as fit in MaxErrorLen with a last
// line saying that others were left out. Checks stop once it is full, which
// keeps a hostile input's cost linear and its error short.
type problems struct {
	errs []error
	size int  // bytes of errs' messages, with the newlines between them
	cut  bool // a problem was left out
}

// full reports whether further problems are left out.
func (p *problems) full() bool {
	return p.cut
}

// add records err, cut to maxProblemLen, if it fits.
func (p *problems) add(err error) {
	if p.cut {
		return
	}
	err = boundTo(err, maxProblemLen)
	n := len(err.Error()) + 1
	if len(p.errs) == maxProblems || p.size+n > problemBudget {
		p.cut = true
		return
	}
	p.errs = append(p.errs, err)
	p.size += n
}

// addf records a problem of entry i, whose name is name: the message
// starts with the entry's label.
func (p *problems) addf(i int, name, format string, args ...any) {
	if p.cut {
		return
	}
	p.add(fmt.Errorf("%s: %w", label(i, name), fmt.Errorf(format, args...)))
}

// err returns the problems joined, one a line, nil if there are none.
func (p *problems) err() error {
	if p.cut {
		return errors.Join(append(p.errs, errors.New(moreProblems))...)
	}
	return errors.Join(p.errs...)
}
