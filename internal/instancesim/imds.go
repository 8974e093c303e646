package instancesim

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// imds is an instance's metadata service with IMDSv2 required (HttpTokens=required), as the
// launch template sets it: PUT /latest/api/token with a TTL header gives a token, and a GET is
// answered only with that token (401 otherwise, as EC2 answers). It serves what the bootstrap
// reads: instance-id, placement/region and, as with InstanceMetadataTags=enabled, the instance
// tags (tags/instance lists the keys, one a line; tags/instance/<key> is a value).
type imds struct {
	token string
	meta  map[string]string // path under /latest/meta-data/ -> body
}

func newIMDS(instanceID, region string, tags map[string]string) *imds {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	m := &imds{token: "AQAEA" + hex.EncodeToString(b), meta: map[string]string{
		"instance-id":      instanceID,
		"placement/region": region,
		"tags/instance":    strings.Join(slices.Sorted(maps.Keys(tags)), "\n"),
	}}
	for k, v := range tags {
		m.meta["tags/instance/"+k] = v
	}
	return m
}

func (m *imds) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/latest/api/token":
		if r.Method != http.MethodPut {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		// EC2 wants a TTL of 1 to 21600 seconds and answers 400 without one.
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		_, _ = io.WriteString(w, m.token)
	case r.Method != http.MethodGet:
		http.Error(w, "", http.StatusMethodNotAllowed)
	case r.Header.Get("X-aws-ec2-metadata-token") != m.token:
		http.Error(w, "", http.StatusUnauthorized)
	default:
		path, ok := strings.CutPrefix(r.URL.Path, "/latest/meta-data/")
		body, found := m.meta[path]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, body)
	}
}
