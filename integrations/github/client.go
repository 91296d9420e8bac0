package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v57/github"
)

// Auth holds the credentials: either a Token (a personal access token or any
// token GitHub accepts as "Bearer"), or a GitHub App installation (AppID,
// InstallationID and the App's PEM private key). When both are given the
// App is used and the token ignored: an App is preferable in production
// because its installation tokens expire within the hour and its actions
// are attributed to the bot, and a stray GITHUB_TOKEN in the environment
// should not take over.
type Auth struct {
	Token          string
	AppID          int64
	InstallationID int64
	PrivateKey     []byte
}

// Clock lets tests make waits instantaneous and observable. Sleep must
// return early with ctx.Err() when the context ends.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Option configures a Client.
type Option func(*options)

type options struct {
	httpClient  *http.Client
	maxWait     time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	attempts    int
	clock       Clock
	actor       string
	// attemptTimeout bounds one attempt's wait for response headers;
	// tests shorten it.
	attemptTimeout time.Duration
}

// defaultAttemptTimeout is how long one request may wait for GitHub's
// response headers. GitHub answers even large listings well within it; a
// request stuck longer is on a dead connection and is better retried (or
// reported) than left to hang a deploy step forever.
const defaultAttemptTimeout = 60 * time.Second

// WithHTTPClient sets the client whose Transport, Timeout and redirect policy
// are used underneath authentication and retries. The given client is not
// modified. Its Timeout bounds a whole call, retries and waits included.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.httpClient = hc }
}

// WithMaxWait sets the longest wait for a primary rate limit to reset (and
// for a secondary limit's Retry-After) before giving up with a
// *RateLimitError. The default of two minutes keeps a chat step responsive:
// longer waits are better left to a human pressing retry.
func WithMaxWait(d time.Duration) Option {
	return func(o *options) { o.maxWait = d }
}

// WithBackoff sets the first and the longest wait between retries of
// failed requests (default 1s and 30s); tests shrink them.
func WithBackoff(base, max time.Duration) Option {
	return func(o *options) { o.backoffBase, o.backoffMax = base, max }
}

// WithAttempts sets how many times a request is sent in all before a
// transient failure is returned (default 5).
func WithAttempts(n int) Option {
	return func(o *options) { o.attempts = n }
}

// WithClock replaces the wall clock used for waits, so tests can share one
// fake clock between the client and githubtest.Server.
func WithClock(c Clock) Option {
	return func(o *options) { o.clock = c }
}

// WithActor sets the login deploybot acts as on GitHub (the author of its
// reviews, the actor of the workflow runs it dispatches), instead of asking
// GitHub for it (see Client.Actor). Useful when the credentials cannot read
// it, such as a token without the read:user scope.
func WithActor(login string) Option {
	return func(o *options) { o.actor = login }
}

// Client talks to one GitHub (github.com or an Enterprise server). It is safe
// for concurrent use.
type Client struct {
	gh      *gh.Client
	webURL  string
	secret  string // the static token, scrubbed from error text as a last defence
	clock   Clock
	maxWait time.Duration
	app     *ghinstallation.Transport
	backoff time.Duration // the wait before re-checking after an ambiguous answer

	tokenTimeout time.Duration // bounds GitToken's installation token request

	// appJWT reads the App itself (GET /app), which only a JWT may.
	appJWT *gh.Client

	noRunDetails atomic.Bool // GitHub refused return_run_details once

	actorMu sync.Mutex
	actor   string // cached once known
}

// GitToken is a token for git over https (pushing the run branch): the
// static token, or a fresh installation token of the GitHub App.
func (c *Client) GitToken(ctx context.Context) (string, error) {
	if c.app != nil {
		// The token request runs outside the http.Client, so its Timeout
		// does not cover it: bound it here.
		ctx, cancel := context.WithTimeout(ctx, c.tokenTimeout)
		defer cancel()
		return c.app.Token(ctx)
	}
	return c.secret, nil
}

