// Package hostile helps the backends' tests build hostile trees: files
// outside the tree whose content must never come back, symlinks that
// point at them, FIFOs where database files should be.
package hostile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// Secret is in every canary file and nowhere else.
const Secret = "canary-secret"

// Tree is the view of root that the build reads databases through.
func Tree(t testing.TB, root string) fs.FS {
	t.Helper()
	r, err := rootfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r.FS()
}

// Canary writes files outside any tree, named by their paths relative to
// the directory it returns.
func Canary(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if !strings.Contains(data, Secret) {
			t.Fatalf("canary %s does not hold the secret", name)
		}
		Write(t, dir, name, data)
	}
	return dir
}

// Write writes root/name, making its directories.
func Write(t testing.TB, root, name, data string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Link makes root/name a symlink to target, replacing what is there.
func Link(t testing.TB, root, name, target string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// Targets are the two ways a link of the tree at name leads to the host
// file host: an absolute target, and one that climbs with "..".
func Targets(name, host string) map[string]string {
	up := strings.Repeat("../", strings.Count(name, "/")+16)
	return map[string]string{"absolute": host, "relative": up + strings.TrimPrefix(host, "/")}
}

// Fifo makes root/name a FIFO, replacing what is there.
func Fifo(t testing.TB, root, name string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

// NoHang runs f and fails the test if it has not returned after a time
// no working reader needs: a reader that opens a FIFO blocks forever.
func NoHang(t testing.TB, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("hung: a FIFO of the tree was opened for reading")
	}
}

// NoSecret fails the test if the secret is anywhere in values (strings,
// byte slices, errors, and what structs, slices, maps and pointers hold).
func NoSecret(t testing.TB, what string, values ...any) {
	t.Helper()
	for _, v := range values {
		if s := find(reflect.ValueOf(v), 0); s != "" {
			t.Errorf("%s: the canary's content came back: %q", what, s)
		}
	}
}

func find(v reflect.Value, depth int) string {
	if !v.IsValid() || depth > 20 {
		return ""
	}
	if v.CanInterface() {
		if err, ok := v.Interface().(error); ok && v.Kind() != reflect.Struct {
			if !v.IsNil() && strings.Contains(err.Error(), Secret) {
				return err.Error()
			}
			return ""
		}
	}
	switch v.Kind() {
	case reflect.String:
		if strings.Contains(v.String(), Secret) {
			return v.String()
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			if b := fmt.Sprintf("%s", v.Bytes()); strings.Contains(b, Secret) {
				return b
			}
			return ""
		}
		for i := 0; i < v.Len(); i++ {
			if s := find(v.Index(i), depth+1); s != "" {
				return s
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if s := find(it.Key(), depth+1) + find(it.Value(), depth+1); s != "" {
				return s
			}
		}
	case reflect.Pointer, reflect.Interface:
		return find(v.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if s := find(v.Field(i), depth+1); s != "" {
				return s
			}
		}
	}
	return ""
}

// Corrupt checks that err is a *backends.CorruptError naming file and
// with every one of names in its message, on one line.
func Corrupt(t testing.TB, err error, file string, names ...string) {
	t.Helper()
	var ce *backends.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a CorruptError", err)
	}
	if ce.File != file {
		t.Errorf("error names %q, want %q", ce.File, file)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not name %q", err, n)
		}
	}
	if strings.ContainsAny(err.Error(), "\n\x00") {
		t.Errorf("error %q spans lines or holds a NUL byte", err)
	}
}

// EachLink runs f in a subtest for each kind of Targets, without and
// with the tree's own files where the links lead.
func EachLink(t *testing.T, f func(t *testing.T, kind string, own bool)) {
	for _, kind := range []string{"absolute", "relative"} {
		for _, own := range []bool{false, true} {
			name := kind
			if own {
				name += " with the tree's own files"
			}
			t.Run(name, func(t *testing.T) { f(t, kind, own) })
		}
	}
}

// FailsNaming runs f under NoHang and checks that it fails with an error
// naming the host path want.
func FailsNaming(t testing.TB, want string, f func() error) {
	t.Helper()
	var err error
	NoHang(t, func() { err = f() })
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%v, want an error naming %s", err, want)
	}
}
