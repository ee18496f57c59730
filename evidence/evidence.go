// Package evidence is the format of exported footage's manifest: what was
// exported (camera, node, time range), the SHA-256 of the file and of every
// source segment, who asked and why, signed with the node's key. Verify
// checks it offline and says exactly what does not match.
package evidence

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Version of the manifest format.
const Version = 1

// Segment is a source segment's digest (its bytes up to the last fragment used).
type Segment struct {
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Manifest describes one export.
type Manifest struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	Camera      string    `json:"camera"`
	NodeID      string    `json:"node_id"`
	Kelurahan   string    `json:"kelurahan"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Requested   [2]string `json:"requested"` // the range as asked for, RFC 3339
	File        string    `json:"file"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	Segments    []Segment `json:"segments"`
	RequestedBy string    `json:"requested_by"`
	Reason      string    `json:"reason"`
	Created     time.Time `json:"created"`
	Signer      string    `json:"signer"`      // the signer's SPIFFE identity
	SignerCert  string    `json:"signer_cert"` // PEM
	Signature   string    `json:"signature"`   // base64 ASN.1 ECDSA over SHA-256 of the manifest without this field
}

// payload is what is signed: the manifest with an empty signature.
func (m Manifest) payload() []byte {
	m.Signature = ""
	b, _ := json.Marshal(m)
	return b
}

// Sign signs m with key; certPEM is the certificate of key's public half.
func Sign(m *Manifest, key crypto.Signer, certPEM []byte, identity string) error {
	m.SignerCert, m.Signer = string(certPEM), identity
	sum := sha256.Sum256(m.payload())
	sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return fmt.Errorf("evidence: sign: %w", err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// Write stores the manifest as indented JSON.
func Write(path string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o640)
}

// Load reads a manifest.
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("evidence: %s is not a manifest: %w", path, err)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("evidence: manifest version %d; this build reads %d", m.Version, Version)
	}
	return &m, nil
}

// Options of Verify.
type Options struct {
	Roots       *x509.CertPool // if set, the signer's certificate must chain to it
	SegmentsDir string         // if set, every source segment is checked too
}

// Verify checks a file against its manifest and returns every problem found,
// each saying what does not match; none means the export is intact.
func Verify(m *Manifest, file string, o Options) []string {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	// The signature first: if it fails, nothing in the manifest can be trusted.
	block, rest := pem.Decode([]byte(m.SignerCert))
	// Certificates after the signer's are its chain up to the city root
	// (the online issuing CA).
	inter := x509.NewCertPool()
	for b, r := pem.Decode(rest); b != nil; b, r = pem.Decode(r) {
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			inter.AddCert(c)
		}
	}
	var cert *x509.Certificate
	if block == nil {
		add("manifest: no signer certificate")
	} else if c, err := x509.ParseCertificate(block.Bytes); err != nil {
		add("manifest: signer certificate does not parse: %v", err)
	} else {
		cert = c
	}
	if cert != nil {
		sig, err := base64.StdEncoding.DecodeString(m.Signature)
		sum := sha256.Sum256(m.payload())
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		switch {
		case err != nil || len(sig) == 0:
			add("manifest: signature missing or not base64")
		case !ok:
			add("manifest: signer key is not ECDSA")
		case !ecdsa.VerifyASN1(pub, sum[:], sig):
			add("manifest: signature does not match its contents: the manifest was altered after signing")
		}
		if len(cert.URIs) != 1 || cert.URIs[0].String() != m.Signer {
			add("manifest: signer %q is not the identity of the signing certificate", m.Signer)
		}
		if o.Roots != nil {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: o.Roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
				CurrentTime: m.Created}); err != nil {
				add("manifest: signing certificate is not issued by the given CA: %v", err)
			}
		}
	}

	// The file.
	if got, n, err := fileDigest(file, -1); err != nil {
		add("file %s: %v", filepath.Base(file), err)
	} else {
		if n != m.Bytes {
			add("file %s: %d bytes; the manifest says %d", filepath.Base(file), n, m.Bytes)
		}
		if got != m.SHA256 {
			add("file %s: SHA-256 is %s; the manifest says %s: the file was altered or is not this export", filepath.Base(file), got, m.SHA256)
		}
	}

	// The source segments, when they are at hand.
	if o.SegmentsDir != "" {
		for _, s := range m.Segments {
			got, n, err := fileDigest(filepath.Join(o.SegmentsDir, s.File), s.Bytes)
			switch {
			case err != nil:
				add("source segment %s: %v", s.File, err)
			case n != s.Bytes:
				add("source segment %s: only %d of %d bytes present", s.File, n, s.Bytes)
			case got != s.SHA256:
				add("source segment %s: SHA-256 is %s; the manifest says %s", s.File, got, s.SHA256)
			}
		}
	}
	return problems
}

// fileDigest hashes the first n bytes of a file (n < 0: all of it).
func fileDigest(path string, n int64) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	var r io.Reader = f
	if n >= 0 {
		r = io.LimitReader(f, n)
	}
	h := sha256.New()
	got, err := io.Copy(h, r)
	if err != nil {
		return "", got, err
	}
	return hex.EncodeToString(h.Sum(nil)), got, nil
}
