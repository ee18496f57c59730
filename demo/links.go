package demo

// Every node reaches every hub member through a fault proxy in the demo
// process, so a WAN outage can be played on the demo (and by the fault
// tests): `ronda demo link n1 down` cuts n1 off the hub, `up` heals it.

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ronda-jakarta/ronda/internal/faultproxy"
)

type links struct {
	mu     sync.Mutex
	byNode map[string][]memberLink
	token  string
	srv    *http.Server
	ln     net.Listener
}

// memberLink is a node's link to one hub member.
type memberLink struct {
	member string
	p      *faultproxy.Proxy
}

func newLinks() *links {
	return &links{byNode: map[string][]memberLink{}, token: randomString(24)}
}

// proxy makes the node's link to one hub member (name, gRPC address) and
// returns its address.
func (l *links) proxy(node, member, addr string) (string, error) {
	p, err := faultproxy.New("127.0.0.1:0", addr)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	l.byNode[node] = append(l.byNode[node], memberLink{member: member, p: p})
	l.mu.Unlock()
	return p.Addr(), nil
}

// LinkState is a node's links as GET /links shows them.
type LinkState struct {
	Node  string        `json:"node"`
	Mode  string        `json:"mode"`
	Delay time.Duration `json:"delay"`
	Links int           `json:"links"`
}

func (l *links) states() []LinkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LinkState
	for n, ps := range l.byNode {
		st := ps[0].p.State()
		out = append(out, LinkState{Node: n, Mode: string(st.Mode), Delay: st.Delay, Links: len(ps)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// serve starts the control endpoint on loopback: GET /links, and
// POST /links/{node}?mode=up|down|reset|half-open[&delay=200ms][&member=h1]
// (member: only the link to that hub member), with the
// token from demo.json as a bearer token.
func (l *links) serve() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(tok), []byte(l.token)) != 1 {
				http.Error(w, "send the control_token from demo.json as 'Authorization: Bearer TOKEN'", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /links", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(l.states())
	}))
	mux.HandleFunc("POST /links/{node}", auth(func(w http.ResponseWriter, r *http.Request) {
		node := r.PathValue("node")
		mode, err := faultproxy.ParseMode(r.URL.Query().Get("mode"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var delay time.Duration
		if d := r.URL.Query().Get("delay"); d != "" {
			if delay, err = time.ParseDuration(d); err != nil || delay < 0 {
				http.Error(w, fmt.Sprintf("delay %q: want a duration like 200ms", d), http.StatusBadRequest)
				return
			}
		}
		member := r.URL.Query().Get("member")
		l.mu.Lock()
		ps, ok := l.byNode[node]
		l.mu.Unlock()
		if !ok {
			http.Error(w, fmt.Sprintf("no node %q in this demo", node), http.StatusNotFound)
			return
		}
		n := 0
		for _, ml := range ps {
			if member == "" || ml.member == member {
				ml.p.Set(faultproxy.State{Mode: mode, Delay: delay})
				n++
			}
		}
		if n == 0 {
			http.Error(w, fmt.Sprintf("node %q has no link to hub member %q", node, member), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(LinkState{Node: node, Mode: string(mode), Delay: delay, Links: n})
	}))
	l.ln = ln
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go l.srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

func (l *links) close() {
	if l.srv != nil {
		l.srv.Close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ps := range l.byNode {
		for _, ml := range ps {
			ml.p.Close()
		}
	}
}

// SetLink changes a running demo's links for one node (used by `ronda demo
// link` and the fault tests).
func SetLink(ctx context.Context, dir, node, mode string, delay time.Duration) (LinkState, error) {
	return SetMemberLink(ctx, dir, node, "", mode, delay)
}

// SetMemberLink is SetLink for the node's link to one hub member (all of
// them when member is empty).
func SetMemberLink(ctx context.Context, dir, node, member, mode string, delay time.Duration) (LinkState, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		return LinkState{}, fmt.Errorf("read %s/demo.json (is the demo running?): %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return LinkState{}, err
	}
	u := fmt.Sprintf("%s/links/%s?mode=%s", m.Control, node, mode)
	if delay > 0 {
		u += "&delay=" + delay.String()
	}
	if member != "" {
		u += "&member=" + member
	}
	req, err := http.NewRequestWithContext(ctx, "POST", u, nil)
	if err != nil {
		return LinkState{}, err
	}
	req.Header.Set("Authorization", "Bearer "+m.ControlToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return LinkState{}, fmt.Errorf("demo control at %s: %w", m.Control, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP %d: ", resp.StatusCode)
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return LinkState{}, fmt.Errorf("demo link %s %s: %s", node, mode, strings.TrimSpace(b.String()))
	}
	var st LinkState
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
