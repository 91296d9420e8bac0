package slacktest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"
)

// A process killed while sending a request leaves half a body: that is not
// a request Slack refused (the crash matrix would count it as one), it is a
// request that was never made.
func TestBodyCutOffIsNotARejection(t *testing.T) {
	srv := newServer(t, Options{})
	u, _ := url.Parse(srv.APIURL())
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	body := "token=xoxb-test&channel=C1&ts=1.000000&text=half"
	fmt.Fprintf(conn, "POST /api/chat.update HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		u.Host, len(body)+100, body)
	conn.Close()
	srv.WaitFor(t, 10*time.Second, "the cut request seen", func() bool { return srv.Incomplete() == 1 })
	if r := srv.Rejected(); len(r) != 0 {
		t.Fatalf("a request cut off by its sender was counted as refused by Slack: %+v", r)
	}
}
