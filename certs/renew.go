package certs

// Renewal of short-lived certificates: the node makes a new key, the hub
// signs it for the identity of the node's current certificate, and the node
// stores the pair and swaps it into its running TLS configurations.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ronda-jakarta/ronda/internal/fsutil"
)

// NewKeyCSR makes a key in memory and a certificate request for it.
func NewKeyCSR() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ronda renewal"}}, key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// RenewDue reports whether a certificate should be renewed now: when less
// than before is left, or (before 0) less than a third of its lifetime.
func RenewDue(leaf *x509.Certificate, before time.Duration, now time.Time) bool {
	if before <= 0 {
		before = leaf.NotAfter.Sub(leaf.NotBefore) / 3
	}
	return leaf.NotAfter.Sub(now) < before
}

// WriteRenewed checks that certPEM belongs to key and stores both in place
// of certFile and keyFile: first as .new files, then the key renamed, then
// the certificate; RecoverRenewal finishes or undoes a write a crash cut
// short. It returns the pair ready to Swap in.
func WriteRenewed(certFile, keyFile string, certPEM []byte, key *ecdsa.PrivateKey) (tls.Certificate, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: the renewed certificate does not match the new key: %w", err)
	}
	if err := fsutil.WriteSynced(keyFile+".new", keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := fsutil.WriteSynced(certFile+".new", certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.Rename(keyFile+".new", keyFile); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.Rename(certFile+".new", certFile); err != nil {
		return tls.Certificate{}, err
	}
	return pair, nil
}

// RecoverRenewal completes a renewal interrupted between the two renames
// (the key is new, the certificate still old) or discards one interrupted
// before them. Call it before LoadBundle.
func RecoverRenewal(certFile, keyFile string) error {
	_, errCert := os.Stat(certFile + ".new")
	_, errKey := os.Stat(keyFile + ".new")
	switch {
	case errCert == nil && errors.Is(errKey, os.ErrNotExist):
		return os.Rename(certFile+".new", certFile)
	case errCert == nil:
		_ = os.Remove(keyFile + ".new")
		return os.Remove(certFile + ".new")
	case errKey == nil:
		return os.Remove(keyFile + ".new")
	}
	return nil
}
