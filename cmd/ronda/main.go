// Command ronda is Ronda's one binary: hub member, kelurahan node, camera
// simulator, certificate tool and local demo federation.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/demo"
	"github.com/ronda-jakarta/ronda/evidence"
	"github.com/ronda-jakarta/ronda/hub"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
	"github.com/ronda-jakarta/ronda/node"
)

const usage = `ronda — federated CCTV for Jakarta's kelurahan

Usage:
  ronda hub    --config FILE          run a city hub member
  ronda hub    backup|restore|members|join|remove|transfer-leader ...
                                       operate the hub cluster (ronda hub help)
  ronda node   --config FILE          run a kelurahan node
  ronda camsim [--addr A] [--cameras N] [--clip FILE] [--bitrate BPS]
                                       simulated RTSP cameras
  ronda certs  init  --dir DIR --city NAME
  ronda certs  issue --dir DIR --out DIR (--hub MEMBER | --node ID --kelurahan CODE) [--host H]...
  ronda certs  token [admin flags] --kelurahan CODE [--ttl 1h]
                                       a single-use join token for a new node (at a hub member)
  ronda node   enroll --hub URL --ca CA.pem --token T --node-id ID [--out tls]
                                       make this node's key, get its certificate with the token
  ronda demo   [--dir ./ronda-demo] [--nodes 3] [--cameras 2] [--base-port 17000]
                                       a whole local federation
  ronda demo   link [--dir ./ronda-demo] NODE up|down|reset|half-open
                                       cut or heal a demo node's links to the hub
  ronda users  list|add|set|delete [admin flags] ...
                                       users, roles and scopes (at a hub member; 'ronda users help')
  ronda audit  verify [admin flags] [--member h2] [--state FILE]
                                       check the hub's audit Merkle log; names any rewritten or deleted record
  ronda verify [--ca CA.pem] [--segments DIR] [--audit-proof PROOF.json [--hub-key KEY]] FILE.mp4 MANIFEST.json
                                       check an export offline
  ronda verify CASE.zip [--hub-key KEY] [--ca CA.pem]
                                       check an evidence case bundle offline
  ronda reportsim [--demo ./ronda-demo | --hub URL --ca CA.pem --token T] [--n 1] [--near CAMERA|KELURAHAN] [--category C] [--id ID]
                                       post realistic citizen reports as the city's complaint system (JAKI)
  ronda version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "hub":
		err = runHub(ctx, args)
	case "node":
		err = runNode(ctx, args)
	case "camsim":
		err = runCamsim(ctx, args)
	case "certs":
		err = runCerts(args)
	case "demo":
		err = runDemo(ctx, args)
	case "verify":
		err = runVerify(args)
	case "users":
		err = runUsers(ctx, args)
	case "audit":
		err = runAudit(ctx, args)
	case "reportsim":
		err = runReportsim(ctx, args)
	case "version":
		fmt.Println("ronda", node.Version)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "ronda: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ronda:", err)
		os.Exit(1)
	}
}

// servePprof exposes the Go profiler on a separate listener an operator
// chooses (keep it on localhost); off unless asked for.
func servePprof(addr string) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			slog.Error("pprof listener", "addr", addr, "err", err)
		}
	}()
}

func logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func runHub(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "backup":
			return runHubBackup(ctx, args[1:])
		case "restore":
			return runHubRestore(args[1:])
		case "members", "join", "remove", "transfer-leader":
			return runHubMembership(ctx, args[0], args[1:])
		case "help", "-h", "--help":
			fmt.Print(hubUsage)
			return nil
		}
	}
	fs := flag.NewFlagSet("hub", flag.ExitOnError)
	cfgPath := fs.String("config", "", "hub config file (YAML)")
	level := fs.String("log-level", "info", "debug|info|warn|error")
	pprofAddr := fs.String("pprof", "", "serve /debug/pprof on this address (e.g. 127.0.0.1:6060); off by default")
	fs.Parse(args)
	servePprof(*pprofAddr)
	if *cfgPath == "" {
		return errors.New("hub: --config FILE is required (see deploy/hub.yaml)")
	}
	cfg, err := hub.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := logger(*level).With("member", cfg.MemberID)
	h, err := hub.New(cfg, log)
	if err != nil {
		return err
	}
	if err := h.Start(); err != nil {
		h.Close()
		return err
	}
	<-ctx.Done()
	log.Info("stopping")
	return h.Close()
}

func runNode(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "enroll" {
		return runNodeEnroll(args[1:])
	}
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	cfgPath := fs.String("config", "", "node config file (YAML)")
	level := fs.String("log-level", "info", "debug|info|warn|error")
	pprofAddr := fs.String("pprof", "", "serve /debug/pprof on this address (e.g. 127.0.0.1:6060); off by default")
	fs.Parse(args)
	servePprof(*pprofAddr)
	if *cfgPath == "" {
		return errors.New("node: --config FILE is required (see deploy/node.yaml)")
	}
	cfg, err := node.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := logger(*level).With("node", cfg.NodeID)
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		n.Close()
		return err
	}
	<-ctx.Done()
	log.Info("stopping")
	return n.Close()
}

func runCamsim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("camsim", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8554", "RTSP listen address")
	n := fs.Int("cameras", 2, "number of cameras (paths /cam1 ... /camN)")
	clip := fs.String("clip", "testdata/clip.h264", "H.264 or H.265 Annex-B clip to loop (testdata/clip.h265)")
	bitrate := fs.Int("bitrate", 0, "target bits/s, padded with filler NAL units (0 = the clip's own)")
	udp := fs.Bool("udp", false, "also offer the UDP transport")
	user := fs.String("user", "", "require this user (with --pass) to pull the cameras")
	pass := fs.String("pass", "", "the password for --user")
	authMethod := fs.String("auth", "", "basic|digest (default: both offered)")
	level := fs.String("log-level", "info", "debug|info|warn|error")
	fs.Parse(args)
	log := logger(*level).With("part", "camsim")
	s, err := camsim.New(camsim.Config{Addr: *addr, Cameras: *n, ClipPath: *clip, Bitrate: *bitrate, Logger: log,
		UDP: *udp, User: *user, Pass: *pass, AuthMethod: *authMethod})
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	for i := 1; i <= *n; i++ {
		log.Info("camera", "url", s.URL(i))
	}
	<-ctx.Done()
	s.Close()
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runCerts(args []string) error {
	if len(args) == 0 {
		return errors.New("certs: say 'init', 'issue' or 'token'")
	}
	if args[0] == "token" {
		return runCertsToken(args[1:])
	}
	fs := flag.NewFlagSet("certs "+args[0], flag.ExitOnError)
	dir := fs.String("dir", "ca", "CA directory")
	switch args[0] {
	case "init":
		city := fs.String("city", "jakarta", "city name in SPIFFE identities")
		fs.Parse(args[1:])
		if err := certs.InitCA(*dir, *city); err != nil {
			return err
		}
		fmt.Printf("city CA created in %s:\n  %s  the root: every member and node trusts it\n  %s  the root's key: move it offline (only needed to replace the intermediate)\n  %s, %s  the online issuing CA that signs certificates ('certs issue', the hub's enrollment)\n",
			*dir, certs.CAFile, certs.CAKeyFile, certs.IntermediateFile, certs.IntermediateKeyFile)
		return nil
	case "issue":
		out := fs.String("out", "", "output directory for cert.pem, key.pem, ca.pem")
		member := fs.String("hub", "", "hub member name")
		nodeID := fs.String("node", "", "node id")
		kel := fs.String("kelurahan", "", "kelurahan code of the node, e.g. 31.71.01.1001")
		var hosts multiFlag
		fs.Var(&hosts, "host", "DNS name or IP the certificate serves (repeatable; default 127.0.0.1, localhost)")
		fs.Parse(args[1:])
		ca, err := certs.LoadCA(*dir)
		if err != nil {
			return err
		}
		var id certs.Identity
		switch {
		case *member != "" && *nodeID == "":
			id = certs.Identity{Kind: certs.KindHub, Member: *member}
		case *nodeID != "" && *member == "":
			id = certs.Identity{Kind: certs.KindNode, NodeID: *nodeID, Kelurahan: *kel}
		default:
			return errors.New("certs issue: give either --hub MEMBER or --node ID --kelurahan CODE")
		}
		if *out == "" {
			return errors.New("certs issue: --out DIR is required")
		}
		if err := ca.Issue(*out, certs.IssueOptions{Identity: id, Hosts: hosts}); err != nil {
			return err
		}
		id.City = ca.City
		fmt.Printf("issued %s into %s\n", id, *out)
		return nil
	}
	return fmt.Errorf("certs: unknown subcommand %q (init, issue, token)", args[0])
}

func runDemo(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "link" {
		fs := flag.NewFlagSet("demo link", flag.ExitOnError)
		dir := fs.String("dir", "ronda-demo", "the running demo's directory")
		delay := fs.Duration("delay", 0, "added latency each way (with up)")
		member := fs.String("member", "", "only the node's link to this hub member (default: all of them)")
		fs.Parse(args[1:])
		if fs.NArg() != 2 {
			return errors.New("demo link: usage: ronda demo link [--dir ronda-demo] [--delay 200ms] [--member h1] NODE up|down|reset|half-open")
		}
		st, err := demo.SetMemberLink(ctx, *dir, fs.Arg(0), *member, fs.Arg(1), *delay)
		if err != nil {
			return err
		}
		fmt.Printf("%s: %d hub links %s (delay %s)\n", st.Node, st.Links, st.Mode, st.Delay)
		return nil
	}
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	var o demo.Options
	fs.StringVar(&o.Dir, "dir", "ronda-demo", "directory for all demo data")
	fs.IntVar(&o.Nodes, "nodes", 3, "number of kelurahan nodes")
	fs.IntVar(&o.Cameras, "cameras", 2, "simulated cameras per node")
	fs.IntVar(&o.BasePort, "base-port", 17000, "first of the ports the demo uses")
	fs.StringVar(&o.Clip, "clip", "testdata/clip.h264", "H.264 clip the simulated cameras loop")
	fs.Parse(args)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.Binary = exe
	o.Logger = logger("info").With("part", "demo")
	return demo.Run(ctx, o)
}

func runVerify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	caFile := fs.String("ca", "", "city CA certificate: the signer must chain to it")
	segDir := fs.String("segments", "", "node's segments directory: check the source segments too")
	proofFile := fs.String("audit-proof", "", "the export's proof from the hub's audit log (ronda audit export-proof): check it too")
	hubKeyFile := fs.String("hub-key", "", "the hub's public key (a file, or the key itself: base64, hex or PEM) to trust instead of the one in the proof or the case bundle")
	pos := parseInterspersed(fs, args)
	var roots *x509.CertPool
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("verify: %s holds no certificate", *caFile)
		}
	}
	var hubKey ed25519.PublicKey
	if *hubKeyFile != "" {
		k, err := loadHubKey(*hubKeyFile)
		if err != nil {
			return err
		}
		hubKey = k
	}
	switch {
	case len(pos) == 1:
		if *segDir != "" || *proofFile != "" {
			return errors.New("verify: --segments and --audit-proof are for FILE.mp4 MANIFEST.json; a case bundle carries its own proofs")
		}
		return verifyCaseBundle(pos[0], hubKey, roots)
	case len(pos) != 2:
		return errors.New("verify: give CASE.zip, or FILE.mp4 and MANIFEST.json")
	}
	m, err := evidence.Load(pos[1])
	if err != nil {
		return err
	}
	o := evidence.Options{SegmentsDir: *segDir, Roots: roots}
	problems := evidence.Verify(m, pos[0], o)
	proofLine := ""
	if *proofFile != "" {
		raw, err := os.ReadFile(*proofFile)
		if err != nil {
			return err
		}
		var p api.ExportProof
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("verify: %s is not an export proof: %w", *proofFile, err)
		}
		pub := ed25519.PublicKey(p.PublicKey)
		if hubKey != nil {
			pub = hubKey
		}
		problems = append(problems, auditlog.VerifyExportProof(p, m.NodeID, m.ID, m.Camera, m.SHA256, pub)...)
		proofLine = fmt.Sprintf("; in the hub's audit log as %s audit event #%d (leaf %d of the checkpoint signed by %s at size %d, hub key %s)",
			p.Record.NodeID, p.Record.Seq, p.LeafIndex, p.Checkpoint.Member, p.Checkpoint.Size, auditlog.KeyFingerprint(pub))
	}
	if len(problems) > 0 {
		fmt.Printf("NOT VERIFIED: %s (%s, %s to %s)\n", pos[0], m.Camera, m.From.Format(time.RFC3339), m.To.Format(time.RFC3339))
		for _, p := range problems {
			fmt.Println("  -", p)
		}
		os.Exit(1)
	}
	fmt.Printf("VERIFIED: %s is export %s of camera %s, %s to %s, %d bytes, SHA-256 %s, signed by %s; requested by %s: %q%s\n",
		pos[0], m.ID, m.Camera, m.From.Format(time.RFC3339), m.To.Format(time.RFC3339), m.Bytes, m.SHA256, m.Signer, m.RequestedBy, m.Reason, proofLine)
	return nil
}
