package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/demo"
)

// runCertsToken: ronda certs token [admin flags] --kelurahan CODE [--ttl 1h]
func runCertsToken(args []string) error {
	fs := flag.NewFlagSet("certs token", flag.ExitOnError)
	var a adminFlags
	a.register(fs)
	kel := fs.String("kelurahan", "", "the kelurahan the new node will serve, e.g. 31.71.01.1001")
	ttl := fs.Duration("ttl", time.Hour, "how long the token works (at most 168h); it works once")
	fs.Parse(args)
	if *kel == "" {
		return errors.New("certs token: --kelurahan CODE is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"kelurahan": *kel, "ttl": ttl.String()})
	var tok api.JoinToken
	if _, err := c.Do(ctx, "POST", "/api/v1/enrollment/tokens", bytes.NewReader(body), "application/json", &tok); err != nil {
		return err
	}
	fmt.Printf("%s\n\njoin token for kelurahan %s, valid once until %s. On the new node:\n  ronda node enroll --hub %s --ca CITY-CA.pem --node-id ID --out tls --token %s\n",
		tok.Token, tok.Kelurahan, tok.Expires.Format(time.RFC3339), a.url, tok.Token)
	return nil
}

// runNodeEnroll: the node makes its own key and a certificate request, and
// the hub signs it for the token's kelurahan.
func runNodeEnroll(args []string) error {
	fs := flag.NewFlagSet("node enroll", flag.ExitOnError)
	hubURL := fs.String("hub", "", "a hub member's HTTPS API, e.g. https://hub.example:9443")
	ca := fs.String("ca", "", "the city CA certificate (PEM), to trust the hub")
	token := fs.String("token", "", "the join token from 'ronda certs token'")
	nodeID := fs.String("node-id", "", "this node's id (as in node.yaml node_id)")
	out := fs.String("out", "tls", "directory for key.pem (made here, never sent), cert.pem and ca.pem")
	fs.Parse(args)
	switch {
	case *hubURL == "" || *ca == "":
		return errors.New("node enroll: --hub URL and --ca CA.pem are required")
	case *token == "" || *nodeID == "":
		return errors.New("node enroll: --token and --node-id are required")
	}
	csr, err := certs.NewKeyAndCSR(*out)
	if err != nil {
		return err
	}
	c, err := demo.NewClient(strings.TrimRight(*hubURL, "/"), *ca)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, _ := json.Marshal(api.EnrollRequest{Token: *token, NodeID: *nodeID, CSR: string(csr)})
	var res api.Enrolled
	if _, err := c.Do(ctx, "POST", "/api/v1/enroll", bytes.NewReader(body), "application/json", &res); err != nil {
		return fmt.Errorf("enroll at %s: %w", *hubURL, err)
	}
	b, err := certs.WriteEnrolled(*out, []byte(res.Cert), []byte(res.CA))
	if err != nil {
		return fmt.Errorf("the hub's answer does not match the key made here: %w", err)
	}
	fmt.Printf("enrolled as %s; certificate in %s (valid until %s)\n", b.Identity, filepath.Join(*out, certs.CertFile), b.Current().Leaf.NotAfter.Format(time.RFC3339))
	return nil
}
