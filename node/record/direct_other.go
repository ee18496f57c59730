//go:build !linux

package record

const oDirect = 0
