package supermin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/kernel"
)

// debianKernels downloads Debian 12's kernel of each architecture with
// apt-get (a configuration of its own in dir: nothing of the machine's
// apt state is used or changed) and unpacks each into dir/ARCH as a
// tree: the kernel, its modules with a modules.dep (depmod, run here: the
// kernel's postinst would run it), and a dpkg database of that
// architecture with one empty package, dpkg.
func debianKernels(t *testing.T, dir string, arches ...*arch.Arch) map[*arch.Arch]string {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "depmod"} {
		if _, err := exec.LookPath(tool); err != nil {
			bootSkip(t, "%s is not installed", tool)
		}
	}
	var names []string
	for _, a := range arches {
		names = append(names, `"`+a.Debian+`";`)
	}
	for _, d := range []string{"lists/partial", "cache/archives/partial", "debs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "apt.conf")
	sources := filepath.Join(dir, "sources.list")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(sources, "deb http://deb.debian.org/debian bookworm main\n")
	write(conf, fmt.Sprintf(`APT::Architecture "%s";
APT::Architectures { %s };
Dir::State::Lists "%s";
Dir::Cache "%s";
Dir::State::status "/dev/null";
Dir::Etc::sourcelist "%s";
Dir::Etc::sourceparts "/nonexistent";
Acquire::Languages "none";
`, arches[0].Debian, strings.Join(names, " "), filepath.Join(dir, "lists"), filepath.Join(dir, "cache"), sources))
	apt := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = filepath.Join(dir, "debs")
		cmd.Env = append(os.Environ(), "APT_CONFIG="+conf)
		out, err := cmd.CombinedOutput()
		if err != nil {
			bootSkip(t, "%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	apt("apt-get", "update", "-q")
	trees := map[*arch.Arch]string{}
	for _, a := range arches {
		meta := a.DebianKernelPackage() + ":" + a.Debian
		// The metapackage depends on the versioned kernel package.
		var pkg string
		for _, l := range strings.Split(apt("apt-cache", "depends", meta), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
				pkg = strings.TrimSuffix(f[1], ":"+a.Debian)
			}
		}
		if pkg == "" {
			t.Fatalf("apt-cache depends %s: no linux-image dependency", meta)
		}
		apt("apt-get", "download", "-q", pkg+":"+a.Debian)
		debs, _ := filepath.Glob(filepath.Join(dir, "debs", pkg+"_*.deb"))
		if len(debs) != 1 {
			t.Fatalf("downloaded %v for %s", debs, pkg)
		}
		root := filepath.Join(dir, a.Name)
		run(t, dir, nil, "dpkg-deb", "-x", debs[0], root)
		release := strings.TrimPrefix(pkg, "linux-image-")
		run(t, dir, nil, "depmod", "-b", root, release)
		status := fmt.Sprintf("Package: dpkg\nStatus: install ok installed\nVersion: 1.21\nArchitecture: %s\n", a.Debian)
		if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg/info"), 0o755); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(root, "var/lib/dpkg/status"), status)
		write(filepath.Join(root, "var/lib/dpkg/info/dpkg.list"), "")
		trees[a] = root
	}
	return trees
}

// TestBootForeignKernels boots ppc64le and s390x appliances made from
// Debian 12's real kernels of those architectures, under their qemu
// (TCG) as appliance/arch says to start it: ext2 (the root disk found
// through the initrd's modules and mounted) and cpio. The appliances hold
// no program of their own (there is no tree of those architectures here,
// only the kernel package), so our init, once it has reached its last
// step, says that there is no init to run: that line is the marker. The
// table's kernel format, console, machine, disk device and initrd
// modules are thus checked on real kernels.
func TestBootForeignKernels(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Debian kernels and boots them under TCG: not in -short mode")
	}
	var arches []*arch.Arch
	for _, name := range []string{"ppc64le", "s390x"} {
		a, _ := arch.Lookup(name)
		if _, err := exec.LookPath(a.Qemu.Binary); err != nil {
			bootSkip(t, "%s is not installed (apt-get install qemu-system-ppc qemu-system-misc)", a.Qemu.Binary)
		}
		arches = append(arches, a)
	}
	bin := buildGosupermin(t)
	dir := t.TempDir()
	trees := debianKernels(t, dir, arches...)
	sd := filepath.Join(dir, "supermin.d")
	os.Mkdir(sd, 0o755)
	if err := os.WriteFile(filepath.Join(sd, "packages"), []byte("dpkg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range arches {
		root := trees[a]
		k, err := kernel.Find(kernel.Options{Root: root, HostCPU: a.Uname})
		if err != nil {
			t.Fatal(err)
		}
		if name, format, err := k.Arch(); name != a.Name || format != a.Image || err != nil {
			t.Errorf("%s: %q, %v, %v; want %s, %v", k.Image.Path, name, format, err, a.Name, a.Image)
		}
		init := crossInit(t, a.Name)
		for _, f := range []string{"ext2", "cpio"} {
			out := filepath.Join(dir, a.Name+"-"+f)
			gosupermin(t, bin, nil, "--build", "-f", f, "--size", "1G", "--root", root, "--init", init, sd, "-o", out)
			b := qemuBoot{Arch: a, Kernel: filepath.Join(out, "kernel"), Initrd: filepath.Join(out, "initrd"),
				Marker: "gosupermin init: error: the appliance has no init"}
			want := []string{"gosupermin init: starting (" + f + " appliance, kernel " + k.Version + ")"}
			if f == "ext2" {
				b.Disks, b.Append = []string{filepath.Join(out, "root")}, "root=/dev/"+a.Qemu.DiskName
				want = append(want, "gosupermin init: mounted /dev/"+a.Qemu.DiskName+" (ext2) on /root")
			}
			t.Run(a.Name+" "+f, func(t *testing.T) {
				t.Parallel()
				res := bootQemu(t, a.Qemu.Binary, b)
				want = append(want, b.Marker)
				for _, w := range want {
					if !strings.Contains(res.Console, w) {
						t.Errorf("no %q on the console (timed out: %v)", w, res.TimedOut)
					}
				}
				if t.Failed() {
					t.Logf("console:\n%s", res.Console)
				}
				t.Logf("qemu start to the init's last step: %.1f s", res.MarkerAt.Seconds())
			})
		}
	}
}
