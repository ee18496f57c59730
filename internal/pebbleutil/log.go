// Package pebbleutil holds the small helpers every Pebble database of ours
// shares: logging through log/slog and reading a key as a copy.
package pebbleutil

import (
	"fmt"
	"log/slog"
	"os"
)

// Logger adapts a *slog.Logger to pebble.Logger. Pebble's chatty recovery
// lines (WAL replay) go to debug; errors stay errors.
type Logger struct{ L *slog.Logger }

// NewLogger returns an adapter (nil logs to slog.Default()).
func NewLogger(l *slog.Logger) Logger {
	if l == nil {
		l = slog.Default()
	}
	return Logger{L: l.With("component", "pebble")}
}

// Infof implements pebble.Logger.
func (p Logger) Infof(format string, args ...any) { p.L.Debug(fmt.Sprintf(format, args...)) }

// Errorf implements pebble.Logger.
func (p Logger) Errorf(format string, args ...any) { p.L.Error(fmt.Sprintf(format, args...)) }

// Fatalf implements pebble.Logger: Pebble calls it on unrecoverable
// corruption; the process stops.
func (p Logger) Fatalf(format string, args ...any) {
	p.L.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}
