package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ronda-jakarta/ronda/internal/bundle"
)

// verifyCaseBundle is `ronda verify CASE.zip`: VERIFIED with a summary, or
// NOT VERIFIED with every problem (exit status 1).
func verifyCaseBundle(path string, hubKey ed25519.PublicKey, roots *x509.CertPool) error {
	rep := bundle.Verify(path, bundle.Options{HubKey: hubKey, Roots: roots})
	if !printCaseReport(os.Stdout, path, rep) {
		os.Exit(1)
	}
	return nil
}

// printCaseReport prints a case bundle's report; it returns rep.OK.
func printCaseReport(w io.Writer, path string, rep bundle.Report) bool {
	if !rep.OK {
		c := ""
		if rep.Case != "" {
			c = " (case " + rep.Case + ")"
		}
		fmt.Fprintf(w, "NOT VERIFIED: %s%s\n", path, c)
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "  -", p)
		}
	} else {
		how := "from the bundle, not pinned"
		if rep.KeyPinned {
			how = "pinned"
		}
		fmt.Fprintf(w, "VERIFIED: %s is evidence case %s: %d items (%d bytes of footage), %d audit records; signed by hub key %s (%s)\n",
			path, rep.Case, rep.Items, rep.Bytes, rep.AuditRecords, rep.HubKey, how)
		for _, c := range rep.Checked {
			fmt.Fprintln(w, "  ok:", c)
		}
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintln(w, "  warning:", warn)
	}
	return rep.OK
}

// parseInterspersed parses fs's flags wherever they are among the
// positional arguments (`ronda verify CASE.zip --hub-key K`), and returns
// the positional ones. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) []string {
	var pos []string
	for {
		before := len(args)
		fs.Parse(args)
		rest := fs.Args()
		if len(rest) == 0 {
			return pos
		}
		if consumed := before - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...)
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// loadHubKey reads the hub's Ed25519 public key from a file or from the
// argument itself: 32 raw bytes, base64 (as GET /api/v1/audit/checkpoints
// and case.json give it), hex, or a PEM "PUBLIC KEY".
func loadHubKey(arg string) (ed25519.PublicKey, error) {
	raw, rerr := os.ReadFile(arg)
	if rerr != nil {
		raw = []byte(arg)
	}
	if k := parseHubKey(raw); k != nil {
		return k, nil
	}
	switch {
	case rerr == nil:
		return nil, fmt.Errorf("verify: --hub-key %s does not hold an Ed25519 public key (32 raw bytes, base64, hex or PEM)", arg)
	case errors.Is(rerr, os.ErrNotExist):
		return nil, fmt.Errorf("verify: --hub-key %q is neither a file nor an Ed25519 public key (base64, hex or PEM)", arg)
	}
	return nil, fmt.Errorf("verify: --hub-key: %w", rerr)
}

func parseHubKey(raw []byte) ed25519.PublicKey {
	if len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw)
	}
	if blk, _ := pem.Decode(raw); blk != nil {
		if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err == nil {
			if pub, ok := k.(ed25519.PublicKey); ok {
				return pub
			}
		}
		return nil
	}
	s := strings.TrimSpace(string(raw))
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == ed25519.PublicKeySize {
		return k
	}
	if k, err := hex.DecodeString(s); err == nil && len(k) == ed25519.PublicKeySize {
		return k
	}
	return nil
}
