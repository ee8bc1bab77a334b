package outbound

import "io"

// LimitedBody reads at most max bytes of a response body. Servers reached
// through payload URLs choose how much they send, so no caller should read
// one unbounded; the flag tells whether more was left, letting a log reader
// keep what fits while a JSON decoder treats it as an error.
func LimitedBody(r io.Reader, max int64) (data []byte, truncated bool, err error) {
	if max < 0 {
		max = 0
	}
	data, err = io.ReadAll(io.LimitReader(r, max+1))
	if int64(len(data)) > max {
		return data[:max], true, err
	}
	return data, false, err
}
