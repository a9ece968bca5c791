package state

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to a temporary file next to path and renames
// it into place, so that a reader (Prometheus reloading its rules, Grafana
// reading dashboards, a user opening a report) never sees half a file.
// The file is synced before the rename and the directory after it, so
// that after a crash path holds the old data or the new, never an empty
// file: checkpoints (a backfill's import and reading) are written with it.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
