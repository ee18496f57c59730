// Package hub is a city hub member: one of 3 or 5 Raft members that hold the
// city's catalog (nodes, cameras, coverage), accept node connections, and
// serve the HTTP API for every camera by federating live view and playback
// to the node that owns it over the connection that node opened.
package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/hub/evidence"
	"github.com/ronda-jakarta/ronda/hub/peer"
	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
	"github.com/ronda-jakarta/ronda/replication"
	"github.com/ronda-jakarta/ronda/web"
)

// Hub is a running hub member.
type Hub struct {
	users  hubUsers
	lists  *userLists
	audit  *hubAuditor
	cpDone chan struct{} // closed when the checkpoint loop has stopped
	cfg    *Config
	log    *slog.Logger
	bundle *certs.Bundle

	store     *store.Store
	forwarder *peer.Forwarder
	repl      *replication.HubServer
	grpcSrv   *grpc.Server
	grpcLis   net.Listener
	httpSrv   *http.Server
	httpLis   net.Listener
	done      chan struct{}

	turn     *turnServer                 // nil unless turn.listen is set
	guard    *replication.GuardedCreds   // refuses and disconnects revoked certificates
	ready    atomic.Pointer[store.Store] // the store, once open (Raft handshakes start during Open)
	enrollCA *certs.CA                   // signs enrolled nodes' certificates; nil unless enrollment.ca_dir is set

	evidence   *evidence.Store      // this member's copy of the evidence blobs
	replicator *evidence.Replicator // copies blobs between members (runs from Start)

	links    *replication.LinkBook         // the leader's memory of all members' links
	view     atomic.Pointer[linksSnapshot] // the newest view of them from the leader
	stopBeat chan struct{}
	beatDone chan struct{}

	// Evidence cases (cases.go): this member's case state, and a poke for
	// the leader's case loop.
	casesOnce sync.Once
	cases     *caseState
	casePoke  chan struct{}
	stopCases context.CancelFunc
	casesDone chan struct{}
	puller    *casePuller // nil until Start
}

type linksSnapshot struct {
	view *rondav1.LinksView
	at   time.Time
}

// New opens the member's Raft store and prepares its servers.
func New(cfg *Config, log *slog.Logger) (*Hub, error) {
	bundle, err := certs.LoadBundle(cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA)
	if err != nil {
		return nil, err
	}
	if bundle.Identity.Kind != certs.KindHub || bundle.Identity.Member != cfg.MemberID {
		return nil, fmt.Errorf("hub: certificate %s is not for hub member %q; issue one with 'ronda certs issue --hub %s'",
			bundle.Identity, cfg.MemberID, cfg.MemberID)
	}
	if _, err := cfg.reportClients(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, log: log, bundle: bundle, done: make(chan struct{}), casePoke: make(chan struct{}, 1), links: replication.NewLinkBook(nil),
		stopBeat: make(chan struct{}), beatDone: make(chan struct{}), cpDone: make(chan struct{})}
	evDir := cfg.Evidence.Dir
	if evDir == "" {
		evDir = filepath.Join(cfg.DataDir, "evidence")
	}
	if h.evidence, err = evidence.Open(evDir); err != nil {
		return nil, fmt.Errorf("evidence.dir: %w", err)
	}
	h.forwarder = peer.NewForwarder(h.memberGRPC, credentials.NewTLS(bundle.ClientTLS(certs.KindHub)))
	peers := make([]store.Peer, 0, len(cfg.Members))
	for _, m := range cfg.Members {
		peers = append(peers, store.Peer{ID: m.ID, RaftAddr: m.Raft})
	}
	if cfg.Join {
		// A joining member never bootstraps: it waits for 'ronda hub join'.
		peers = nil
		log.Info("joining an existing cluster: waiting to be added (ronda hub join --id " + cfg.MemberID + " --raft " + cfg.RaftListen + " --grpc " + cfg.GRPCListen + ")")
	}
	rt := raftTLS(bundle)
	rt.VerifyConnection = h.verifyNotRevoked // a revoked member's certificate cannot join Raft
	h.store, err = store.Open(store.Config{
		ID: cfg.MemberID, RaftAddr: cfg.RaftListen, DataDir: cfg.DataDir, Peers: peers,
		TLS: rt, Forwarder: h.forwarder, Logger: log.With("part", "store"),
		StabilizationTime: cfg.Membership.StabilizationTime, DeadMemberAfter: cfg.Membership.DeadMemberAfter, MinQuorum: cfg.Membership.MinQuorum,
	})
	if err != nil {
		h.forwarder.Close()
		return nil, err
	}
	h.ready.Store(h.store)
	h.replicator = evidence.NewReplicator(evidence.ReplicatorConfig{
		Self: cfg.MemberID, Store: h.evidence, Catalog: h.store, Fetcher: h.forwarder,
		MinCopies: cfg.Evidence.MinCopies, Logger: log.With("part", "evidence"),
	})
	h.repl = replication.NewHubServer(&hubEnd{h: h}, log.With("part", "replication"), nil)
	h.repl.SetMaxInflightPushes(cfg.NodeMaxInflightPushes)
	return h, nil
}

