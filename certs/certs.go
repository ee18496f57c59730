// Package certs is Ronda's PKI: a city CA, hub member and node certificates
// with SPIFFE identities, TLS configurations for every link, and parsing of a
// peer's identity. It is a leaf: it imports nothing of ours.
//
// Identities (one URI SAN per certificate):
//
//	spiffe://<city>/hub/<member>                      a hub member
//	spiffe://<city>/kelurahan/<code>/node/<id>        a kelurahan node
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// Kinds of identity.
const (
	KindHub  = "hub"
	KindNode = "node"
)

// Sentinel errors.
var (
	ErrNoIdentity  = errors.New("certs: peer presented no Ronda identity (expected one spiffe:// URI SAN)")
	ErrWrongKind   = errors.New("certs: peer identity is of the wrong kind for this link")
	ErrBadName     = errors.New("certs: invalid name")
	ErrCAExists    = errors.New("certs: a CA already exists in this directory; refusing to overwrite it")
	ErrCAMissing   = errors.New("certs: no CA in this directory; run 'ronda certs init' first")
	validName      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	validKelurahan = regexp.MustCompile(`^[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]{4}$`)
)

// File names inside a CA directory and inside an issued bundle.
const (
	CAFile    = "ca.pem"     // the city root: every member and node trusts it
	CAKeyFile = "ca-key.pem" // the root's key: keep it offline
	// The online intermediate, signed by the root, issues the leaves (the
	// hub's enrollment needs it, never the root key).
	IntermediateFile    = "intermediate.pem"
	IntermediateKeyFile = "intermediate-key.pem"
	CertFile            = "cert.pem"
	KeyFile             = "key.pem"
)

// Identity is a parsed SPIFFE identity.
type Identity struct {
	City      string
	Kind      string // KindHub or KindNode
	Member    string // hub member name (KindHub)
	Kelurahan string // kelurahan code (KindNode)
	NodeID    string // node id (KindNode)
}

// ValidName reports whether s can be a hub member name or node id.
func ValidName(s string) bool { return validName.MatchString(s) }

// URI renders the identity as its SPIFFE URI.
func (id Identity) URI() string {
	switch id.Kind {
	case KindHub:
		return fmt.Sprintf("spiffe://%s/hub/%s", id.City, id.Member)
	case KindNode:
		return fmt.Sprintf("spiffe://%s/kelurahan/%s/node/%s", id.City, id.Kelurahan, id.NodeID)
	}
	return ""
}

func (id Identity) String() string { return id.URI() }

// ParseIdentity parses a SPIFFE URI of a hub member or node.
func ParseIdentity(u *url.URL) (Identity, error) {
	if u == nil || u.Scheme != "spiffe" || u.Host == "" {
		return Identity{}, ErrNoIdentity
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "hub" && validName.MatchString(parts[1]):
		return Identity{City: u.Host, Kind: KindHub, Member: parts[1]}, nil
	case len(parts) == 4 && parts[0] == "kelurahan" && parts[2] == "node" &&
		validKelurahan.MatchString(parts[1]) && validName.MatchString(parts[3]):
		return Identity{City: u.Host, Kind: KindNode, Kelurahan: parts[1], NodeID: parts[3]}, nil
	}
	return Identity{}, fmt.Errorf("%w: %q", ErrNoIdentity, u.String())
}

// PeerIdentity returns the identity of the verified peer of a TLS connection.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return Identity{}, ErrNoIdentity
	}
	leaf := cs.PeerCertificates[0]
	if len(leaf.URIs) != 1 {
		return Identity{}, ErrNoIdentity
	}
	return ParseIdentity(leaf.URIs[0])
}

// InitCA creates a city CA (ECDSA P-256, 10 years) in dir. It refuses to
// overwrite an existing CA.
func InitCA(dir, city string) error {
	if !validName.MatchString(city) {
		return fmt.Errorf("%w: city %q (letters, digits, '.', '_' or '-')", ErrBadName, city)
	}
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		return fmt.Errorf("%w: %s", ErrCAExists, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "Ronda city CA " + city, Organization: []string{"Ronda " + city}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: city}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	// The online intermediate: 5 years, may sign leaves only.
	ikey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	itmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "Ronda online issuing CA " + city, Organization: []string{"Ronda " + city}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: city}},
	}
	ider, err := x509.CreateCertificate(rand.Reader, itmpl, root, &ikey.PublicKey, key)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), key); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, IntermediateKeyFile), ikey); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, IntermediateFile), "CERTIFICATE", ider, 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", der, 0o644)
}

