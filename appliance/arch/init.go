package arch

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrInitArch is wrapped by CheckInit's error for an init program built
// for another architecture.
var ErrInitArch = errors.New("the init program is for another architecture")

// CheckInit checks that the file at p can be the /init of an initramfs
// of architecture want: an ELF executable of want's machine, class and
// byte order, statically linked. want nil checks all but the
// architecture. It returns the file's size.
func CheckInit(p string, want *Arch) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("init program: %w", err)
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return 0, fmt.Errorf("init program %s: %w", p, err)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return 0, fmt.Errorf("init program %s is not an executable (ELF type %s)", p, ef.Type)
	}
	if want != nil && (ef.Machine != want.Machine || ef.Class != want.Class || ef.Data != want.Data) {
		what := elfString(ef.Machine, ef.Class, ef.Data)
		if a := ELFArch(ef.Machine, ef.Class, ef.Data); a != nil {
			what = a.Name + " (" + what + ")"
		}
		return 0, fmt.Errorf("init program %s: %w: it is %s, the appliance is %s (%s); make one with: %s",
			p, ErrInitArch, what, want.Name, want.ELFString(), want.BuildInitCommand(want.InitName()))
	}
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP {
			return 0, fmt.Errorf("init program %s is dynamically linked; the initrd needs a static binary: build it with CGO_ENABLED=0", p)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("init program %s: %w", p, err)
	}
	return fi.Size(), nil
}

// System directories that hold installed init programs, after the ones
// beside the running program.
var SystemInitDirs = []string{"/usr/local/lib/gosupermin", "/usr/lib/gosupermin"}

// InitCandidates are the files FindInit tries for a, in order, given the
// running program's path (exe, "" if unknown):
//
//  1. DIR/init-NAME, DIR the executable's directory (bin/ of a checkout
//     after `make build`);
//  2. DIR/../lib/gosupermin/init-NAME (an install: /usr/local/bin and
//     /usr/local/lib/gosupermin);
//  3. DIR/linux_NAME/gosupermin-init (where a cross `go install` of
//     cmd/gosupermin-init puts it, beside a `go install`ed gosupermin);
//  4. /usr/local/lib/gosupermin/init-NAME, /usr/lib/gosupermin/init-NAME.
//
// FindInit adds the running program itself for its own architecture.
func InitCandidates(a *Arch, exe string) []string {
	var out []string
	if exe != "" {
		dir := filepath.Dir(exe)
		out = append(out, filepath.Join(dir, a.InitName()),
			filepath.Join(filepath.Dir(dir), "lib", "gosupermin", a.InitName()),
			filepath.Join(dir, "linux_"+a.Name, "gosupermin-init"))
	}
	for _, d := range SystemInitDirs {
		out = append(out, filepath.Join(d, a.InitName()))
	}
	return out
}

// InitNotFoundError says where FindInit looked and how to make an init.
type InitNotFoundError struct {
	Arch  *Arch
	Tried []string
	// Self is why the running program cannot be the init, when it is of
	// the architecture wanted.
	Self string
}

func (e *InitNotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no init program for %s: looked for %s", e.Arch.Name, strings.Join(e.Tried, ", "))
	if e.Self != "" {
		fmt.Fprintf(&b, " (%s)", e.Self)
	}
	fmt.Fprintf(&b, ". Make one: `make build` in a checkout of gosupermin writes bin/%s (or there: %s); or %s puts it in GOPATH/bin/linux_%s/, where a go-installed gosupermin looks",
		e.Arch.InitName(), e.Arch.BuildInitCommand(e.Arch.InitName()), e.Arch.InstallInitCommand(), e.Arch.Name)
	return b.String()
}

// ErrNoInit is wrapped by FindInit's error when no init was found.
var ErrNoInit = errors.New("no init program")

func (e *InitNotFoundError) Unwrap() error { return ErrNoInit }

// FindInit finds the init program for a: the first of InitCandidates
// that exists, else, for the running program's own architecture, the
// running program exe itself if it is static (gosupermin's command is
// also the init, see appliance/initproc). A candidate that exists but is
// not a static ELF of a is an error, not skipped: it is a broken install.
func FindInit(a *Arch, exe string) (string, error) {
	tried := InitCandidates(a, exe)
	for _, p := range tried {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("init program: %w", err)
		}
		if fi.IsDir() {
			continue
		}
		if _, err := CheckInit(p, a); err != nil {
			return "", err
		}
		return p, nil
	}
	nf := &InitNotFoundError{Arch: a, Tried: tried}
	if exe != "" && a == Native() {
		_, err := CheckInit(exe, a)
		if err == nil {
			return exe, nil
		}
		nf.Self = fmt.Sprintf("this program cannot be it: %v", err)
	}
	return "", nf
}