// raftTLS is one configuration for both ends of Raft connections: present
// our member certificate, accept only hub members of our city.
func raftTLS(b *certs.Bundle) *tls.Config {
	c := b.ServerTLS(certs.KindHub)
	c.RootCAs = b.Pool
	c.ServerName = "127.0.0.1"
	c.NextProtos = nil
	return c
}

// memberGRPC finds a member's gRPC address: the config's member list, then
// the records of members that joined later.
func (h *Hub) memberGRPC(id string) (string, bool) {
	for _, m := range h.cfg.Members {
		if m.ID == id {
			return m.GRPC, true
		}
	}
	if h.store != nil {
		if rec, ok := h.store.HubMember(id); ok && rec.GetGrpcAddr() != "" {
			return rec.GetGrpcAddr(), true
		}
	}
	return "", false
}

// Start serves gRPC (nodes and members) and the HTTP API.
func (h *Hub) Start() error {
	secret, err := os.ReadFile(h.cfg.Auth.TokenSecretFile)
	if err != nil {
		return fmt.Errorf("auth.token_secret_file: %w", err)
	}
	cfgUsers, err := auth.NewStaticUsers(h.cfg.Auth.Users)
	if err != nil {
		return err
	}
	h.users = hubUsers{cfg: cfgUsers, store: h.store}
	key := auth.DeriveSigningKey(secret)
	h.lists = &userLists{key: key, pub: key.Public().(ed25519.PublicKey)}
	authn, err := auth.New(auth.Options{Issuer: auth.IssuerHub, Secret: secret, SigningKey: key, Users: h.users, TTL: h.cfg.Auth.TokenTTL})
	if err != nil {
		return err
	}
	if err := h.loadEnrollment(); err != nil {
		return err
	}
	if h.cfg.TURN.Listen != "" {
		if h.turn, err = startTURN(h.cfg.TURN, secret, h.log); err != nil {
			return err
		}
	}
	h.grpcLis, err = net.Listen("tcp", h.cfg.GRPCListen)
	if err != nil {
		h.closeTURN()
		return fmt.Errorf("grpc_listen %s: %w", h.cfg.GRPCListen, err)
	}
	srvTLS := h.bundle.ServerTLS(certs.KindNode, certs.KindHub)
	srvTLS.VerifyConnection = h.verifyNotRevoked // refused in the handshake: the peer sees "bad certificate"
	h.guard = replication.NewGuardedCreds(credentials.NewTLS(srvTLS), h.revoked, h.log.With("part", "revocation"))
	h.grpcSrv = grpc.NewServer(append(replication.GRPCServerOptions(h.cfg.NodeKeepalive),
		grpc.Creds(h.guard),
		grpc.UnknownServiceHandler(h.repl.RelayHandler()))...)
	h.repl.Register(h.grpcSrv)
	rpcv1.RegisterHubPeerServer(h.grpcSrv, peer.NewServer(h.store).WithLogger(h.log.With("part", "peer")).WithLinks(func(r *rondav1.LinksReport) *rondav1.LinksView {
		return h.links.Put(h.cfg.MemberID, r)
	}).WithBlobs(h.evidence))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(h.repl.Collectors()...)
	h.audit = newHubAuditor(h)
	go h.audit.run()
	reportClients, _ := h.cfg.reportClients() // checked in New
	handler := api.New(api.Options{Backend: &backend{h: h}, Auth: authn, UI: web.Handler(), Registry: reg, Logger: h.log.With("part", "api"), Audit: h.audit.add,
		ReportClients: reportClients})
	h.httpLis, err = net.Listen("tcp", h.cfg.HTTP.Listen)
	if err != nil {
		h.grpcLis.Close()
		h.closeTURN()
		return fmt.Errorf("http.listen %s: %w", h.cfg.HTTP.Listen, err)
	}
	h.httpSrv = &http.Server{Handler: handler, TLSConfig: h.bundle.HTTPSTLS(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := h.grpcSrv.Serve(h.grpcLis); err != nil {
			h.log.Error("grpc server stopped", "err", err)
		}
	}()
	go func() {
		defer close(h.done)
		if err := h.httpSrv.ServeTLS(h.httpLis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("http server stopped", "err", err)
		}
	}()
	go h.heartbeat()
	go h.checkpoints()
	h.replicator.Start()
	caseCtx, stopCases := context.WithCancel(context.Background())
	h.stopCases = stopCases
	h.casesDone = make(chan struct{})
	if err := h.startPuller(caseCtx); err != nil {
		h.log.Error("no puller: evidence cases cannot pull footage", "err", err)
	}
	go func() { defer close(h.casesDone); h.runCases(caseCtx) }()
	h.log.Info("hub member started", "member", h.cfg.MemberID, "grpc", h.cfg.GRPCListen, "raft", h.cfg.RaftListen, "api", "https://"+h.httpLis.Addr().String())
	return nil
}

// Close stops the servers and the store.
func (h *Hub) Close() error {
	if h.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = h.httpSrv.Shutdown(ctx)
		cancel()
		<-h.done
	}
	if h.stopCases != nil {
		h.stopCases()
		<-h.casesDone
		if h.puller != nil {
			<-h.puller.done
		}
	}
	if h.audit != nil {
		h.audit.close()
	}
	h.replicator.Close() // a no-op unless started
	if h.grpcSrv != nil {
		close(h.stopBeat)
		<-h.beatDone
		<-h.cpDone
	}
	h.repl.Close()
	if h.grpcSrv != nil {
		stopped := make(chan struct{})
		go func() { h.grpcSrv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(3 * time.Second):
			h.grpcSrv.Stop()
		}
	}
	h.closeTURN()
	err := h.store.Close()
	h.forwarder.Close()
	return err
}

