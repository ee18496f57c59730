package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/hub/store"
	"github.com/ronda-jakarta/ronda/kelurahan"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// loadEnrollment loads the signing CA when enrollment is configured.
func (h *Hub) loadEnrollment() error {
	if h.cfg.Enrollment.CADir == "" {
		return nil
	}
	ca, err := certs.LoadCA(h.cfg.Enrollment.CADir)
	if err != nil {
		return fmt.Errorf("enrollment.ca_dir: %w", err)
	}
	if ca.City != h.bundle.Identity.City {
		return fmt.Errorf("enrollment.ca_dir: the CA is for city %q, this member's certificate for %q", ca.City, h.bundle.Identity.City)
	}
	h.enrollCA = ca
	return nil
}

func tokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateJoinToken implements api.Enroller.
func (b *backend) CreateJoinToken(ctx context.Context, code string, ttl time.Duration, user string) (api.JoinToken, error) {
	if b.h.enrollCA == nil {
		return api.JoinToken{}, fmt.Errorf("%w: enrollment is not configured on this member (hub.yaml enrollment.ca_dir)", api.ErrNotFound)
	}
	k, ok := kelurahan.ByCode(code)
	if !ok {
		return api.JoinToken{}, fmt.Errorf("%w: no kelurahan %q (GET /api/v1/areas?level=kelurahan lists the 267)", api.ErrBadRequest, code)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return api.JoinToken{}, err
	}
	token := "rjt_" + base64.RawURLEncoding.EncodeToString(raw)
	now := time.Now()
	t := &rondav1.StoredJoinToken{Id: tokenID(token), KelurahanCode: k.Code, CreatedBy: user,
		CreatedUnixNano: now.UnixNano(), ExpiresUnixNano: now.Add(ttl).UnixNano()}
	if err := b.h.store.CreateJoinToken(ctx, t); err != nil {
		return api.JoinToken{}, storeError(err)
	}
	return api.JoinToken{Token: token, Kelurahan: k.Code, Expires: now.Add(ttl).UTC()}, nil
}

// Enroll implements api.Enroller: it checks the request, consumes the token
// (a Raft command: it works once), then signs the node's key.
func (b *backend) Enroll(ctx context.Context, req api.EnrollRequest) (api.Enrolled, error) {
	ca := b.h.enrollCA
	if ca == nil {
		return api.Enrolled{}, fmt.Errorf("%w: enrollment is not configured on this member (hub.yaml enrollment.ca_dir)", api.ErrNotFound)
	}
	blk, _ := pem.Decode([]byte(req.CSR))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return api.Enrolled{}, fmt.Errorf("%w: csr is not a PEM certificate request", api.ErrBadRequest)
	}
	if csr, err := x509.ParseCertificateRequest(blk.Bytes); err != nil || csr.CheckSignature() != nil {
		return api.Enrolled{}, fmt.Errorf("%w: the certificate request does not parse or its signature does not verify", api.ErrBadRequest)
	}
	// Check the node id before the token is spent on it.
	if !certs.ValidName(req.NodeID) || req.NodeID == store.HubAuditNode {
		return api.Enrolled{}, fmt.Errorf("%w: node id %q: use letters, digits, '.', '-' and '_'", api.ErrBadRequest, req.NodeID)
	}
	tok, err := b.h.store.ConsumeJoinToken(ctx, tokenID(req.Token), req.NodeID)
	if err != nil {
		return api.Enrolled{}, storeError(err)
	}
	id := certs.Identity{City: ca.City, Kind: certs.KindNode, Kelurahan: tok.GetKelurahanCode(), NodeID: req.NodeID}
	if n, ok := b.h.store.Node(req.NodeID); ok && n.GetInfo().GetKelurahanCode() != tok.GetKelurahanCode() {
		return api.Enrolled{}, fmt.Errorf("%w: node id %s belongs to kelurahan %s; pick another id (the token is used up: ask for a new one)",
			api.ErrBadRequest, req.NodeID, n.GetInfo().GetKelurahanCode())
	}
	if r, revoked := b.h.store.Revoked(id.URI()); revoked {
		return api.Enrolled{}, fmt.Errorf("%w: %s is revoked (%s); enroll the node under a new id", api.ErrForbidden, id, r.GetReason())
	}
	certPEM, err := ca.SignCSR([]byte(req.CSR), certs.IssueOptions{Identity: id, Validity: b.h.cfg.Enrollment.NodeCertValidity})
	if err != nil {
		if errors.Is(err, certs.ErrBadName) {
			return api.Enrolled{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
		}
		return api.Enrolled{}, err
	}
	b.h.log.Info("node enrolled", "identity", id.URI(), "token_created_by", tok.GetCreatedBy())
	return api.Enrolled{Identity: id.URI(), Cert: string(certPEM), CA: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}))}, nil
}

// RenewNode implements replication.CertRenewer: a connected node's new
// short-lived certificate, for the identity of the certificate it called
// with (a revoked one never gets this far: the handshake refuses it).
func (e *hubEnd) RenewNode(ctx context.Context, id certs.Identity, csrPEM []byte) ([]byte, time.Time, error) {
	ca := e.h.enrollCA
	if ca == nil {
		return nil, time.Time{}, fmt.Errorf("%w: this member does not sign certificates (hub.yaml enrollment.ca_dir); ask another", api.ErrNotImpl)
	}
	if id.Kind != certs.KindNode {
		return nil, time.Time{}, fmt.Errorf("%w: only nodes renew here", api.ErrForbidden)
	}
	if r, revoked := e.h.store.Revoked(id.URI()); revoked {
		return nil, time.Time{}, fmt.Errorf("%w: %s is revoked (%s)", api.ErrForbidden, id, r.GetReason())
	}
	certPEM, err := ca.SignCSR(csrPEM, certs.IssueOptions{Identity: id, Validity: e.h.cfg.Enrollment.NodeCertValidity})
	outcome := "ok"
	if err != nil {
		outcome = "error: " + err.Error()
	}
	notAfter := time.Now().Add(e.h.cfg.Enrollment.NodeCertValidity)
	e.h.audit.add(api.AuditEvent{Time: time.Now(), User: "node:" + id.NodeID, Action: "cert-renew " + id.URI(),
		Reason: "short-lived certificate, valid until " + notAfter.UTC().Format(time.RFC3339), Outcome: outcome})
	if err != nil {
		if errors.Is(err, certs.ErrBadName) {
			return nil, time.Time{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
		}
		return nil, time.Time{}, err
	}
	return certPEM, notAfter, nil
}
