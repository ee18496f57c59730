// Package yamlconf reads a YAML configuration file strictly: an unknown key
// is an error naming it, so a typo never silently falls back to a default.
package yamlconf

import (
	"bytes"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Load decodes the file at path into v. kind names the file in errors
// ("hub config", "node config").
func Load(kind, path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s %s: %w", kind, path, err)
	}
	return nil
}