func (h *Hub) closeTURN() {
	if h.turn != nil {
		if err := h.turn.close(); err != nil {
			h.log.Warn("closing the TURN server", "err", err)
		}
		h.turn = nil
	}
}

// heartbeat sends this member's links to the leader every second (the
// leader keeps its own in its book) and keeps the view it answers with:
// every member shows each node's status from all members' links, and knows
// which member holds the tunnel to a node.
func (h *Hub) heartbeat() {
	defer close(h.beatDone)
	t := time.NewTicker(replication.ReportEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-h.stopBeat:
			return
		case <-t.C:
		}
		h.guard.CloseRevoked() // a certificate revoked at any member is cut off here within a second
		report := &rondav1.LinksReport{MemberId: h.cfg.MemberID, Links: h.repl.LinkStates()}
		var view *rondav1.LinksView
		var err error
		if h.store.IsLeader() {
			view = h.links.Put(h.cfg.MemberID, report)
		} else if leader := h.store.Cluster().Leader; leader != "" {
			ctx, cancel := context.WithTimeout(context.Background(), replication.ReportEvery)
			view, err = h.forwarder.ReportLinks(ctx, leader, report)
			cancel()
		} else {
			err = errors.New("no leader known")
		}
		if err != nil {
			if !failing {
				h.log.Warn("links report to the leader failed; node status shows this member's own links until it works", "err", err)
			}
			failing = true
			continue
		}
		failing = false
		h.view.Store(&linksSnapshot{view: view, at: time.Now()})
	}
}

