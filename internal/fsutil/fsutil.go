// Package fsutil writes small files durably.
package fsutil

import "os"

// WriteSynced writes data to path and fsyncs it before closing.
func WriteSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteAtomic replaces path with data: written and synced beside it, then
// renamed over it, so a reader sees the old file or the new one, whole.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := WriteSynced(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
