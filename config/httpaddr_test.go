package config

import (
	"strings"
	"testing"
)

// The container image sets DEPLOYBOT_HTTP_ADDR so /healthz, /readyz and
// /metrics are reachable from outside it; a bad value is named, not used.
func TestHTTPAddrFromTheEnvironment(t *testing.T) {
	c := mustParse(t, minimal+"http_addr: 127.0.0.1:9999\n", envMap(map[string]string{"DEPLOYBOT_HTTP_ADDR": "0.0.0.0:9090"}))
	if c.HTTPAddr != "0.0.0.0:9090" {
		t.Errorf("http_addr with DEPLOYBOT_HTTP_ADDR set = %q, want the variable's 0.0.0.0:9090", c.HTTPAddr)
	}
	if c := mustParse(t, minimal, noEnv); c.HTTPAddr != "127.0.0.1:9090" {
		t.Errorf("http_addr without the variable = %q, want the loopback default", c.HTTPAddr)
	}
	p := problems(t, minimal, envMap(map[string]string{"DEPLOYBOT_HTTP_ADDR": "9090"}))
	if len(p) != 1 || p[0].Path != "env DEPLOYBOT_HTTP_ADDR" || !strings.Contains(p[0].Message, "host:port") {
		t.Errorf("a port alone in DEPLOYBOT_HTTP_ADDR: %v", p)
	}
}