// nodeLink is a node's link to the hub: merged from all members' reports
// when the leader's view is fresh, else this member's own (and which).
func (h *Hub) nodeLink(nodeID string) (replication.NodeLink, string) {
	own := h.repl.Link(nodeID)
	snap := h.view.Load()
	if snap == nil || time.Since(snap.at) > replication.ReportFresh {
		nl := replication.NodeLink{LinkStatus: own}
		if own.Connected {
			nl.Members = []string{h.cfg.MemberID}
		}
		return nl, "member"
	}
	nl := replication.MergeLinks(snap.view, nodeID)
	if own.Connected && !slices.Contains(nl.Members, h.cfg.MemberID) {
		// Connected here since the last report.
		nl.Members = append(nl.Members, h.cfg.MemberID)
		if !nl.Connected {
			nl.Connected, nl.Since = true, own.Since
		}
	}
	slices.Sort(nl.Members)
	return nl, "cluster"
}

// hubEnd implements replication.HubEnd over the store.
type hubEnd struct{ h *Hub }

func (e *hubEnd) MemberID() string { return e.h.cfg.MemberID }

// Members are the gRPC addresses of the members in the Raft configuration
// now (joined ones included, removed ones not); before this member knows
// the configuration, those of its config.
func (e *hubEnd) Members() []string {
	var out []string
	for _, m := range e.h.store.Cluster().Members {
		if a, ok := e.h.memberGRPC(m.ID); ok {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		for _, m := range e.h.cfg.Members {
			out = append(out, m.GRPC)
		}
	}
	return out
}

func (e *hubEnd) Push(ctx context.Context, nodeID string, recs []*rondav1.Record) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return e.h.store.ApplyNodeRecords(ctx, nodeID, recs)
}

func (e *hubEnd) AckedSeq(nodeID string) uint64 { return e.h.store.AckedSeq(nodeID) }

func (e *hubEnd) AuditSeq(nodeID string) uint64 { return e.h.store.AuditSeq(nodeID) }

// MaxDirectivesPerAnswer bounds the directives in one Hello or Push answer.
const MaxDirectivesPerAnswer = 100

func (e *hubEnd) Directives(nodeID string, after uint64) []*rondav1.Directive {
	return e.h.store.Directives(nodeID, after, MaxDirectivesPerAnswer)
}

// Restore prepares this member's empty data dir from a backup (see
// store.RestoreBackup): run it on every member of the new cluster, each
// with its own config naming the same members, then start them.
func Restore(cfg *Config, r io.Reader, log *slog.Logger) (store.RestoreInfo, error) {
	peers := make([]store.Peer, 0, len(cfg.Members))
	for _, m := range cfg.Members {
		peers = append(peers, store.Peer{ID: m.ID, RaftAddr: m.Raft})
	}
	return store.RestoreBackup(store.Config{ID: cfg.MemberID, RaftAddr: cfg.RaftListen, DataDir: cfg.DataDir, Peers: peers, Logger: log}, r, log)
}

// Evidence is this member's evidence store (its copies of the blobs).
func (h *Hub) Evidence() *evidence.Store { return h.evidence }

// StoreEvidence makes a verified file the blob sha (lower-case hex SHA-256)
// of the evidence store: it moves the file at path into this member's store
// (refused, file untouched, if it is not sha of size bytes) and records in
// Raft that this member holds it, as evidence for ref (e.g. "case/C123/i1";
// may be empty). The other members then copy it. A call that failed after
// the file was moved in (no leader) can be repeated with the same
// arguments: the blob is found in the store.
func (h *Hub) StoreEvidence(ctx context.Context, path, sha string, size int64, mediaType, ref string) error {
	sha = strings.ToLower(sha)
	if _, err := os.Stat(path); err == nil || !h.evidence.Has(sha) {
		if err := h.evidence.Put(ctx, path, sha, size); err != nil {
			return err
		}
	} else if got, err := h.evidence.Size(sha); err != nil || got != size {
		return fmt.Errorf("evidence blob %s: stored with %d bytes, not %d (%v)", sha, got, size, err)
	}
	if err := h.store.AddBlobHolder(ctx, sha, size, mediaType, h.cfg.MemberID, ref); err != nil {
		return fmt.Errorf("evidence blob %s is stored on member %s but not yet recorded in Raft (repeat the call): %w", sha, h.cfg.MemberID, err)
	}
	h.replicator.Poke()
	return nil
}

// evidenceHolders are the members holding a verified copy of the blob
// (this member's Raft state), sorted; nil if the blob is unknown.
func (h *Hub) evidenceHolders(sha string) []string {
	b, err := h.store.Blob(sha)
	if err != nil {
		return nil
	}
	return b.GetHolders()
}
