package slacktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Envelope is one Socket Mode delivery. A redelivery is a new Envelope with
// the same ID and a higher RetryAttempt.
type Envelope struct {
	ID           string
	Type         string // slash_commands, interactive or events_api
	RetryAttempt int
	RetryReason  string
	ResponseURL  string // for commands and clicks
	Payload      json.RawMessage

	accepts bool
	wire    []byte
	err     error // set when the envelope could not be made; never sent
	written bool  // under Server.mu
	sentAt  time.Time
	acked   bool
}

type ackRecord struct {
	at      time.Time
	payload json.RawMessage
}

type socketState struct {
	conns      []*wsConn
	rr         int
	opened     int
	tickets    map[string]bool
	pending    []*Envelope
	deliveries map[string][]*Envelope
	acks       map[string][]ackRecord
	latencies  []time.Duration
	dupAcks    int
	pings      int
	pongs      int
	// dropMid counts envelopes still to be cut off mid-frame (DropMidEnvelope).
	dropMid int
	cutOff  int
}

func newSocketState() socketState {
	return socketState{
		tickets:    map[string]bool{},
		deliveries: map[string][]*Envelope{},
		acks:       map[string][]ackRecord{},
	}
}

func (st *socketState) all() []*wsConn { return slices.Clone(st.conns) }

// pickLocked chooses a connection round-robin, as Slack spreads envelopes
// over all of an app's connections.
func (st *socketState) pickLocked() *wsConn {
	var ready []*wsConn
	for _, c := range st.conns {
		if c.ready && !c.draining {
			ready = append(ready, c)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	st.rr++
	return ready[st.rr%len(ready)]
}

type wsConn struct {
	ws        *websocket.Conn
	wmu       sync.Mutex // gorilla allows one writer at a time
	done      chan struct{}
	closeOnce sync.Once
	ready     bool // hello sent; under Server.mu
	draining  bool // told to disconnect or broken; under Server.mu
}

func (c *wsConn) write(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, msg)
}

// writeHalf writes the first half of a text frame carrying msg straight to
// the connection, as a link that dies mid-envelope would.
func (c *wsConn) writeHalf(msg []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := len(msg)
	frame := []byte{0x81}
	switch {
	case n < 126:
		frame = append(frame, byte(n))
	case n < 1<<16:
		frame = append(frame, 126, byte(n>>8), byte(n))
	default:
		frame = append(frame, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	frame = append(frame, msg[:n/2]...)
	_ = c.ws.UnderlyingConn().SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.ws.UnderlyingConn().Write(frame)
}

func (c *wsConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

// handleLink is the websocket endpoint apps.connections.open points at.
func (s *Server) handleLink(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	ok := s.sock.tickets[ticket]
	delete(s.sock.tickets, ticket) // a ticket opens one connection, as in Slack
	closed := s.closed
	if !ok && !closed {
		s.rejectLocked("websocket", "invalid_ticket", "unknown or reused ticket "+ticket)
	}
	s.mu.Unlock()
	if closed || !ok {
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &wsConn{ws: ws, done: make(chan struct{})}
	ws.SetPongHandler(func(string) error {
		s.mu.Lock()
		s.sock.pongs++
		s.notifyLocked()
		s.mu.Unlock()
		return nil
	})

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.close()
		return
	}
	s.sock.conns = append(s.sock.conns, c)
	n := len(s.sock.conns)
	s.notifyLocked()
	s.mu.Unlock()

	hello, _ := json.Marshal(map[string]any{
		"type":            "hello",
		"num_connections": n,
		"debug_info": map[string]any{
			"host":                        "applink-slacktest",
			"build_number":                1,
			"approximate_connection_time": 18060,
		},
		"connection_info": map[string]any{"app_id": s.opts.AppID},
	})
	if err := c.write(hello); err != nil {
		s.dropConn(c)
		return
	}
	s.mu.Lock()
	c.ready = true
	pending := s.sock.pending
	s.sock.pending = nil
	s.notifyLocked()
	s.mu.Unlock()
	for _, e := range pending {
		s.deliver(e)
	}

	go s.pinger(c)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			break
		}
		s.handleAck(data)
	}
	s.dropConn(c)
}

func (s *Server) dropConn(c *wsConn) {
	c.close()
	s.mu.Lock()
	s.sock.conns = slices.DeleteFunc(s.sock.conns, func(x *wsConn) bool { return x == c })
	s.notifyLocked()
	s.mu.Unlock()
}

// pinger sends the ping frames slack-go relies on to tell a live link from a
// dead one.
func (s *Server) pinger(c *wsConn) {
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-c.done:
			return
		case <-t.C:
			// Counted first: the pong can be read before WriteControl returns.
			s.mu.Lock()
			s.sock.pings++
			s.notifyLocked()
			s.mu.Unlock()
			if err := c.ws.WriteControl(websocket.PingMessage, fmt.Appendf(nil, "ping-%d", n), time.Now().Add(5*time.Second)); err != nil {
				return
			}
		}
	}
}

