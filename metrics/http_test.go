package metrics

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func listen(t *testing.T) (*Server, chan error) {
	t.Helper()
	reg, err := NewRegistry(NewIntegrity(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen("127.0.0.1:0", reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	return s, served
}

// /metrics serves the registry, with the Go and process collectors; nothing
// else is served.
func TestServeMetrics(t *testing.T) {
	s, served := listen(t)
	base := "http://" + s.Addr().String()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"eventlog_server_verify_interval_seconds 60", "go_goroutines ", "process_resident_memory_bytes "} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET /metrics: %s, no %q in:\n%.2000s", resp.Status, want, body)
		}
	}
	for _, path := range []string{"/", "/debug/pprof/", "/metrics/x"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("still serving after Shutdown")
	}
}

// A client cannot hold the endpoint with huge headers or by never
// finishing them.
func TestHostileScrapers(t *testing.T) {
	s, _ := listen(t)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: %s", resp.Status)
	}
	// Headers begun and never finished: closed after ReadHeaderTimeout.
	slow, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
	start := time.Now()
	slow.SetReadDeadline(time.Now().Add(readHeaderTimeout + 20*time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Errorf("a connection with unfinished headers: %v (not closed by the server)", err)
	}
	if d := time.Since(start); d < readHeaderTimeout-time.Second {
		t.Errorf("closed after %s, before the %s header timeout", d, readHeaderTimeout)
	}
	// More connections than the cap, all idle: a scrape still gets in
	// once the idle ones time out, and never more than maxConns are open.
	var idle []net.Conn
	for range maxConns + 4 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	client := &http.Client{Timeout: readHeaderTimeout + 30*time.Second}
	resp, err = client.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatalf("a scrape behind %d idle connections: %v", maxConns+4, err)
	}
	resp.Body.Close()
}

func TestListenBadAddress(t *testing.T) {
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, addr := range []string{"nohost:notaport", "256.0.0.1:9464", "127.0.0.1:99999"} {
		if s, err := Listen(addr, reg, logger); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
			t.Errorf("%q: %v", addr, err)
			if s != nil {
				s.Shutdown(t.Context())
			}
		}
	}
	// An address in use.
	s, _ := listen(t)
	if _, err := Listen(s.Addr().String(), reg, logger); err == nil {
		t.Errorf("%s twice: no error", s.Addr())
	}
}
