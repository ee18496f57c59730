package peer_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/hub/evidence"
	"github.com/ronda-jakarta/ronda/hub/peer"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

func TestFetchBlobStreamsChunksFromAnOffset(t *testing.T) {
	ev, err := evidence.Open(filepath.Join(t.TempDir(), "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640,000 bytes
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	src := filepath.Join(t.TempDir(), "f")
	os.WriteFile(src, data, 0o640)
	if err := ev.Put(t.Context(), src, sha, int64(len(data))); err != nil {
		t.Fatal(err)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	rpcv1.RegisterHubPeerServer(gs, peer.NewServer(nil).WithBlobs(ev))
	go gs.Serve(lis)
	defer gs.Stop()
	fwd := peer.NewForwarder(func(id string) (string, bool) { return lis.Addr().String(), id == "h1" }, nil)
	defer fwd.Close()

	fetch := func(sha string, off int64) ([]byte, error) {
		s, err := fwd.FetchBlob(t.Context(), "h1", sha, off)
		if err != nil {
			return nil, err
		}
		var got []byte
		for {
			c, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			if err != nil {
				return got, err
			}
			if len(c.GetData()) > peer.BlobChunkSize || c.GetOffset() != off+int64(len(got)) {
				t.Fatalf("chunk of %d bytes at %d after %d bytes from %d", len(c.GetData()), c.GetOffset(), len(got), off)
			}
			got = append(got, c.GetData()...)
		}
	}
	got, err := fetch(sha, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("whole blob: %d bytes, %v", len(got), err)
	}
	got, err = fetch(sha, 300_001)
	if err != nil || !bytes.Equal(got, data[300_001:]) {
		t.Fatalf("from an offset: %d bytes, %v", len(got), err)
	}
	if got, err := fetch(sha, int64(len(data))); err != nil || len(got) != 0 {
		t.Fatalf("at the end: %d bytes, %v", len(got), err)
	}
	for _, tc := range []struct {
		name string
		sha  string
		off  int64
		code codes.Code
	}{
		{"past the end", sha, int64(len(data)) + 1, codes.OutOfRange},
		{"not stored", strings.Repeat("0", 64), 0, codes.NotFound},
		{"bad name", "../../etc/passwd", 0, codes.InvalidArgument},
	} {
		if _, err := fetch(tc.sha, tc.off); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}

	// A member without an evidence store says so.
	bare := grpc.NewServer()
	rpcv1.RegisterHubPeerServer(bare, peer.NewServer(nil))
	lis2, _ := net.Listen("tcp", "127.0.0.1:0")
	go bare.Serve(lis2)
	defer bare.Stop()
	fwd2 := peer.NewForwarder(func(string) (string, bool) { return lis2.Addr().String(), true }, nil)
	defer fwd2.Close()
	s, err := fwd2.FetchBlob(t.Context(), "h2", sha, 0)
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("member without a store: %v", err)
	}
}
