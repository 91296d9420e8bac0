// Package slacktest is a fake Slack for end-to-end tests of the bot, in the
// spirit of net/http/httptest.
//
// It speaks the real wire protocols over loopback — the Web API as slack-go
// sends it (form-encoded, JSON and GET), Socket Mode over a real websocket, the
// external file upload flow and response_url posts — and it refuses what Slack
// refuses, so a bot that passes against it does not discover invalid blocks,
// oversized texts or missing acks in production. Every refusal is kept in
// Rejected so a test can assert that none happened.
package slacktest

import (
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults used when Options leaves a field empty.
const (
	DefaultBotToken  = "xoxb-slacktest"
	DefaultAppToken  = "xapp-slacktest"
	DefaultBotUserID = "UBOT"
	DefaultBotID     = "BBOT"
	DefaultAppID     = "A0SLACKTEST"
	DefaultTeamID    = "T0SLACKTEST"
	DefaultTeamName  = "example"
)

// Options configures a Server. Zero values get Slack-like defaults.
type Options struct {
	// BotToken and AppToken are the only tokens accepted. The bot token is
	// refused by apps.connections.open and the app token by everything else,
	// as Slack does.
	BotToken, AppToken string
	// PingInterval is how often the server sends websocket ping frames.
	// slack-go's client treats a missing ping as a dead link. Default 5s.
	PingInterval time.Duration
	// AckTimeout is how long an envelope may stay unacked before it is
	// delivered again with retry_attempt+1 (at most MaxRetries times).
	// Default 3s; negative disables automatic redelivery.
	AckTimeout time.Duration
	// MaxRetries bounds automatic redeliveries of one envelope. Default 3.
	MaxRetries int
	// BotUserID is the bot's user; BotID its bot_id. Defaults "UBOT", "BBOT".
	BotUserID, BotID string
	// AppID and TeamID appear in hello, payloads and auth.test.
	AppID, TeamID string
	// ResponseURLTTL is how long a response_url works. Default 30 minutes.
	ResponseURLTTL time.Duration
	// DisconnectGrace is how long a connection told to disconnect stays open
	// before the server closes it (Slack closes it a few seconds later).
	// Default 2s.
	DisconnectGrace time.Duration
	// EchoBotMessages makes every chat.postMessage by the bot come back as a
	// message event, as it does in Slack for apps subscribed to
	// message.channels; a bot must then ignore its own messages.
	EchoBotMessages bool
	// PageLimit is both the default and the largest limit of
	// conversations.history and conversations.replies: a larger limit gets
	// fewer messages and a next_cursor, as Slack allows ("fewer than the
	// requested number of items may be returned"). Default 15, Slack's value
	// since May 2025 for apps distributed outside the Marketplace (its
	// nominal defaults are 100 and 1000), so a bot that does not page is
	// caught here rather than by a long thread in production.
	PageLimit int
	// TriggerTTL is how long a trigger_id opens a modal. Default 3s, as in
	// Slack.
	TriggerTTL time.Duration
}

// Server is a running fake Slack. All methods are safe for concurrent use.
type Server struct {
	opts     Options
	hs       *httptest.Server
	upgrader websocket.Upgrader

	mu      sync.Mutex
	changed chan struct{}
	holds   map[string]chan struct{} // Web API methods held by Hold
	closed  bool
	timers  []*time.Timer
	seq     int
	lastTS  int64

	channels   map[string]*channel
	users      map[string]*user
	userGroups map[string][]string
	ephemerals map[string][]*storedMsg
	calls      map[string]int
	rejected   []Rejection
	incomplete int // requests whose body the client never finished sending

	rateBurst   int
	ratePerSec  float64
	buckets     map[string]*bucket
	respURLs    map[string]*responseURL
	uploads     map[string]*upload
	uploadPaths map[string]string
	files       map[string]*File

	faultQueue map[string][]pendingFault // LoseResponses and FailNext, per method
	faults     []Fault

	sock  socketState
	views viewState
}

// Message is one message as Slack stores it.
type Message struct {
	// ThreadTS is the parent's ts on replies — and on the parent itself once
	// it has replies, as Slack reports it.
	Channel, TS, ThreadTS, User, Text string
	// BotID is set for messages posted by a bot (the bot itself, or
	// PostUserMessage with a botID).
	BotID string
	// Blocks is the latest version, with the block_id and action_id values
	// Slack fills in when a block or interactive element lacks one.
	Blocks    json.RawMessage
	Ephemeral bool
	// Edits counts chat.update calls (and replace_original responses) that
	// changed the text or blocks.
	Edits int
	// Files are the files shared with this message; on a thread's parent,
	// every file shared into its thread.
	Files []File
	// Metadata is the message metadata, {"event_type":…,"event_payload":{…}}
	// in compact JSON; nil when the message has none.
	Metadata json.RawMessage
}

// File is an uploaded file after files.completeUploadExternal.
type File struct {
	ID, Name, Title   string
	Channel, ThreadTS string
	Content           []byte
}

// Rejection is one refused Web API call (or response_url post, upload, ack
// payload).
type Rejection struct{ Method, Error, Detail string }

type channel struct {
	id, name string
	created  int64
	members  []string
	top      []*storedMsg
	byTS     map[string]*storedMsg
}

type user struct{ id, name string }

type storedMsg struct {
	Message
	byBot   bool
	replies []*storedMsg
	// older holds earlier versions of Blocks, newest last: a client that has
	// not yet redrawn still shows them, and its users can click them.
	older []json.RawMessage
}

// NewServer starts a server on 127.0.0.1. Close it when done.
func NewServer(opts Options) *Server {
	if opts.BotToken == "" {
		opts.BotToken = DefaultBotToken
	}
	if opts.AppToken == "" {
		opts.AppToken = DefaultAppToken
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 5 * time.Second
	}
	if opts.AckTimeout == 0 {
		opts.AckTimeout = 3 * time.Second
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 3
	}
	if opts.BotUserID == "" {
		opts.BotUserID = DefaultBotUserID
	}
	if opts.BotID == "" {
		opts.BotID = DefaultBotID
	}
	if opts.AppID == "" {
		opts.AppID = DefaultAppID
	}
	if opts.TeamID == "" {
		opts.TeamID = DefaultTeamID
	}
	if opts.ResponseURLTTL <= 0 {
		opts.ResponseURLTTL = 30 * time.Minute
	}
	if opts.DisconnectGrace <= 0 {
		opts.DisconnectGrace = 2 * time.Second
	}
	if opts.PageLimit <= 0 {
		opts.PageLimit = 15
	}
	if opts.TriggerTTL <= 0 {
		opts.TriggerTTL = defaultTriggerTTL
	}
	s := &Server{
		opts:        opts,
		changed:     make(chan struct{}),
		channels:    map[string]*channel{},
		users:       map[string]*user{},
		userGroups:  map[string][]string{},
		ephemerals:  map[string][]*storedMsg{},
		calls:       map[string]int{},
		rateBurst:   30,
		ratePerSec:  5,
		buckets:     map[string]*bucket{},
		respURLs:    map[string]*responseURL{},
		uploads:     map[string]*upload{},
		uploadPaths: map[string]string{},
		files:       map[string]*File{},
		faultQueue:  map[string][]pendingFault{},
		sock:        newSocketState(),
		views:       newViewState(),
	}
	// Slack's edge accepts websocket upgrades from any origin; slack-go sends
	// Origin: https://api.slack.com, which would fail the default check.
	s.upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	s.users[opts.BotUserID] = &user{id: opts.BotUserID, name: "deploybot"}

	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.handleAPI)
	mux.HandleFunc("/link/", s.handleLink)
	mux.HandleFunc("/hooks/", s.handleResponseURL)
	mux.HandleFunc("/upload/", s.handleUpload)
	s.hs = httptest.NewServer(mux)
	return s
}

