package lambdasim

import (
	"context"
	"testing"
)

// BenchmarkInvoke: the cost of one warm invocation of the echo Lambda through the emulator (the
// local world's per-invocation overhead over the handler itself).
func BenchmarkInvoke(b *testing.B) {
	f := startEcho(b, FunctionOptions{})
	ctx := context.Background()
	if _, err := f.Invoke(ctx, []byte(`{}`)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := f.Invoke(ctx, []byte(`{}`)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColdStart: starting an emulator and the echo Lambda's first invocation (which starts
// its runtime), as a new execution environment does.
func BenchmarkColdStart(b *testing.B) {
	emulator, bootstrap := rie(b), echoBootstrap(b)
	ctx := context.Background()
	for b.Loop() {
		f, err := StartFunction(ctx, FunctionOptions{Name: "cold", RIE: emulator, Bootstrap: bootstrap, Endpoint: "http://127.0.0.1:9"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Invoke(ctx, []byte(`{}`)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.Close()
		b.StartTimer()
	}
}
