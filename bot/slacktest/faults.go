package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
)

// LossMode is how LoseResponses loses the answer to a call it performed.
type LossMode int

const (
	// Answer504 answers HTTP 504 with an HTML page, as Slack's gateway does
	// when the call timed out behind it — whether or not it took effect.
	Answer504 LossMode = iota + 1
	// DropConnection closes the connection without any answer, as a reset
	// link does. slack-go then reports an EOF — and with its connection
	// retry handler (slack.ConnectionOnlyRetryHandlers or
	// AllBuiltinRetryHandlers in OptionRetryConfig) sends the call again.
	DropConnection
)

func (m LossMode) String() string {
	switch m {
	case 0:
		return "none"

	case Answer504:
		return "Answer504"
	case DropConnection:
		return "DropConnection"
	}
	return "LossMode(" + strconv.Itoa(int(m)) + ")"
}

// Fault is one injected fault that fired, in Faults.
type Fault struct {
	Method string
	// Mode is how the answer was lost (LoseResponses); 0 for FailNext.
	Mode LossMode
	// Status is the HTTP status sent instead of Slack's answer: 504 for
	// Answer504, FailNext's status, 0 for a dropped connection.
	Status int
	// Performed tells whether the call was carried out (LoseResponses) or
	// not (FailNext).
	Performed bool
	// Lost is the answer the call really had and the client never saw
	// (LoseResponses only), e.g. chat.postMessage's {"ok":true,"ts":…}.
	Lost json.RawMessage
}

type pendingFault struct {
	mode   LossMode // 0: fail with status, without performing
	status int
}

// LoseResponses makes the next n calls of a Web API method ambiguous: each
// is performed in full — a chat.postMessage stores and shows its message —
// and then its answer is lost as mode says, so the client sees an error
// for a call that succeeded. Faults queue per method with FailNext's, in
// the order they were asked for.
func (s *Server) LoseResponses(method string, n int, mode LossMode) {
	if mode != Answer504 && mode != DropConnection {
		panic(fmt.Sprintf("slacktest: LoseResponses: unknown mode %v", mode))
	}
	s.queueFaults(method, n, pendingFault{mode: mode})
}

// FailNext answers the next n calls of a Web API method with this HTTP
// status without performing them: a Slack outage (5xx) or, with 429, a
// rate limit with Retry-After: 1 beyond the server's own bucket.
func (s *Server) FailNext(method string, n int, status int) {
	if status < 400 || status > 599 {
		panic(fmt.Sprintf("slacktest: FailNext: %d is not an error status", status))
	}
	s.queueFaults(method, n, pendingFault{status: status})
}

// Faults lists the injected faults that fired, in order.
func (s *Server) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.faults)
	for i := range out {
		out[i].Lost = slices.Clone(out[i].Lost)
	}
	return out
}

func (s *Server) queueFaults(method string, n int, f pendingFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faultQueue[method] = append(s.faultQueue[method], f)
	}
}

func (s *Server) takeFault(method string) (pendingFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faultQueue[method]
	if len(q) == 0 {
		return pendingFault{}, false
	}
	f := q[0]
	if len(q) == 1 {
		delete(s.faultQueue, method)
	} else {
		s.faultQueue[method] = q[1:]
	}
	return f, true
}

func (s *Server) recordFault(f Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, method string, f pendingFault) {
	if f.mode == 0 {
		s.recordFault(Fault{Method: method, Status: f.status})
		if f.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, f.status, failBody("ratelimited", "", nil))
			return
		}
		writeGatewayPage(w, f.status)
		return
	}
	rec := httptest.NewRecorder()
	s.serveAPI(rec, r, method)
	lost := bytes.TrimSpace(rec.Body.Bytes())
	if !json.Valid(lost) {
		lost = nil
	}
	fault := Fault{Method: method, Mode: f.mode, Performed: true, Lost: slices.Clone(lost)}
	if f.mode == Answer504 {
		fault.Status = http.StatusGatewayTimeout
	}
	s.recordFault(fault)
	if f.mode == Answer504 {
		writeGatewayPage(w, http.StatusGatewayTimeout)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("slacktest: DropConnection: the connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic("slacktest: DropConnection: " + err.Error())
	}
	_ = conn.Close()
}

// writeGatewayPage answers the way Slack's edge does when the API behind
// it fails: an HTML page, not JSON.
func writeGatewayPage(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	text := fmt.Sprintf("%d %s", status, http.StatusText(status))
	_, _ = fmt.Fprintf(w, "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n</body>\r\n</html>\r\n", text, text)
}
