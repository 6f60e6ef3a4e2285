package forward

import (
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Flow control is per connection: what the proxy sends to a side waits for
// that side's windows, and a side gets window back once what it sent has
// left the proxy.

// sendHeaders sends a header block to side to, after what is pending.
func (pr *pair) sendHeaders(st *stream, to int, fields []hpack.HeaderField, end bool) {
	o := &st.out[to]
	if len(o.pending) > 0 {
		o.pending = append(o.pending, chunk{headers: fields, isHeader: true, end: end})
		return
	}
	pr.sides[to].w.headers(st.ids[to], end, fields)
	o.headersSent = true
	if end {
		o.ended = true
		pr.maybeClose(st)
	}
}

// sendData sends data the proxy made to side to, as the windows allow.
func (pr *pair) sendData(st *stream, to int, data []byte, end bool) {
	st.out[to].pending = append(st.out[to].pending, chunk{data: data, end: end})
	pr.drain(st, to)
}

// sendReset resets the stream on side to once what is pending is sent.
func (pr *pair) sendReset(st *stream, to int, code http2.ErrCode) {
	st.out[to].pending = append(st.out[to].pending, chunk{reset: true, code: code})
	pr.drain(st, to)
}

// drain sends what is pending for side to as far as the windows allow; a
// stream that must wait joins the side's blocked list.
func (pr *pair) drain(st *stream, to int) {
	t, o, id := pr.sides[to], &st.out[to], st.ids[to]
	for len(o.pending) > 0 && !st.closed {
		c := &o.pending[0]
		switch {
		case c.reset:
			t.w.rstStream(id, c.code)
			pr.remove(st)
			return
		case c.isHeader:
			t.w.headers(id, c.end, c.headers)
			o.headersSent = true
		default:
			n := min(int64(len(c.data)), t.connWindow, o.window, int64(t.maxFrame))
			if n <= 0 && len(c.data) > 0 {
				if !o.blocked {
					o.blocked = true
					t.blocked = append(t.blocked, st)
				}
				return
			}
			part := c.data[:n]
			c.data = c.data[n:]
			t.connWindow -= n
			o.window -= n
			t.w.data(id, c.end && len(c.data) == 0, part)
			if c.credit {
				pr.giveBack(st, 1-to, n)
			}
			if len(c.data) > 0 {
				continue
			}
		}
		o.ended = o.ended || c.end
		o.pending[0] = chunk{}
		o.pending = o.pending[1:]
	}
	pr.maybeClose(st)
}

// giveBack returns n bytes of window to side from, in updates of at least
// a quarter window.
func (pr *pair) giveBack(st *stream, from int, n int64) {
	if n <= 0 {
		return
	}
	s := pr.sides[from]
	s.connCredit += n
	if s.connCredit >= windowSize/4 {
		s.w.windowUpdate(0, uint32(s.connCredit))
		s.connCredit = 0
	}
	if st == nil || st.ended[from] || st.closed {
		return
	}
	st.credit[from] += n
	if st.credit[from] >= windowSize/4 {
		s.w.windowUpdate(st.ids[from], uint32(st.credit[from]))
		st.credit[from] = 0
	}
}

func (pr *pair) onWindowUpdate(i int, id uint32, n int64) {
	s := pr.sides[i]
	if id == 0 {
		s.connWindow += n
		blocked := s.blocked
		s.blocked = nil
		for _, st := range blocked {
			st.out[i].blocked = false
			pr.drain(st, i)
		}
		return
	}
	if st := pr.lookup(i, id); st != nil {
		st.out[i].window += n
		pr.drain(st, i)
	}
}