// Close closes every connection and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	conns := s.sock.all()
	s.notifyLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.hs.Close()
}

// APIURL is the Web API base, ending in "/", for slack.OptionAPIURL.
func (s *Server) APIURL() string { return s.hs.URL + "/api/" }

// URL is the server's root, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.hs.URL }

// BotToken and AppToken return the accepted tokens (the defaults if Options
// left them empty).
func (s *Server) BotToken() string { return s.opts.BotToken }

// AppToken returns the accepted app-level token.
func (s *Server) AppToken() string { return s.opts.AppToken }

// BotUserID returns the bot's user id.
func (s *Server) BotUserID() string { return s.opts.BotUserID }

// AddChannel creates a channel the bot is a member of.
func (s *Server) AddChannel(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addChannelLocked(id, name)
	s.notifyLocked()
}

func (s *Server) addChannelLocked(id, name string) *channel {
	if c, ok := s.channels[id]; ok {
		c.name = name
		return c
	}
	c := &channel{id: id, name: name, created: time.Now().Unix(), byTS: map[string]*storedMsg{},
		members: []string{s.opts.BotUserID}}
	s.channels[id] = c
	return c
}

// AddUser adds a workspace member.
func (s *Server) AddUser(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = &user{id: id, name: name}
	s.notifyLocked()
}

// AddUserGroup creates a user group (a "subteam") with these members.
func (s *Server) AddUserGroup(id string, userIDs ...string) {
	s.SetUserGroupUsers(id, userIDs...)
}

// SetUserGroupUsers replaces a user group's members, creating it if needed.
func (s *Server) SetUserGroupUsers(id string, userIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userGroups[id] = slices.Clone(userIDs)
	s.notifyLocked()
}

// Members lists a channel's members (nil for an unknown channel).
func (s *Server) Members(channelID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.channels[channelID]; ok {
		return slices.Clone(c.members)
	}
	return nil
}

// ChannelByName finds a channel's id by name (e.g. one the bot created).
func (s *Server) ChannelByName(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.channels {
		if c.name == name {
			return id, true
		}
	}
	return "", false
}

// Messages returns the channel's top-level messages in order, latest versions.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[channelID]
	if !ok {
		return nil
	}
	return copyMsgs(c.top)
}

// Thread returns the replies in the thread started by ts, in order.
func (s *Server) Thread(channelID, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[channelID]
	if !ok {
		return nil
	}
	m, ok := c.byTS[ts]
	if !ok {
		return nil
	}
	return copyMsgs(m.replies)
}