// CA is a loaded city CA that can issue certificates.
type CA struct {
	Cert   *x509.Certificate // the root (the trust anchor written as ca.pem)
	signer *x509.Certificate // what signs leaves: the intermediate, or the root of an older CA
	key    crypto.Signer
	chain  []*x509.Certificate // sent with each leaf (the intermediate)
	City   string
}

// LoadCA loads the CA in dir. With the online intermediate present it signs
// with that and does not need the root's key (keep ca-key.pem offline); a
// CA made before intermediates signs with the root.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrCAMissing, dir)
	} else if err != nil {
		return nil, err
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, CAFile), err)
	}
	city := ""
	if len(cert.URIs) == 1 {
		city = cert.URIs[0].Host
	}
	if city == "" {
		return nil, fmt.Errorf("certs: CA certificate has no spiffe://<city> URI")
	}
	ca := &CA{Cert: cert, signer: cert, City: city}
	keyFile := filepath.Join(dir, CAKeyFile)
	if ipem, err := os.ReadFile(filepath.Join(dir, IntermediateFile)); err == nil {
		icert, err := parseCert(ipem)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, IntermediateFile), err)
		}
		if err := icert.CheckSignatureFrom(cert); err != nil {
			return nil, fmt.Errorf("certs: %s is not signed by the root in %s: %w", IntermediateFile, CAFile, err)
		}
		ca.signer, ca.chain, keyFile = icert, []*x509.Certificate{icert}, filepath.Join(dir, IntermediateKeyFile)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, fmt.Errorf("certs: %s is not PEM", keyFile)
	}
	if ca.key, err = x509.ParseECPrivateKey(b.Bytes); err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	return ca, nil
}

// chainPEM is a leaf followed by the CA's chain, as cert.pem holds them.
func (ca *CA) chainPEM(leafDER []byte) []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	for _, c := range ca.chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// IssueOptions describe a leaf certificate.
type IssueOptions struct {
	Identity Identity      // City is taken from the CA
	Hosts    []string      // DNS names and IPs for serving (HTTPS, gRPC); default 127.0.0.1 and localhost
	Validity time.Duration // default 90 days (ronda certs issue); the hub issues and renews node certificates for enrollment.node_cert_validity
}

// leafTemplate checks the identity and builds a leaf certificate template.
func (ca *CA) leafTemplate(opts IssueOptions) (*x509.Certificate, error) {
	id := opts.Identity
	id.City = ca.City
	switch id.Kind {
	case KindHub:
		if !validName.MatchString(id.Member) {
			return nil, fmt.Errorf("%w: hub member %q", ErrBadName, id.Member)
		}
	case KindNode:
		if !validKelurahan.MatchString(id.Kelurahan) {
			return nil, fmt.Errorf("%w: kelurahan code %q (expected like 31.71.01.1001)", ErrBadName, id.Kelurahan)
		}
		if !validName.MatchString(id.NodeID) {
			return nil, fmt.Errorf("%w: node id %q", ErrBadName, id.NodeID)
		}
	default:
		return nil, fmt.Errorf("%w: kind %q", ErrBadName, id.Kind)
	}
	u, _ := url.Parse(id.URI())
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	validity := opts.Validity
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: id.URI()},
		NotBefore:    now.Add(-min(time.Hour, validity/4)), // clock skew

		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{u},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

// Issue creates a key and certificate for id and writes cert.pem, key.pem and
// ca.pem into outDir.
func (ca *CA) Issue(outDir string, opts IssueOptions) error {
	tmpl, err := ca.leafTemplate(opts)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.signer, &key.PublicKey, ca.key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(outDir, KeyFile), key); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, CertFile), ca.chainPEM(der), 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(outDir, CAFile), "CERTIFICATE", ca.Cert.Raw, 0o644)
}

// SignCSR signs a certificate request (enrollment): the key is the
// requester's, everything else (identity, names, validity) is decided here;
// what the request asks for is ignored. It returns the certificate as PEM.
func (ca *CA) SignCSR(csrPEM []byte, opts IssueOptions) ([]byte, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: not a PEM certificate request", ErrBadName)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate request: %v", ErrBadName, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: the certificate request's signature does not verify: %v", ErrBadName, err)
	}
	tmpl, err := ca.leafTemplate(opts)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.signer, csr.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return ca.chainPEM(der), nil
}