// handleAck matches an ack to the oldest unacked delivery of its envelope:
// the wire ack names only the envelope, not the attempt.
func (s *Server) handleAck(data []byte) {
	var ack struct {
		EnvelopeID string          `json:"envelope_id"`
		Payload    json.RawMessage `json:"payload"`
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := json.Unmarshal(data, &ack); err != nil || ack.EnvelopeID == "" {
		s.rejectLocked("ack", "invalid_ack", string(data))
		return
	}
	ds := s.sock.deliveries[ack.EnvelopeID]
	if len(ds) == 0 {
		s.rejectLocked("ack", "unknown_envelope_id", string(data))
		return
	}
	payload := ack.Payload
	if p := bytes.TrimSpace(payload); len(p) == 0 || bytes.Equal(p, []byte("null")) {
		payload = nil
	}
	first := len(s.sock.acks[ack.EnvelopeID]) == 0
	s.sock.acks[ack.EnvelopeID] = append(s.sock.acks[ack.EnvelopeID], ackRecord{at: now, payload: payload})
	matched := false
	for _, d := range ds {
		if d.written && !d.acked {
			d.acked = true
			s.sock.latencies = append(s.sock.latencies, now.Sub(d.sentAt))
			matched = true
			break
		}
	}
	if !matched {
		s.sock.dupAcks++
	}
	if first && payload != nil && ds[0].Type == "slash_commands" {
		s.ackResponseLocked(ds[0], payload)
	}
	if first && ds[0].Type == "interactive" && bytes.Contains(ds[0].Payload, []byte(`"type":"view_submission"`)) {
		s.submissionAckLocked(ds[0], payload)
	}
	s.notifyLocked()
}

// newEnvelopeLocked makes the first delivery of a new envelope.
func (s *Server) newEnvelopeLocked(typ string, payload any, accepts bool, responseURL string) *Envelope {
	raw, err := json.Marshal(payload)
	if err != nil {
		panic(err) // payloads are built here from plain values
	}
	e := &Envelope{ID: newUUID(), Type: typ, ResponseURL: responseURL, Payload: raw, accepts: accepts}
	s.registerLocked(e)
	return e
}

func (s *Server) registerLocked(e *Envelope) {
	e.wire, _ = json.Marshal(map[string]any{
		"envelope_id":              e.ID,
		"type":                     e.Type,
		"payload":                  e.Payload,
		"accepts_response_payload": e.accepts,
		"retry_attempt":            e.RetryAttempt,
		"retry_reason":             e.RetryReason,
	})
	s.sock.deliveries[e.ID] = append(s.sock.deliveries[e.ID], e)
}

func (s *Server) retryLocked(e *Envelope, reason string) *Envelope {
	r := &Envelope{ID: e.ID, Type: e.Type, RetryAttempt: e.RetryAttempt + 1, RetryReason: reason,
		ResponseURL: e.ResponseURL, Payload: e.Payload, accepts: e.accepts}
	s.registerLocked(r)
	return r
}

// deliver writes an envelope to one ready connection, or queues it until a
// client connects. (Slack would fail a slash command with dispatch_failed;
// queueing spares tests from racing the bot's startup.)
func (s *Server) deliver(e *Envelope) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		c := s.sock.pickLocked()
		if c == nil {
			s.sock.pending = append(s.sock.pending, e)
			s.notifyLocked()
			s.mu.Unlock()
			return
		}
		// Stamp before writing: the ack can be read before Write returns.
		e.written, e.sentAt = true, time.Now()
		cut := s.sock.dropMid > 0
		if cut {
			s.sock.dropMid--
			s.sock.cutOff++
		}
		s.mu.Unlock()

		if cut {
			// Half a frame, then the connection is gone: the client never
			// reads the envelope, and Slack redelivers it when no ack
			// comes.
			c.writeHalf(e.wire)
			s.dropConn(c)
			s.mu.Lock()
			if s.opts.AckTimeout > 0 && !s.closed {
				s.afterFuncLocked(s.opts.AckTimeout, func() { s.checkAck(e) })
			}
			s.notifyLocked()
			s.mu.Unlock()
			return
		}
		err := c.write(e.wire)

		s.mu.Lock()
		if err != nil {
			e.written, e.sentAt = false, time.Time{}
			c.draining = true
			s.mu.Unlock()
			c.close()
			continue
		}
		if s.opts.AckTimeout > 0 && !s.closed {
			s.afterFuncLocked(s.opts.AckTimeout, func() { s.checkAck(e) })
		}
		s.notifyLocked()
		s.mu.Unlock()
		return
	}
}

