package main

import (
	"sort"
	"testing"
	"time"
)

// BenchmarkAck measures how long Slack waits for the bot's Socket Mode ack
// (send → ack over a loopback websocket), with the bot answering each
// command in the background. Slack redelivers after 3 s.
func BenchmarkAck(b *testing.B) {
	h := newHarness(b)
	h.start()
	defer h.stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := h.srv.SlashCommand(carol, random, "/deploy", "help")
		if _, err := h.srv.WaitAck(e, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	lat := h.srv.AckLatencies()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