// NewKeyAndCSR makes a node's private key in dir (key.pem, 0600: it never
// leaves the node) and returns a certificate request for it.
func NewKeyAndCSR(dir string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(dir, KeyFile), key); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ronda node enrollment"}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// WriteEnrolled stores the certificate and CA an enrollment returned next
// to the key NewKeyAndCSR made, and checks that they belong together.
func WriteEnrolled(dir string, certPEM, caPEM []byte) (*Bundle, error) {
	if err := os.WriteFile(filepath.Join(dir, CertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, CAFile), caPEM, 0o644); err != nil {
		return nil, err
	}
	return LoadBundle(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, CAFile))
}

// Bundle is a loaded certificate, key and CA pool. The certificate can be
// swapped while servers and clients run (a renewed short-lived one): every
// TLS configuration made from the bundle picks the current one at each
// handshake, and connections already up keep going.
type Bundle struct {
	Identity Identity
	Pool     *x509.CertPool

	cert atomic.Pointer[tls.Certificate]
}

// Current is the certificate in use (with its Leaf parsed).
func (b *Bundle) Current() *tls.Certificate { return b.cert.Load() }

// Swap puts a renewed certificate in use; it must carry the same identity.
func (b *Bundle) Swap(cert tls.Certificate) error {
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return err
		}
		cert.Leaf = leaf
	}
	if len(cert.Leaf.URIs) != 1 {
		return ErrNoIdentity
	}
	id, err := ParseIdentity(cert.Leaf.URIs[0])
	if err != nil {
		return err
	}
	if id != b.Identity {
		return fmt.Errorf("certs: the renewed certificate is for %s, not %s", id, b.Identity)
	}
	b.cert.Store(&cert)
	return nil
}

func (b *Bundle) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return b.cert.Load(), nil
}

func (b *Bundle) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return b.cert.Load(), nil
}

// LoadBundle loads cert, key and CA files.
func LoadBundle(certFile, keyFile, caFile string) (*Bundle, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: load %s / %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	if len(leaf.URIs) != 1 {
		return nil, fmt.Errorf("certs: %s: %w", certFile, ErrNoIdentity)
	}
	id, err := ParseIdentity(leaf.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", certFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("certs: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", caFile)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("certs: %s is not signed by the CA in %s: %w", certFile, caFile, err)
	}
	cert.Leaf = leaf
	b := &Bundle{Identity: id, Pool: pool}
	b.cert.Store(&cert)
	return b, nil
}

// ServerTLS is the configuration for a mutually authenticated server (gRPC,
// Raft): the client must present a certificate of the city CA whose identity
// is one of allowKinds.
func (b *Bundle) ServerTLS(allowKinds ...string) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		GetCertificate:        b.getCertificate,
		GetClientCertificate:  b.getClientCertificate, // the same config dials Raft peers
		ClientCAs:             b.Pool,
		ClientAuth:            tls.RequireAndVerifyClientCert,
		VerifyPeerCertificate: b.kindCheck(allowKinds),
		NextProtos:            []string{"h2"},
	}
}

// ClientTLS is the configuration for dialling a server of the city CA whose
// identity must be of kind wantKind (a node dials only hub members).
func (b *Bundle) ClientTLS(wantKind string) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		GetClientCertificate:  b.getClientCertificate,
		GetCertificate:        b.getCertificate,
		RootCAs:               b.Pool,
		ServerName:            "127.0.0.1",
		VerifyPeerCertificate: b.kindCheck([]string{wantKind}),
		NextProtos:            []string{"h2"},
	}
}

// HTTPSTLS is the configuration for the browser-facing HTTPS API: the city
// certificate, no client certificate (people log in with a token).
func (b *Bundle) HTTPSTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: b.getCertificate}
}

// kindCheck runs after chain verification and rejects identities of the wrong
// kind or of another city.
func (b *Bundle) kindCheck(kinds []string) func([][]byte, [][]*x509.Certificate) error {
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) == 0 || len(chains[0]) == 0 {
			return ErrNoIdentity
		}
		leaf := chains[0][0]
		if len(leaf.URIs) != 1 {
			return ErrNoIdentity
		}
		id, err := ParseIdentity(leaf.URIs[0])
		if err != nil {
			return err
		}
		if id.City != b.Identity.City {
			return fmt.Errorf("%w: %s belongs to city %q, we are %q", ErrWrongKind, id, id.City, b.Identity.City)
		}
		for _, k := range kinds {
			if id.Kind == k {
				return nil
			}
		}
		return fmt.Errorf("%w: %s is a %s, this link accepts %s", ErrWrongKind, id, id.Kind, strings.Join(kinds, " or "))
	}
}

func randSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}
