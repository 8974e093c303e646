package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// signatureValid reports whether header ("sha256=<hex>", X-Hub-Signature-256) is the HMAC-SHA256
// of body under any of the secrets. The comparison is constant-time; a malformed header is
// simply not valid.
func signatureValid(header string, body []byte, secrets ...[]byte) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(hexSig) != 2*sha256.Size {
		return false
	}
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], []byte(hexSig)); err != nil {
		return false
	}
	valid := false
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		mac := hmac.New(sha256.New, s)
		mac.Write(body)
		// Check every secret, so timing does not tell which one matched.
		valid = hmac.Equal(mac.Sum(nil), got[:]) || valid
	}
	return valid
}
