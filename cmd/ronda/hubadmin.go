package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/ronda-jakarta/ronda/demo"
	"github.com/ronda-jakarta/ronda/hub"
	"github.com/ronda-jakarta/ronda/hub/store"
)

// adminFlags are how the hub's operator commands reach a running member's
// HTTPS API: a URL, the city CA, and an admin login. --demo DIR takes all
// of them from a demo federation's demo.json.
type adminFlags struct {
	url, ca, user, passwordFile, demoDir string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "url", "", "a hub member's HTTPS API, e.g. https://127.0.0.1:9443")
	fs.StringVar(&a.ca, "ca", "", "the city CA certificate (PEM) that signed the member's certificate")
	fs.StringVar(&a.user, "user", "admin", "a city admin's user name")
	fs.StringVar(&a.passwordFile, "password-file", "", "file holding the password (default: $RONDA_PASSWORD)")
	fs.StringVar(&a.demoDir, "demo", "", "take --url, --ca, --user and the password from DIR/demo.json")
}

// client logs in and returns an API client without a request timeout
// (backups stream for as long as they take; ctx bounds them).
func (a *adminFlags) client(ctx context.Context) (*demo.Client, error) {
	password := os.Getenv("RONDA_PASSWORD")
	if a.demoDir != "" {
		raw, err := os.ReadFile(filepath.Join(a.demoDir, "demo.json"))
		if err != nil {
			return nil, fmt.Errorf("--demo: %w (start one with 'make demo')", err)
		}
		var m demo.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("--demo: %s/demo.json: %w", a.demoDir, err)
		}
		if a.url == "" && len(m.Hubs) > 0 {
			a.url = m.Hubs[0].URL
		}
		if a.ca == "" {
			a.ca = m.CAFile
		}
		for _, u := range m.Users {
			if u.Role == "admin" {
				a.user, password = u.User, u.Password
				break
			}
		}
	}
	if a.passwordFile != "" {
		raw, err := os.ReadFile(a.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		password = strings.TrimRight(string(raw), "\r\n")
	}
	switch {
	case a.url == "":
		return nil, errors.New("--url is required: a hub member's HTTPS API (or --demo DIR)")
	case a.ca == "":
		return nil, errors.New("--ca is required: the city CA certificate, e.g. certs/ca.pem (or --demo DIR)")
	case password == "":
		return nil, errors.New("no password: set RONDA_PASSWORD or pass --password-file FILE")
	}
	c, err := demo.NewClient(strings.TrimRight(a.url, "/"), a.ca)
	if err != nil {
		return nil, err
	}
	c.HTTP.Timeout = 0
	if err := c.Login(ctx, a.user, password); err != nil {
		return nil, fmt.Errorf("log in to %s as %s: %w", a.url, a.user, err)
	}
	return c, nil
}

const hubUsage = `Usage:
  ronda hub --config FILE                        run a hub member
  ronda hub backup  [admin flags] FILE           online, consistent backup of the catalog
  ronda hub restore --config FILE BACKUP         prepare an empty member of a new cluster from a backup
  ronda hub members [admin flags]                list members, their suffrage and health
  ronda hub join    [admin flags] --id ID --raft ADDR --grpc ADDR
                                                 add a member (joins as non-voter, promoted when caught up)
  ronda hub remove  [admin flags] ID             remove a member
  ronda hub transfer-leader [admin flags] [ID]   hand leadership to ID (or any up-to-date member)

Admin flags: --url URL --ca CA.pem [--user admin] [--password-file F] (or $RONDA_PASSWORD), or --demo DIR.
`

func runHubBackup(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hub backup", flag.ExitOnError)
	var a adminFlags
	a.register(fs)
	fs.Usage = func() { fmt.Fprint(os.Stderr, hubUsage) }
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("hub backup: name the file to write, e.g. ronda hub backup --demo ronda-demo hub.backup")
	}
	out := fs.Arg(0)
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+"/api/v1/cluster/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("hub backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("hub backup: HTTP %d: %s", resp.StatusCode, e.Error)
	}
	tmp := out + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("hub backup: %w", err)
	}
	defer os.Remove(tmp)
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("hub backup: after %d bytes: %w (the member may have stopped; run it again)", n, err)
	}
	// Check the whole file before calling it a backup.
	vf, err := os.Open(tmp)
	if err != nil {
		return err
	}
	info, entries, err := store.VerifyBackup(vf)
	vf.Close()
	if err != nil {
		return fmt.Errorf("hub backup: the received file does not verify: %w; run it again", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("hub backup: %w", err)
	}
	fmt.Printf("backup of member %s at applied index %d: %d keys, %d bytes, checksum ok -> %s\n",
		resp.Header.Get("X-Ronda-Backup-Member"), info.AppliedIndex, entries, info.Bytes, out)
	return nil
}

