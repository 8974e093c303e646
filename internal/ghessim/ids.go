package ghessim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// randomHex returns n random bytes in hex (a commit SHA is randomHex(20)).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// randomAlphanumeric returns n random characters of [0-9A-Za-z], the alphabet of GitHub tokens.
func randomAlphanumeric(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]byte, 0, n)
	buf := make([]byte, 1)
	for len(out) < n {
		_, _ = rand.Read(buf)
		// Bytes past the last whole multiple of 62 are dropped so that every character is equally likely.
		if int(buf[0]) < 256/len(alphabet)*len(alphabet) {
			out = append(out, alphabet[int(buf[0])%len(alphabet)])
		}
	}
	return string(out)
}

// newGUID returns a random UUID, the form of X-GitHub-Delivery and X-GitHub-Request-Id.
func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// nodeID returns GitHub's legacy global node id for an object, e.g. "MDQ6VXNlcjE=" for User 1.
func nodeID(typeName string, id int64) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "0%d:%s%d", len(typeName), typeName, id))
}