// New returns a Client for the REST API at apiURL (for example
// "https://api.github.com/" or "https://ghe.example.com/api/v3/"; a missing
// trailing slash is added).
func New(apiURL string, auth Auth, opts ...Option) (*Client, error) {
	o := options{
		maxWait:     2 * time.Minute,
		backoffBase: time.Second,
		backoffMax:  30 * time.Second,
		attempts:    5,
		clock:       realClock{},

		attemptTimeout: defaultAttemptTimeout,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.attempts < 1 {
		o.attempts = 1
	}
	if o.backoffMax < o.backoffBase {
		o.backoffMax = o.backoffBase
	}

	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	base, err := url.Parse(apiURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("github: api_url %q is not an http(s) URL", apiURL)
	}

	// A copy, so the caller's client is not modified; its Timeout is set
	// below when the caller gave none.
	hc := new(http.Client)
	if o.httpClient != nil {
		*hc = *o.httpClient
	}
	// Never wait forever. The per-attempt bound sits in the transport, under
	// the retries, so that a dead connection is retried; the whole call is
	// bounded too, generously enough for every attempt plus the rate-limit
	// and backoff waits the retry layer is allowed (WithMaxWait), so waiting
	// out a rate limit keeps working.
	var rt http.RoundTripper
	if hc.Transport != nil {
		rt = hc.Transport
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = o.attemptTimeout
		rt = tr
	}
	if hc.Timeout <= 0 {
		hc.Timeout = o.maxWait + time.Duration(o.attempts)*(o.attemptTimeout+o.backoffMax)
	}
	// Retries sit below authentication so that the App's installation token
	// request is retried like any other.
	rt = &retryTransport{
		next:     rt,
		clock:    o.clock,
		attempts: o.attempts,
		base:     o.backoffBase,
		max:      o.backoffMax,
		maxWait:  o.maxWait,
	}

	c := &Client{tokenTimeout: hc.Timeout, webURL: WebURL(apiURL), clock: o.clock, maxWait: o.maxWait, backoff: o.backoffBase, actor: o.actor}
	useApp := auth.AppID != 0 || auth.InstallationID != 0 || len(auth.PrivateKey) > 0
	switch {
	case auth.Token != "" && !useApp:
		if strings.ContainsAny(auth.Token, " \t\r\n") {
			return nil, errors.New("github: the token contains whitespace; check GITHUB_TOKEN")
		}
		c.secret = auth.Token
		rt = &tokenTransport{token: auth.Token, next: rt}
	case useApp:
		if auth.AppID == 0 || auth.InstallationID == 0 || len(auth.PrivateKey) == 0 {
			return nil, errors.New("github: GitHub App credentials need the app id, the installation id and the private key")
		}
		itr, err := ghinstallation.New(rt, auth.AppID, auth.InstallationID, auth.PrivateKey)
		if err != nil {
			// The parser's message never quotes the key.
			return nil, fmt.Errorf("github: reading the GitHub App private key: %w", err)
		}
		itr.BaseURL = strings.TrimSuffix(apiURL, "/")
		// ghinstallation's own default client has no timeout. (v2.9 sends
		// the token request straight through rt, whose header timeout
		// applies; GitToken bounds the whole call with tokenTimeout.)
		itr.Client = &http.Client{Transport: rt, Timeout: hc.Timeout}
		c.app = itr
		atr, err := ghinstallation.NewAppsTransport(rt, auth.AppID, auth.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("github: reading the GitHub App private key: %w", err)
		}
		atr.BaseURL = itr.BaseURL
		c.appJWT = gh.NewClient(&http.Client{Transport: atr, Timeout: hc.Timeout})
		c.appJWT.BaseURL = base
		c.appJWT.UserAgent = "deploybot"
		rt = itr
	default:
		return nil, errors.New("github: no credentials: set a token or GitHub App credentials")
	}
	hc.Transport = rt

	c.gh = gh.NewClient(hc)
	c.gh.BaseURL = base
	c.gh.UploadURL = base
	c.gh.UserAgent = "deploybot"
	return c, nil
}

// Actor is the login deploybot acts as on GitHub: the author of its reviews
// and pull requests and the actor of the workflow runs it dispatches. It is
// what WithActor set, or else asked once and remembered: for a token, the
// token's user (GET /user); for a GitHub App, "<slug>[bot]" (GET /app with
// the App's JWT), the login GitHub gives everything an installation does.
func (c *Client) Actor(ctx context.Context) (string, error) {
	c.actorMu.Lock()
	defer c.actorMu.Unlock()
	if c.actor != "" {
		return c.actor, nil
	}
	if c.appJWT != nil {
		var a *gh.App
		err := c.call(ctx, "reading the GitHub App's name (to know its bot login)", func() (err error) {
			a, _, err = c.appJWT.Apps.Get(ctx, "")
			return err
		})
		if err != nil {
			return "", err
		}
		if a.GetSlug() == "" {
			return "", errors.New("github: GitHub did not name the App's slug; set the actor explicitly")
		}
		c.actor = a.GetSlug() + "[bot]"
		return c.actor, nil
	}
	var u *gh.User
	err := c.call(ctx, "reading the login of the GitHub token's user", func() (err error) {
		u, _, err = c.gh.Users.Get(ctx, "")
		return err
	})
	if err != nil {
		return "", err
	}
	if u.GetLogin() == "" {
		return "", errors.New("github: GitHub did not name the token's user; set the actor explicitly")
	}
	c.actor = u.GetLogin()
	return c.actor, nil
}

// WebURL is the web address of the GitHub behind the API at apiURL, for links
// shown to people: api.github.com → https://github.com, an Enterprise
// host/api/v3 → https://host. Any other URL (a test server) is returned
// without its trailing slash.
func (c *Client) WebURL() string { return c.webURL }

// WebURL derives the web address from a REST API address; see Client.WebURL.
func WebURL(apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return "https://github.com"
	}
	path := strings.TrimSuffix(u.Path, "/")
	switch {
	case strings.HasPrefix(u.Host, "api."):
		// api.github.com and GHE.com data-residency hosts (api.ACME.ghe.com).
		u.Host = strings.TrimPrefix(u.Host, "api.")
		path = ""
	case strings.HasSuffix(path, "/api/v3"):
		path = strings.TrimSuffix(path, "/api/v3")
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = path, "", "", ""
	return strings.TrimSuffix(u.String(), "/")
}

// tokenTransport adds the static token to every request.
type tokenTransport struct {
	token string
	next  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.next.RoundTrip(r)
}

// splitRepo turns "owner/name" into its parts.
func splitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("github: repository %q is not of the form owner/name", repo)
	}
	return owner, name, nil
}

// pathEscape protects tags and file names that go-github splices into URL
// paths unescaped.
func pathEscape(s string) string { return url.PathEscape(s) }

// call runs one go-github call and turns its error into one that names op.
// go-github refuses, without any request, calls made before a primary rate
// limit it has seen resets; when that reset is near, call waits and tries
// once more, as the transport does for limits it meets itself.
func (c *Client) call(ctx context.Context, op string, fn func() error) error {
	err := fn()
	var rl *gh.RateLimitError
	if errors.As(err, &rl) && !rl.Rate.Reset.Time.IsZero() {
		wait := rl.Rate.Reset.Time.Sub(c.clock.Now())
		if wait <= c.maxWait {
			if serr := c.clock.Sleep(ctx, wait+time.Second); serr != nil {
				return c.wrap(op, serr)
			}
			err = fn()
		}
	}
	return c.wrap(op, err)
}
