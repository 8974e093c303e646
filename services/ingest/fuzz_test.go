package main

import (
	"net/http"
	"testing"
)

// FuzzHandle drives the signature and parse path with arbitrary bodies and signature headers.
// Seeds: valid spotrunner deliveries of each action, a malformed label, an ignored job, junk.
// Invariants: Handle always answers with one of the documented statuses; nothing is published
// unless the signature was valid; anything published validates as a queue message.
func FuzzHandle(f *testing.F) {
	for _, a := range []string{"queued", "in_progress", "completed", "waiting"} {
		b := spotrunnerJob(a)
		f.Add(b, sign(testSecret, b), "workflow_job")
	}
	bad := spotrunnerJob("queued", "self-hosted", "spotrunner/x/cpu=0,cpu=1")
	f.Add(bad, sign(testSecret, bad), "workflow_job")
	other := spotrunnerJob("queued", "ubuntu-latest")
	f.Add(other, sign(testSecret, other), "workflow_job")
	f.Add([]byte(`{"zen":"ok"}`), sign(testSecret, []byte(`{"zen":"ok"}`)), "ping")
	f.Add([]byte("not json"), "sha256=00", "workflow_job")
	f.Add([]byte(`{"action":"queued","workflow_job":{"id":-1}}`), "", "workflow_job")

	allowed := map[int]bool{
		http.StatusOK: true, http.StatusAccepted: true, http.StatusBadRequest: true,
		http.StatusUnauthorized: true, http.StatusRequestEntityTooLarge: true,
	}
	f.Fuzz(func(t *testing.T, body []byte, sig, event string) {
		q := &fakeQueue{}
		h := newHandler(q, Filter{AllowPublic: true})
		req := delivery(event, "fuzz", body, "")
		req.Headers["x-hub-signature-256"] = sig
		got := call(t, h, req)
		if !allowed[got.Code] {
			t.Fatalf("status %d (%+v) is not a documented answer", got.Code, got)
		}
		signed := signatureValid(sig, body, []byte(testSecret))
		if len(q.msgs) > 0 && !signed {
			t.Fatalf("published without a valid signature")
		}
		if got.Code == http.StatusUnauthorized && signed {
			t.Fatalf("valid signature answered 401")
		}
		for _, m := range q.msgs {
			if err := m.Validate(); err != nil {
				t.Fatalf("published an invalid message: %v", err)
			}
		}
	})
}