func runHubRestore(args []string) error {
	fs := flag.NewFlagSet("hub restore", flag.ExitOnError)
	cfgPath := fs.String("config", "", "the new member's config file (YAML); its data_dir must be empty")
	level := fs.String("log-level", "warn", "debug|info|warn|error")
	fs.Usage = func() { fmt.Fprint(os.Stderr, hubUsage) }
	fs.Parse(args)
	if *cfgPath == "" || fs.NArg() != 1 {
		return errors.New("hub restore: usage: ronda hub restore --config hub.yaml BACKUP (run it on every member of the new cluster, then start them)")
	}
	cfg, err := hub.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("hub restore: %w", err)
	}
	defer f.Close()
	info, err := hub.Restore(cfg, f, logger(*level))
	if err != nil {
		return fmt.Errorf("hub restore: %w", err)
	}
	fmt.Printf("member %s restored at applied index %d with %d members; start it with: ronda hub --config %s\n",
		cfg.MemberID, info.AppliedIndex, info.Members, *cfgPath)
	return nil
}

// runHubMembership runs members, join, remove and transfer-leader.
func runHubMembership(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet("hub "+cmd, flag.ExitOnError)
	var a adminFlags
	a.register(fs)
	id := fs.String("id", "", "join: the new member's id (its certificate's member name)")
	raftAddr := fs.String("raft", "", "join: the new member's raft address host:port")
	grpcAddr := fs.String("grpc", "", "join: the new member's gRPC address host:port")
	httpURL := fs.String("http", "", "join: the new member's HTTPS API URL (optional)")
	asJSON := fs.Bool("json", false, "members: print JSON")
	fs.Usage = func() { fmt.Fprint(os.Stderr, hubUsage) }
	fs.Parse(args)
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	var out map[string]any
	switch cmd {
	case "members":
		var raw []byte
		if _, err := c.Do(ctx, "GET", "/api/v1/cluster/members", nil, "", &raw); err != nil {
			return fmt.Errorf("hub members: %w", err)
		}
		if *asJSON {
			fmt.Println(string(raw))
			return nil
		}
		return printMembers(raw)
	case "join":
		if *id == "" || *raftAddr == "" || *grpcAddr == "" {
			return errors.New("hub join: --id, --raft and --grpc are required (the new member runs with join: true in its hub.yaml)")
		}
		body, _ := json.Marshal(map[string]string{"id": *id, "raft": *raftAddr, "grpc": *grpcAddr, "http": *httpURL})
		var raw []byte
		if _, err := c.Do(ctx, "POST", "/api/v1/cluster/members", strings.NewReader(string(body)), "application/json", &raw); err != nil {
			return fmt.Errorf("hub join: %w", err)
		}
		fmt.Printf("%s joined as a non-voter; it is promoted to voter once it has caught up and stayed healthy (watch: ronda hub members)\n", *id)
		return printMembers(raw)
	case "remove":
		if fs.NArg() != 1 {
			return errors.New("hub remove: name the member to remove, e.g. ronda hub remove h3")
		}
		if _, err := c.Do(ctx, "DELETE", "/api/v1/cluster/members/"+fs.Arg(0), nil, "", &out); err != nil {
			return fmt.Errorf("hub remove: %w", err)
		}
		fmt.Printf("%s removed from the cluster; stop its process and keep or wipe its data dir\n", fs.Arg(0))
	case "transfer-leader":
		body := ""
		if fs.NArg() == 1 {
			b, _ := json.Marshal(map[string]string{"to": fs.Arg(0)})
			body = string(b)
		}
		if _, err := c.Do(ctx, "POST", "/api/v1/cluster/leader", strings.NewReader(body), "application/json", &out); err != nil {
			return fmt.Errorf("hub transfer-leader: %w", err)
		}
		fmt.Printf("leader is now %v\n", out["leader"])
	}
	return nil
}

func printMembers(raw []byte) error {
	var v struct {
		Leader  string               `json:"leader"`
		Term    uint64               `json:"term"`
		Members []store.MemberStatus `json:"members"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	fmt.Printf("leader %s, term %d\n", v.Leader, v.Term)
	fmt.Printf("%-10s %-22s %-9s %-12s %-10s %-8s %s\n", "MEMBER", "RAFT", "SUFFRAGE", "STATE", "APPLIED", "HEALTHY", "NOTE")
	for _, m := range v.Members {
		healthy := "-"
		if m.Healthy != nil {
			healthy = fmt.Sprint(*m.Healthy)
		}
		note := m.Error
		if note == "" && m.LastContactMs > 0 {
			note = fmt.Sprintf("last contact %d ms ago", m.LastContactMs)
		}
		fmt.Printf("%-10s %-22s %-9s %-12s %-10d %-8s %s\n", m.ID, m.RaftAddr, m.Suffrage, m.State, m.Applied, healthy, note)
	}
	return nil
}
