package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/demo"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
)

const auditUsage = `Usage:
  ronda audit verify [admin flags] [--member NAME] [--state FILE] [--json]
  ronda audit export-proof [admin flags] --node NODE --export ID [--out FILE]

Checks a hub member's audit Merkle log (RFC 6962): every checkpoint's
signature, every record against the leaf the log committed to, each node's
hash chain, the tree's root at every checkpoint, consistency and inclusion
proofs. Anything rewritten or deleted is named (leaf, node, audit event).
It reads the member's own state (no read barrier), so point it at each
member in turn. --state FILE pins the hub's key and the newest checkpoint
verified: the next run checks the log still extends it.

Admin flags: --url URL --ca CA.pem [--user admin] [--password-file F] (or $RONDA_PASSWORD), or --demo DIR
(--member h2 picks that member of the demo). An auditor's login works too.
`

type auditState struct {
	PublicKey  []byte              `json:"public_key"`
	Checkpoint auditlog.Checkpoint `json:"checkpoint"`
}

// httpSource reads a member's log through its API.
type httpSource struct {
	c   *demo.Client
	cps api.AuditCheckpoints
}

func (s *httpSource) get(ctx context.Context, path string, q url.Values, out any) error {
	q.Set("consistency", "stale")
	_, err := s.c.Do(ctx, "GET", path+"?"+q.Encode(), nil, "", out)
	return err
}

func (s *httpSource) Checkpoints(ctx context.Context) ([]auditlog.Checkpoint, error) {
	return s.cps.Checkpoints, nil
}

func (s *httpSource) Leaves(ctx context.Context, start uint64, count int) ([]auditlog.Leaf, error) {
	var out struct {
		Leaves []auditlog.Leaf `json:"leaves"`
	}
	err := s.get(ctx, "/api/v1/audit/leaves", url.Values{"start": {fmt.Sprint(start)}, "count": {fmt.Sprint(count)}}, &out)
	return out.Leaves, err
}

func (s *httpSource) Proof(ctx context.Context, a, b uint64, consistency bool) ([][]byte, error) {
	var out struct {
		Hashes [][]byte `json:"hashes"`
	}
	path, q := "/api/v1/audit/proof/inclusion", url.Values{"index": {fmt.Sprint(a)}, "size": {fmt.Sprint(b)}}
	if consistency {
		path, q = "/api/v1/audit/proof/consistency", url.Values{"from": {fmt.Sprint(a)}, "to": {fmt.Sprint(b)}}
	}
	err := s.get(ctx, path, q, &out)
	return out.Hashes, err
}

// runExportProof fetches the proof that ties an export to the audit log.
func runExportProof(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit export-proof", flag.ExitOnError)
	var a adminFlags
	a.register(fs)
	node := fs.String("node", "", "the node that made the export")
	export := fs.String("export", "", "the export's id")
	out := fs.String("out", "", "write the proof here (default: stdout)")
	fs.Usage = func() { fmt.Fprint(os.Stderr, auditUsage) }
	fs.Parse(args)
	if *node == "" || *export == "" {
		return errors.New("audit export-proof: --node and --export are required")
	}
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	var raw []byte
	if _, err := c.Do(ctx, "GET", "/api/v1/audit/proof/export?"+url.Values{"node": {*node}, "export": {*export}}.Encode(), nil, "", &raw); err != nil {
		return fmt.Errorf("audit export-proof: %w", err)
	}
	if *out == "" {
		fmt.Println(string(raw))
		return nil
	}
	return os.WriteFile(*out, raw, 0o644)
}

func runAudit(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "export-proof" {
		return runExportProof(ctx, args[1:])
	}
	if len(args) == 0 || args[0] != "verify" {
		fmt.Print(auditUsage)
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			return nil
		}
		return fmt.Errorf("audit: unknown command %q", args[0])
	}
	fs := flag.NewFlagSet("audit verify", flag.ExitOnError)
	var a adminFlags
	a.register(fs)
	member := fs.String("member", "", "with --demo: the member to check (h1, h2, ...)")
	statePath := fs.String("state", "", "file pinning the hub's key and the newest verified checkpoint (read, then updated)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() { fmt.Fprint(os.Stderr, auditUsage) }
	fs.Parse(args[1:])
	if *member != "" && a.demoDir != "" {
		raw, err := os.ReadFile(filepath.Join(a.demoDir, "demo.json"))
		if err != nil {
			return err
		}
		var m demo.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for _, h := range m.Hubs {
			if h.Name == *member {
				a.url = h.URL
			}
		}
		if a.url == "" {
			return fmt.Errorf("audit verify: the demo has no member %q", *member)
		}
	}
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	src := &httpSource{c: c}
	if err := src.get(ctx, "/api/v1/audit/checkpoints", url.Values{}, &src.cps); err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	var st *auditState
	pub := ed25519.PublicKey(src.cps.PublicKey)
	if *statePath != "" {
		if raw, err := os.ReadFile(*statePath); err == nil {
			st = &auditState{}
			if err := json.Unmarshal(raw, st); err != nil {
				return fmt.Errorf("--state %s: %w", *statePath, err)
			}
			if !bytes.Equal(st.PublicKey, pub) {
				fmt.Printf("WARNING: member %s presents another signing key than the one pinned in %s; verifying with the pinned key\n", src.cps.Member, *statePath)
			}
			pub = st.PublicKey
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	var pinned *auditlog.Checkpoint
	if st != nil && st.Checkpoint.Size > 0 {
		pinned = &st.Checkpoint
	}
	start := time.Now()
	rep, err := auditlog.Verify(ctx, src, pub, pinned)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if *asJSON {
		raw, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Println(string(raw))
	} else {
		fmt.Printf("member %s: %d leaves in %d chains, %d signed checkpoints (newest: size %d by %s), %d leaves after it; %d inclusion and %d consistency proofs checked in %s\n",
			src.cps.Member, rep.Leaves, rep.Nodes, rep.Checkpoints, rep.Newest.Size, rep.Newest.Member, rep.Unsigned, rep.Inclusion, rep.Consistency, time.Since(start).Round(time.Millisecond))
		for _, f := range rep.Findings {
			fmt.Println("  TAMPERED:", f)
		}
	}
	if !rep.OK() {
		return fmt.Errorf("audit verify: member %s: %d problems found in the audit log", src.cps.Member, len(rep.Findings))
	}
	if *statePath != "" && rep.Checkpoints > 0 {
		raw, _ := json.MarshalIndent(auditState{PublicKey: pub, Checkpoint: rep.Newest}, "", "  ")
		if err := os.WriteFile(*statePath, raw, 0o600); err != nil {
			return err
		}
	}
	fmt.Println("audit log verified: nothing rewritten, nothing deleted")
	return nil
}
