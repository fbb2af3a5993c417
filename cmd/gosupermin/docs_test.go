package main

import (
	"bytes"
	goflag "flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// update regenerates the committed documentation: make man runs
// go test ./cmd/gosupermin -run TestGeneratedDocs -update.
var update = goflag.Bool("update", false, "rewrite docs/gosupermin.1 and docs/gosupermin.bash")

var generated = map[string]func() string{
	"../../docs/gosupermin.1":    manPage,
	"../../docs/gosupermin.bash": bashCompletion,
}

// The committed man page and completion are what the tables make now.
func TestGeneratedDocs(t *testing.T) {
	for file, gen := range generated {
		want := gen()
		if *update {
			if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (make man writes it)", err)
		}
		if string(got) != want {
			t.Errorf("%s is stale: run make man and commit it", file)
		}
	}
}

// visibleOptions are the option table's names as the documentation
// shows them.
func visibleOptions(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, o := range options {
		var doc *optionDoc
		for i := range optionDocs {
			if optionDocs[i].name == o.names[0] {
				doc = &optionDocs[i]
			}
		}
		if doc == nil {
			t.Errorf("option %s has no entry in optionDocs (docs.go)", o.names[0])
			continue
		}
		if (doc.arg != "") != o.arg {
			t.Errorf("option %s: optionDocs says argument %q, the option table %v", o.names[0], doc.arg, o.arg)
		}
		if !doc.hidden {
			if doc.help == "" {
				t.Errorf("option %s has no help", o.names[0])
			}
			out = append(out, doc.names()...)
		}
	}
	if len(optionDocs) != len(options) {
		t.Errorf("%d options documented, %d in the table", len(optionDocs), len(options))
	}
	slices.Sort(out)
	return out
}

// optionRE finds option names at the start of --help's lines and of the
// man page's .TP tags.
var (
	helpOptionRE = regexp.MustCompile(`(?m)^  (-[-a-zA-Z0-9]+(?:, -[-a-zA-Z0-9]+)*)`)
	manOptionRE  = regexp.MustCompile(`(?m)^\.TP\n((?:\\fB\\-[^\n]*))$`)
	manNameRE    = regexp.MustCompile(`\\fB((?:\\-)+[a-zA-Z0-9\\-]+)\\fR`)
)

// --help, the man page and the option table list the same options, and
// the environment variables that readEnv reads are the documented ones.
func TestDocsListTheOptions(t *testing.T) {
	want := visibleOptions(t)
	var help []string
	for _, m := range helpOptionRE.FindAllStringSubmatch(usage(), -1) {
		help = append(help, strings.Split(m[1], ", ")...)
	}
	slices.Sort(help)
	var man []string
	for _, m := range manOptionRE.FindAllStringSubmatch(manPage(), -1) {
		for _, n := range manNameRE.FindAllStringSubmatch(m[1], -1) {
			man = append(man, strings.ReplaceAll(n[1], `\-`, "-"))
		}
	}
	slices.Sort(man)
	if !slices.Equal(help, want) {
		t.Errorf("--help lists\n%q\nthe option table has\n%q", help, want)
	}
	if !slices.Equal(man, want) {
		t.Errorf("the man page lists\n%q\nthe option table has\n%q", man, want)
	}

	var read []string
	readEnv(func(k string) (string, bool) { read = append(read, k); return "", false })
	var documented []string
	for _, e := range envDocs {
		documented = append(documented, e.name)
		if !strings.Contains(usage(), "\n  "+e.name+" ") || !strings.Contains(manPage(), `\fB`+strings.ReplaceAll(e.name, "-", `\-`)+`\fR`) {
			t.Errorf("%s is not in --help and the man page", e.name)
		}
	}
	slices.Sort(read)
	slices.Sort(documented)
	// SUPERMIN_KERNEL_VERSION is read only with SUPERMIN_KERNEL.
	read = append(read, "SUPERMIN_KERNEL_VERSION")
	slices.Sort(read)
	if !slices.Equal(slices.Compact(read), documented) {
		t.Errorf("readEnv reads %q, envDocs documents %q", read, documented)
	}
}

// groff reads the man page without a warning.
func TestManPageFormats(t *testing.T) {
	_, err := exec.LookPath("groff")
	need(t, err == nil, "groff is not installed (groff-base)")
	cmd := exec.Command("groff", "-man", "-ww", "-z", "-t")
	cmd.Stdin = strings.NewReader(manPage())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("groff: %v\n%s", err, stderr.String())
	}
	out, err := exec.Command("groff", "-man", "-Tutf8", "-P-cbou", filepath.Join("..", "..", "docs", "gosupermin.1")).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"--sbom FILE", "EXIT STATUS", "SOURCE_DATE_EPOCH", "THE SUPERMIN.D FORMAT"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("the formatted man page has no %q", s)
		}
	}
}

// The completion completes options, the words of -f and --compress, and
// directories for -o.
func TestBashCompletion(t *testing.T) {
	_, err := exec.LookPath("bash")
	need(t, err == nil, "bash is not installed")
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "appliance.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "apple.txt"), nil, 0o644)
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"gosupermin", "--sb"}, "--sbom"},
		{[]string{"gosupermin", "--build", "-f", "e"}, "ext2"},
		{[]string{"gosupermin", "--format", "c"}, "chroot cpio"},
		{[]string{"gosupermin", "--compress", ""}, "zstd gzip none"},
		{[]string{"gosupermin", "-o", "ap"}, "appliance.d"},
		{[]string{"gosupermin", "--sbom", "ap"}, "apple.txt appliance.d"},
		{[]string{"gosupermin", "--size", ""}, ""},
	} {
		script := "source ../../docs/gosupermin.bash\nCOMP_WORDS=("
		for _, w := range c.words {
			script += " '" + w + "'"
		}
		script += ")\nCOMP_CWORD=" + strconv.Itoa(len(c.words)-1) +
			"\ncd " + dir + "\n_gosupermin\nprintf '%s\\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '\n"
		out, err := exec.Command("bash", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.words, err, out)
		}
		got := strings.Fields(string(out))
		want := strings.Fields(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("completing %q: %q, want %q", c.words, got, want)
		}
	}
}
