package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
)

const usersUsage = `Usage:
  ronda users list   [admin flags] [--json]
  ronda users add    [admin flags] --name N --role ROLE [--areas A,B] [--cameras C,D] [--playback-hours H] [--new-password-file F]
  ronda users set    [admin flags] --name N [--role ROLE] [--areas ..] [--cameras ..] [--playback-hours H] [--new-password-file F] [--disable|--enable]
  ronda users delete [admin flags] NAME

Roles: admin (city admin), operator (control room: every camera), area_operator (--areas:
kota, kecamatan or kelurahan codes), viewer (RT/RW: --cameras, live only or --playback-hours),
auditor (playback and export with a reason), node_admin (--areas: the kelurahan).
The new user's password comes from --new-password-file or $RONDA_NEW_PASSWORD.
A change of role, scope or password, or disabling, logs the user out everywhere.

Admin flags: --url URL --ca CA.pem [--user admin] [--password-file F] (or $RONDA_PASSWORD), or --demo DIR.
`

func runUsers(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Print(usersUsage)
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("users "+cmd, flag.ExitOnError)
	var a adminFlags
	a.register(fs)
	name := fs.String("name", "", "the user's name")
	role := fs.String("role", "", "admin | operator | area_operator | viewer | auditor | node_admin")
	areas := fs.String("areas", "", "area codes, comma-separated (area_operator, node_admin)")
	cameras := fs.String("cameras", "", "camera ids, comma-separated (viewer)")
	hours := fs.Int("playback-hours", -1, "viewer: hours of playback allowed (0: live only)")
	pwFile := fs.String("new-password-file", "", "file holding the user's new password (default: $RONDA_NEW_PASSWORD)")
	disable := fs.Bool("disable", false, "set: disable the user (logged out everywhere)")
	enable := fs.Bool("enable", false, "set: enable the user again")
	asJSON := fs.Bool("json", false, "list: print JSON")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usersUsage) }
	fs.Parse(args)
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	newPassword := func() (string, error) {
		pw := os.Getenv("RONDA_NEW_PASSWORD")
		if *pwFile != "" {
			raw, err := os.ReadFile(*pwFile)
			if err != nil {
				return "", fmt.Errorf("--new-password-file: %w", err)
			}
			pw = strings.TrimRight(string(raw), "\r\n")
		}
		return pw, nil
	}
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	req := api.UserRequest{Name: *name, Role: *role}
	if *areas != "" || *cameras != "" || *hours >= 0 {
		req.Scope = &auth.Scope{Areas: split(*areas), Cameras: split(*cameras), PlaybackHours: max(*hours, 0)}
	}
	switch cmd {
	case "list":
		var out struct {
			Users []api.UserInfo `json:"users"`
		}
		var raw []byte
		if _, err := c.Do(ctx, "GET", "/api/v1/users", nil, "", &raw); err != nil {
			return fmt.Errorf("users list: %w", err)
		}
		if *asJSON {
			fmt.Println(string(raw))
			return nil
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tSCOPE\tSTATE\tSOURCE\tCHANGED BY")
		for _, u := range out.Users {
			state := "active"
			if u.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, u.Scope, state, u.Source, u.ChangedBy)
		}
		return tw.Flush()
	case "add":
		if req.Name == "" || req.Role == "" {
			return errors.New("users add: --name and --role are required")
		}
		if req.Password, err = newPassword(); err != nil {
			return err
		}
		if req.Password == "" {
			return errors.New("users add: the new user's password: --new-password-file F or $RONDA_NEW_PASSWORD")
		}
		body, _ := json.Marshal(req)
		var out api.UserInfo
		if _, err := c.Do(ctx, "POST", "/api/v1/users", strings.NewReader(string(body)), "application/json", &out); err != nil {
			return fmt.Errorf("users add: %w", err)
		}
		fmt.Printf("created %s: %s, %s\n", out.Name, out.Role, out.Scope)
	case "set":
		if req.Name == "" {
			return errors.New("users set: --name is required")
		}
		if *pwFile != "" {
			if req.Password, err = newPassword(); err != nil {
				return err
			}
		}
		if *disable || *enable {
			d := *disable
			req.Disabled = &d
		}
		body, _ := json.Marshal(req)
		var out api.UserInfo
		if _, err := c.Do(ctx, "PATCH", "/api/v1/users/"+req.Name, strings.NewReader(string(body)), "application/json", &out); err != nil {
			return fmt.Errorf("users set: %w", err)
		}
		fmt.Printf("changed %s: %s, %s, disabled=%v\n", out.Name, out.Role, out.Scope, out.Disabled)
	case "delete":
		if fs.NArg() != 1 {
			return errors.New("users delete: name the user, e.g. ronda users delete rw05-gambir")
		}
		if _, err := c.Do(ctx, "DELETE", "/api/v1/users/"+fs.Arg(0), nil, "", nil); err != nil {
			return fmt.Errorf("users delete: %w", err)
		}
		fmt.Printf("deleted %s\n", fs.Arg(0))
	default:
		return fmt.Errorf("users: unknown command %q\n\n%s", cmd, usersUsage)
	}
	return nil
}
