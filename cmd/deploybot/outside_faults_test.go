package main

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// faultProxy stands in front of a test server and misbehaves on demand:
// "refuse" (nothing listens on its port), "garbage" (200 with malformed
// JSON), "hang" (accepts, never answers), or "pass".
type faultProxy struct {
	t     *testing.T
	addr  string
	proxy *httputil.ReverseProxy

	mu   sync.Mutex
	mode string
	srv  *http.Server
	hits int
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, proxy: httputil.NewSingleHostReverseProxy(u), mode: "pass"}
	p.listen("127.0.0.1:0")
	t.Cleanup(func() { p.set("refuse") })
	return p
}

func (p *faultProxy) URL() string { return "http://" + p.addr + "/" }

func (p *faultProxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("fault proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	srv := &http.Server{Handler: p}
	p.srv = srv
	go srv.Serve(ln)
}

// set switches the fault. Refusing closes the port; leaving "refuse" opens
// it again at the same address.
func (p *faultProxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == mode {
		return
	}
	switch {
	case mode == "refuse":
		p.srv.Close()
	case p.mode == "refuse":
		p.listen(p.addr)
	}
	p.mode = mode
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	mode := p.mode
	p.hits++
	p.mu.Unlock()
	switch mode {
	case "garbage":
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"dag_runs": [{"dag_id": "image_data_refresh", "state": `))
	case "hang":
		<-r.Context().Done()
	default:
		p.proxy.ServeHTTP(w, r)
	}
}

// GitHub, Airflow and Sentry refusing connections, answering malformed
// JSON, or never answering: the step that needed them fails and names the
// cause, offers Retry, and Retry works once the system is back; the Sentry
// watch says it could not check, and says so once.
func TestOutsideSystemsFailingEachWay(t *testing.T) {
	causes := map[string][]string{
		"refuse":  {"refused"},
		"garbage": {"JSON", "json", "unexpected", "invalid", "malformed", "decod"},
		"hang":    {"timeout", "Timeout", "timed out", "deadline", "did not answer"},
	}
	for _, fault := range []string{"refuse", "garbage", "hang"} {
		t.Run(fault, func(t *testing.T) {
			w := newWorld(t, all)
			w.watch = "10s"
			w.top = "http_timeout: 1s\n"
			af, gh, sn := newFaultProxy(t, w.af.URL()), newFaultProxy(t, w.gh.URL()), newFaultProxy(t, w.sn.URL())
			w.via = map[string]string{"airflow": af.URL(), "github": gh.URL(), "sentry": sn.URL()}
			w.writeConfig(all)
			w.start()

			named := func(step string) {
				t.Helper()
				w.waitButton(w.msgTS, step, "retry")
				text := w.text(w.msgTS)
				for _, c := range causes[fault] {
					if strings.Contains(text, c) {
						return
					}
				}
				t.Errorf("%s failed without naming the cause (%v):\n%s", step, causes[fault], text)
			}

			// Airflow, before anything else.
			af.set(fault)
			ts := w.deploy()
			named("Check Airflow")
			af.set("pass")
			// GitHub fails from before the release step starts: the Retry
			// of the Airflow check leads straight into it.
			gh.set(fault)
			w.step(ts, "Check Airflow", "retry", alice)
			w.waitText(ts, "no data refresh running")

			// GitHub: the release preview.
			named("Publish the release")
			gh.set("pass")
			w.step(ts, "Publish the release", "retry", alice)
			w.step(ts, "Publish the release", "publish", alice)
			w.step(ts, "Staging (dev): verify the plan", "approve", alice)
			w.step(ts, "Production (prod): verify the plan", "approve", bob)

			// Sentry, during the watch.
			w.waitThread("Watching Sentry project")
			sn.set(fault)
			w.waitThread("Sentry does not answer")
			sn.set("pass")
			w.waitThread("Sentry answers again")
			w.waitThread("Sentry watch over")
			if n := w.countThread("Sentry does not answer"); n != 1 {
				t.Errorf("the Sentry outage was said %d times", n)
			}
			w.assertNoRejections()
		})
	}
}
