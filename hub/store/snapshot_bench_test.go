package store

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type fileSink struct{ *os.File }

func (s fileSink) ID() string    { return "bench" }
func (s fileSink) Cancel() error { return s.File.Close() }

// copyDir copies every file of a directory: the baseline for what moving a
// member's state costs at least (bytes on disk, no framing, no checks).
func copyDir(b *testing.B, from, to string) int64 {
	var n int64
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		c, err := io.Copy(out, in)
		n += c
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkSnapshotRestore measures, at city scale (syntheticCity: 30,000
// cameras x 90 days), what raft does to bring a lagging member up and what
// `ronda hub backup`/`restore` do: stream a snapshot of the FSM to a file
// (fsynced), then restore it into a fresh member (verify, build a new Pebble
// directory, swap it in, rebuild the catalog index). Side by side, the
// baseline: copying the Pebble directory's files (fsynced) — the least any
// transfer of the state costs on this disk. Run with -benchtime 1x.
func BenchmarkSnapshotRestore(b *testing.B) {
	c := syntheticCity(b)
	f, err := openFSM(c.dir, testLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer f.close()
	work := b.TempDir()
	for b.Loop() {
		path := filepath.Join(work, "snap")
		out, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		sink := fileSink{out}
		if err := snap.Persist(sink); err != nil {
			b.Fatal(err)
		}
		snap.Release()
		st, _ := os.Stat(path)
		// Persist closes the sink; make the timing include the data on disk.
		if rf, err := os.Open(path); err == nil {
			rf.Sync()
			rf.Close()
		}
		persist := time.Since(t0)

		g, err := openFSM(filepath.Join(work, "member"), testLogger())
		if err != nil {
			b.Fatal(err)
		}
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := g.Restore(in); err != nil {
			b.Fatal(err)
		}
		restore := time.Since(t1)
		if g.appliedIndex() != f.appliedIndex() || len(g.cat.cams) != len(f.cat.cams) {
			b.Fatalf("restored member: applied %d (want %d), %d cameras indexed (want %d)", g.appliedIndex(), f.appliedIndex(), len(g.cat.cams), len(f.cat.cams))
		}
		g.close()

		t2 := time.Now()
		copied := copyDir(b, c.dir, filepath.Join(work, "copy"))
		baseline := time.Since(t2)

		b.ReportMetric(persist.Seconds(), "snapshot-s")
		b.ReportMetric(restore.Seconds(), "restore-s")
		b.ReportMetric(float64(st.Size())/(1<<20), "snapshot-MiB")
		b.ReportMetric(baseline.Seconds(), "dircopy-s")
		b.ReportMetric(float64(copied)/(1<<20), "pebble-MiB")
		b.Logf("snapshot %s (%.0f MiB) and restore %s, vs copying the Pebble files %s (%.0f MiB)",
			persist.Round(time.Millisecond), float64(st.Size())/(1<<20), restore.Round(time.Millisecond),
			baseline.Round(time.Millisecond), float64(copied)/(1<<20))
		os.RemoveAll(filepath.Join(work, "member"))
		os.RemoveAll(filepath.Join(work, "copy"))
	}
}
