package demo

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/ronda-jakarta/ronda/api"
)

// Client calls a Ronda HTTP API (hub or node) as a logged-in user.
type Client struct {
	Base  string
	HTTP  *http.Client
	Token string
}

// NewClient returns a client for base that trusts the CA in caFile.
func NewClient(base, caFile string) (*Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}
	return &Client{Base: base, HTTP: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

// APIError is a non-2xx answer.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

// Do sends a request and decodes a JSON answer into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return resp, &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if b, ok := out.(*[]byte); ok {
			*b = raw
			return resp, nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return resp, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp, nil
}

// Login logs in and keeps the token.
func (c *Client) Login(ctx context.Context, user, password string) error {
	body, _ := json.Marshal(map[string]string{"user": user, "password": password})
	var out struct {
		Token string `json:"token"`
	}
	if _, err := c.Do(ctx, "POST", "/api/v1/login", bytes.NewReader(body), "application/json", &out); err != nil {
		return err
	}
	c.Token = out.Token
	return nil
}

// Nodes lists nodes.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	var out struct {
		Nodes []api.Node `json:"nodes"`
	}
	_, err := c.Do(ctx, "GET", "/api/v1/nodes", nil, "", &out)
	return out.Nodes, err
}

// Cameras lists cameras.
func (c *Client) Cameras(ctx context.Context) ([]api.Camera, error) {
	var out struct {
		Cameras []api.Camera `json:"cameras"`
	}
	_, err := c.Do(ctx, "GET", "/api/v1/cameras", nil, "", &out)
	return out.Cameras, err
}

// Recordings fetches a camera's spans and gaps.
func (c *Client) Recordings(ctx context.Context, id string, from, to time.Time) (api.Recordings, error) {
	var out api.Recordings
	_, err := c.Do(ctx, "GET", "/api/v1/cameras/"+url.PathEscape(id)+"/recordings?"+rangeQuery(from, to), nil, "", &out)
	return out, err
}

// Media fetches footage as MP4 bytes.
func (c *Client) Media(ctx context.Context, id string, from, to time.Time) ([]byte, error) {
	var out []byte
	_, err := c.Do(ctx, "GET", "/api/v1/cameras/"+url.PathEscape(id)+"/media.mp4?"+rangeQuery(from, to), nil, "", &out)
	return out, err
}

// Whep posts an SDP offer; it returns the answer and the session URL.
func (c *Client) Whep(ctx context.Context, id, offer string) (answer, location string, err error) {
	var out []byte
	resp, err := c.Do(ctx, "POST", "/api/v1/cameras/"+url.PathEscape(id)+"/whep", bytes.NewReader([]byte(offer)), "application/sdp", &out)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("WHEP answered %d, want 201", resp.StatusCode)
	}
	return string(out), resp.Header.Get("Location"), nil
}

// Audit lists audit events (one node's when node is set), after an audit seq.
func (c *Client) Audit(ctx context.Context, node string, after uint64) ([]api.AuditRecord, error) {
	var out struct {
		Events []api.AuditRecord `json:"events"`
	}
	q := url.Values{"limit": {"10000"}}
	if node != "" {
		q.Set("node", node)
	}
	if after > 0 {
		q.Set("after", fmt.Sprint(after))
	}
	_, err := c.Do(ctx, "GET", "/api/v1/audit?"+q.Encode(), nil, "", &out)
	return out.Events, err
}

// Cluster fetches the hub's cluster view as a generic map.
func (c *Client) Cluster(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	_, err := c.Do(ctx, "GET", "/api/v1/cluster", nil, "", &out)
	return out, err
}

func rangeQuery(from, to time.Time) string {
	return url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}.Encode()
}

// waitReady polls the first reachable hub member until every node is online
// and every camera is known.
func waitReady(ctx context.Context, m *Manifest) error {
	var last error = errNotReady
	for {
		for _, h := range m.Hubs {
			if err := checkReady(ctx, h.URL, m); err != nil {
				last = err
				continue
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

func checkReady(ctx context.Context, base string, m *Manifest) error {
	c, err := NewClient(base, m.CAFile)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Login(cctx, m.Users[0].User, m.Users[0].Password); err != nil {
		return err
	}
	nodes, err := c.Nodes(cctx)
	if err != nil {
		return err
	}
	online := 0
	for _, n := range nodes {
		if n.Online {
			online++
		}
	}
	cams, err := c.Cameras(cctx)
	if err != nil {
		return err
	}
	if online < len(m.Nodes) || len(cams) < len(m.Cameras) {
		return fmt.Errorf("%w: %d/%d nodes online, %d/%d cameras known", errNotReady, online, len(m.Nodes), len(cams), len(m.Cameras))
	}
	return nil
}
