package peer

// HubPeer.FetchBlob: members copy evidence blobs from each other (the
// Replicator of hub/evidence calls it; this member serves its own copies).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// BlobChunkSize is the largest BlobChunk FetchBlob sends.
const BlobChunkSize = 256 << 10

// BlobSource is this member's evidence store as FetchBlob serves it
// (*evidence.Store). Open returns a blob's bytes and size; an error that
// says errors.Is(err, fs.ErrNotExist) is answered NotFound.
type BlobSource interface {
	Open(sha string) (io.ReadSeekCloser, int64, error)
	Has(sha string) bool
}

// WithBlobs sets the evidence store FetchBlob serves and returns srv.
func (srv *Server) WithBlobs(b BlobSource) *Server {
	srv.blobs = b
	return srv
}

// FetchBlob streams a blob this member holds from req.offset on, in chunks
// of at most BlobChunkSize.
func (srv *Server) FetchBlob(req *rondav1.FetchBlobRequest, stream grpc.ServerStreamingServer[rondav1.BlobChunk]) error {
	if srv.blobs == nil {
		return status.Error(codes.Unimplemented, "this member keeps no evidence store")
	}
	sha := req.GetSha256()
	if err := store.ValidBlobSHA256(sha); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if !srv.blobs.Has(sha) {
		return status.Errorf(codes.NotFound, "blob %s is not stored on this member", sha)
	}
	f, size, err := srv.blobs.Open(sha)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return status.Errorf(codes.NotFound, "blob %s is not stored on this member", sha)
		}
		return status.Errorf(codes.Internal, "opening blob %s: %v", sha, err)
	}
	defer f.Close()
	off := req.GetOffset()
	if off < 0 || off > size {
		return status.Errorf(codes.OutOfRange, "offset %d is outside blob %s of %d bytes", off, sha, size)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return status.Errorf(codes.Internal, "blob %s: %v", sha, err)
	}
	buf := make([]byte, BlobChunkSize)
	for off < size {
		n, err := io.ReadFull(f, buf[:min(int64(len(buf)), size-off)])
		if n > 0 {
			if err := stream.Send(&rondav1.BlobChunk{Offset: off, Data: buf[:n]}); err != nil {
				return err
			}
			off += int64(n)
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				// Shorter than when it was opened: the fetcher's hash check
				// refuses what it got; say why.
				return status.Errorf(codes.DataLoss, "blob %s ended at %d of %d bytes on this member", sha, off, size)
			}
			srv.log.Warn("HubPeer.FetchBlob: reading a blob failed", "blob", sha, "offset", off, "err", err)
			return status.Errorf(codes.Internal, "reading blob %s at %d: %v", sha, off, err)
		}
	}
	return nil
}

// FetchBlob opens a FetchBlob stream from a member's gRPC server. Cancel
// ctx to stop it.
func (f *Forwarder) FetchBlob(ctx context.Context, memberID, sha string, offset int64) (grpc.ServerStreamingClient[rondav1.BlobChunk], error) {
	conn, err := f.Member(memberID)
	if err != nil {
		return nil, err
	}
	s, err := rpcv1.NewHubPeerClient(conn).FetchBlob(ctx, &rondav1.FetchBlobRequest{Sha256: sha, Offset: offset})
	if err != nil {
		return nil, fmt.Errorf("HubPeer.FetchBlob on %s: %w", memberID, err)
	}
	return s, nil
}
