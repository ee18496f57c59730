package record

import (
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/node/media"
)

// The hand-off from the ingest to the writer is bounded: a writer that
// falls behind (a slow disk) makes the recorder drop frames until the next
// keyframe, never block the ingest or grow without limit; once the writer
// catches up, recording resumes at a keyframe and nothing else is lost.
func TestRecorderInboxIsBoundedAndResumesAtAKeyframe(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	st, err := Open(t.TempDir(), Options{Logger: quiet(), SyncInterval: time.Hour, QueueFrames: 40})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFeeder(t, st, "c0", base) // only for the clip
	r := newRecorder(st, "c1")        // its writer is not running yet: a stuck disk
	r.OnTrack(media.Track{Codec: media.CodecH264, SPS: f.clip.SPS, PPS: f.clip.PPS, Width: 640, Height: 360})
	f.rec = r

	push := func(n int) {
		frame := time.Second / 15
		for range n {
			au := f.clip.AUs[f.i%len(f.clip.AUs)]
			f.i++
			key := isIDR(au)
			done := make(chan struct{})
			go func() {
				r.OnAccessUnit(&media.AccessUnit{PTS: f.pts, Wall: base.Add(f.pts), Key: key, NALUs: au})
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(time.Second):
				t.Fatal("OnAccessUnit blocked on a stuck writer")
			}
			f.pts += frame
		}
	}
	push(60) // 4 GOPs; room for 40 frames
	r.mu.Lock()
	queued, dropping, dropped := r.frames, r.dropping, r.dropped
	r.mu.Unlock()
	if queued != 40 || !dropping || dropped != 20 {
		t.Fatalf("stuck writer: %d frames queued, dropping %v, %d dropped; want 40 queued, dropping, 20 dropped", queued, dropping, dropped)
	}

	st.wg.Add(1)
	go func() { defer st.wg.Done(); r.run() }() // the disk comes back
	defer r.shutdown()
	f.barrier()
	r.mu.Lock()
	queued = r.frames
	r.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d frames still queued after the writer caught up", queued)
	}
	// Frames up to the next keyframe are still dropped (they cannot be
	// decoded without the ones lost); from the keyframe on all are kept.
	for !isIDR(f.clip.AUs[f.i%len(f.clip.AUs)]) {
		push(1)
		r.mu.Lock()
		dropping = r.dropping
		r.mu.Unlock()
		if !dropping {
			t.Fatalf("frame %d (not a keyframe) accepted while waiting for a keyframe", f.i-1)
		}
	}
	push(1)
	r.mu.Lock()
	dropping, queued = r.dropping, r.frames
	r.mu.Unlock()
	if dropping || queued == 0 && !keyWritten(r) {
		t.Fatalf("the keyframe after the writer caught up was not taken (dropping %v)", dropping)
	}
}

// keyWritten reports whether the writer has a fragment under way (the
// keyframe went straight through to it).
func keyWritten(r *Recorder) bool {
	done := make(chan struct{})
	r.send(item{barrier: done})
	<-done
	return len(r.frag) > 0
}

func isIDR(au [][]byte) bool {
	for _, n := range au {
		if n[0]&0x1f == 5 {
			return true
		}
	}
	return false
}