// Message returns one message, top-level or reply.
func (s *Server) Message(channelID, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[channelID]
	if !ok {
		return Message{}, false
	}
	m, ok := c.byTS[ts]
	if !ok {
		return Message{}, false
	}
	return m.copy(), true
}

// Ephemerals returns the chat.postEphemeral messages shown to a user.
func (s *Server) Ephemerals(userID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyMsgs(s.ephemerals[userID])
}

// Files returns every completed upload, in no particular order.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.files))
	for _, f := range s.files {
		out = append(out, f.copy())
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Rejected lists every refusal, in order: Web API calls (Method is the API
// method), and also posts to a response_url ("response_url"), uploads
// ("upload"), malformed or unknown acks ("ack"), bad websocket tickets
// ("websocket") and clicks on buttons that are not there ("click") — all of
// them bugs a test should see. Metadata that Slack drops with only a warning
// (invalid_metadata_schema) is listed too, under the method that dropped it.
func (s *Server) Rejected() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rejected)
}

// Incomplete counts Web API requests cut off mid-body by the client (a
// process killed while sending): never made, so neither done nor refused.
func (s *Server) Incomplete() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.incomplete
}

// ClearRejected forgets past refusals, for tests that provoke some on
// purpose and then assert that nothing else was refused.
func (s *Server) ClearRejected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = nil
}

// Calls counts calls of a Web API method, refused ones included.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// SetRateLimit sets the per-channel token bucket of chat.postMessage. Slack
// allows short bursts above its nominal 1/s; past the bucket it answers 429
// with Retry-After.
func (s *Server) SetRateLimit(burst int, perSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateBurst, s.ratePerSec = burst, perSecond
	s.buckets = map[string]*bucket{}
}

// WaitFor waits until cond holds, re-checking on every state change of the
// server (and every 25ms, for conditions on state outside it). cond must not
// block on the server's own lock, so it may call any Server method.
func (s *Server) WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := s.wait(timeout, cond); err != nil {
		t.Fatalf("slacktest: timed out after %v waiting for %s", timeout, what)
	}
}

// wait is WaitFor without a testing.TB.
func (s *Server) wait(timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		ch := s.changeChan()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline.C:
			if cond() {
				return nil
			}
			return fmt.Errorf("timed out after %v", timeout)
		}
	}
}

func (s *Server) changeChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// notifyLocked wakes every waiter; callers hold s.mu.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// afterFuncLocked runs f later unless the server is closed first.
func (s *Server) afterFuncLocked(d time.Duration, f func()) {
	s.timers = append(s.timers, time.AfterFunc(d, f))
}

func (s *Server) rejectLocked(method, code, detail string) {
	s.rejected = append(s.rejected, Rejection{Method: method, Error: code, Detail: detail})
	s.notifyLocked()
}

// nextTSLocked returns a unique, increasing Slack timestamp near now.
func (s *Server) nextTSLocked() string {
	us := time.Now().UnixMicro()
	if us <= s.lastTS {
		us = s.lastTS + 1
	}
	s.lastTS = us
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

func (s *Server) nextIDLocked(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%07d", prefix, s.seq)
}

func (s *Server) userLocked(id string) *user {
	if u, ok := s.users[id]; ok {
		return u
	}
	// Anyone able to click or type exists in Slack; tests need not AddUser.
	u := &user{id: id, name: strings.ToLower(id)}
	s.users[id] = u
	return u
}

func (s *Server) channelForEventLocked(id string) *channel {
	if c, ok := s.channels[id]; ok {
		return c
	}
	return s.addChannelLocked(id, strings.ToLower(id))
}

func (m *storedMsg) copy() Message {
	out := m.Message
	out.Blocks = slices.Clone(m.Blocks)
	out.Metadata = slices.Clone(m.Metadata)
	out.Files = make([]File, len(m.Files))
	for i, f := range m.Files {
		out.Files[i] = f.copy()
	}
	if len(out.Files) == 0 {
		out.Files = nil
	}
	return out
}

func (f File) copy() File {
	f.Content = slices.Clone(f.Content)
	return f
}

func copyMsgs(ms []*storedMsg) []Message {
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = m.copy()
	}
	return out
}

// permalink follows Slack's archive link format.
func permalink(channelID, ts, threadTS string) string {
	p := fmt.Sprintf("https://%s.slack.com/archives/%s/p%s", DefaultTeamName, channelID, strings.ReplaceAll(ts, ".", ""))
	if threadTS != "" && threadTS != ts {
		p += fmt.Sprintf("?thread_ts=%s&cid=%s", threadTS, channelID)
	}
	return p
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// shortID looks like the block_id and action_id values Slack generates.
func shortID() string {
	b := make([]byte, 5)
	for i := range b {
		b[i] = idAlphabet[mrand.IntN(len(idAlphabet))]
	}
	return string(b)
}

// newUUID makes envelope ids, which Slack sends as UUIDs.
func newUUID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// secret is an unguessable path or ticket component.
func secret() string { return crand.Text() }
