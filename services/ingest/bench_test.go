package main

import (
	"context"
	"testing"

	"github.com/spotrunner/spotrunner/libs/queue"
)

// discardQueue accepts every message and keeps none, so the benchmark measures ingest alone.
type discardQueue struct{}

func (discardQueue) Publish(context.Context, queue.Message) error { return nil }

// BenchmarkHandle measures ingest's own work on a real payload: signature verification, parse,
// filter and message building, with the secret cached and the queue call faked. Fixture: the
// api.github.com queued workflow_job example #6 (user-owned repo, self-hosted labels),
// relabelled to spotrunner: 11 KB of compact JSON, as GitHub sends it.
func BenchmarkHandle(b *testing.B) {
	body := variant(b, workflowJobExamples(b, "api.github.com")[6], true)
	h := newHandler(discardQueue{}, Filter{AllowPublic: true})
	req := delivery("workflow_job", "bench", body, testSecret)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		resp, _ := h.Handle(ctx, req)
		if resp.StatusCode != 202 {
			b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
		}
	}
}