// checkAck redelivers e when nothing acked its envelope in time, as Slack
// does; a newer delivery of the same envelope has its own timer.
func (s *Server) checkAck(e *Envelope) {
	s.mu.Lock()
	if s.closed || s.ackedSinceLocked(e) || e.RetryAttempt >= s.opts.MaxRetries {
		s.mu.Unlock()
		return
	}
	ds := s.sock.deliveries[e.ID]
	if ds[len(ds)-1] != e {
		s.mu.Unlock()
		return
	}
	r := s.retryLocked(e, "timeout")
	s.mu.Unlock()
	s.deliver(r)
}

func (s *Server) ackedSinceLocked(e *Envelope) bool {
	if !e.written {
		return false
	}
	for _, a := range s.sock.acks[e.ID] {
		if !a.at.Before(e.sentAt) {
			return true
		}
	}
	return false
}

// Redeliver sends e again: same envelope_id and payload, retry_attempt+1,
// retry_reason "timeout" — what Slack does when an ack is late or lost.
func (s *Server) Redeliver(e *Envelope) *Envelope {
	if e.err != nil {
		return e
	}
	s.mu.Lock()
	r := s.retryLocked(e, "timeout")
	s.mu.Unlock()
	s.deliver(r)
	return r
}

// Deliveries lists every delivery of e's envelope, first to last.
func (s *Server) Deliveries(e *Envelope) []*Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sock.deliveries[e.ID])
}

// Unacked lists the envelopes (their latest deliveries) that no ack has
// answered yet, for asserting at the end of a test that the bot acked all.
func (s *Server) Unacked() []*Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Envelope
	for id, ds := range s.sock.deliveries {
		if len(s.sock.acks[id]) == 0 {
			out = append(out, ds[len(ds)-1])
		}
	}
	slices.SortFunc(out, func(a, b *Envelope) int { return a.sentAt.Compare(b.sentAt) })
	return out
}

// Disconnect sends {"type":"disconnect","reason":reason} on every
// connection, stops delivering on them and closes them after
// Options.DisconnectGrace, as Slack does before rotating its servers.
func (s *Server) Disconnect(reason string) {
	msg, _ := json.Marshal(map[string]any{
		"type":       "disconnect",
		"reason":     reason,
		"debug_info": map[string]any{"host": "applink-slacktest"},
	})
	s.mu.Lock()
	conns := s.sock.all()
	for _, c := range conns {
		c.draining = true
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.write(msg)
		s.mu.Lock()
		if !s.closed {
			s.afterFuncLocked(s.opts.DisconnectGrace, c.close)
		}
		s.mu.Unlock()
	}
}

// DropMidEnvelope cuts the connection in the middle of the next n
// envelopes' frames. Each is redelivered (retry_attempt+1) after AckTimeout
// on whatever connection the client opens next.
func (s *Server) DropMidEnvelope(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sock.dropMid += n
}

// CutOff counts envelopes cut off by DropMidEnvelope.
func (s *Server) CutOff() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock.cutOff
}

// DropConnections closes every connection's TCP socket without a close
// frame, like a network failure.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := s.sock.all()
	for _, c := range conns {
		c.draining = true
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.NetConn().Close()
	}
}

// Connections counts the open websocket connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sock.conns)
}

// ConnectionsOpened counts successful apps.connections.open calls.
func (s *Server) ConnectionsOpened() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock.opened
}

// PingsSent and PongsReceived count websocket control frames.
func (s *Server) PingsSent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock.pings
}

// PongsReceived counts pong frames answered by clients.
func (s *Server) PongsReceived() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock.pongs
}

// DuplicateAcks counts acks that found no unacked delivery of their
// envelope (the bot acked one delivery twice).
func (s *Server) DuplicateAcks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock.dupAcks
}

// ErrNotSent is wrapped by WaitAck for envelopes that were never sent.
var ErrNotSent = errors.New("envelope not sent")

// WaitAck waits for the first ack of e's envelope read after e was written
// and returns its payload (nil if none).
func (s *Server) WaitAck(e *Envelope, timeout time.Duration) (json.RawMessage, error) {
	if e.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, e.err)
	}
	var payload json.RawMessage
	err := s.wait(timeout, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !e.written {
			return false
		}
		for _, a := range s.sock.acks[e.ID] {
			if !a.at.Before(e.sentAt) {
				payload = a.payload
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("slacktest: no ack for %s envelope %s (attempt %d): %w", e.Type, e.ID, e.RetryAttempt, err)
	}
	return payload, nil
}

// AckLatencies lists, per acked delivery, the time from writing the
// envelope to reading its ack.
func (s *Server) AckLatencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sock.latencies)
}
