package ghessim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"sync"
)

// AppKey is a private key for the App the simulator plays, generated once per test process and
// shared by the packages whose tests run against the simulator (a 2048-bit key takes a good part
// of a second under -race). Start the simulator with its public half.
var AppKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("ghessim: generate app key: " + err.Error())
	}
	return k
})

// AppKeyPEM is AppKey as the App's private-key secret holds it (PKCS #1 PEM).
func AppKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(AppKey())})
}
