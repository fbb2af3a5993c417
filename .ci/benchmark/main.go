// Command benchmark prints gosupermin's figures side by side with
// supermin 5's, in one run, on the same input (libguestfs's supermin.d
// when installed): build times warm and cold, the --if-newer no-op, boot
// time to the appliance's /init under TCG, peak memory and output sizes,
// the peak memory of a build from a base image that expands to 1 GiB, and
// gosupermin's own round trip `gosupermin --run OUT -- true` of a small
// ext2 appliance under TCG, KVM (where it works) and --accel auto.
//
//	go run ./.ci/benchmark [-n 5] [-cold 3] [-boots 5] [-runs 3] [-dir /var/tmp] [-gosupermin bin/gosupermin] [SUPERMIN.D]
//
// Times are medians of interleaved pairs (supermin, then gosupermin, the
// order swapped every other pair); a ratio is supermin's median over ours.
// A build replaces the tool's own previous output, as libguestfs's
// rebuilds do, except in the "no previous output" row, where it starts
// from nothing, as a package build in a clean tree does.
package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

var (
	runs    = flag.Int("n", 5, "pairs of warm builds")
	colds   = flag.Int("cold", 3, "pairs of cold builds (page cache dropped before each; root only)")
	boots   = flag.Int("boots", 5, "pairs of boots")
	gosm    = flag.String("gosupermin", "bin/gosupermin", "the gosupermin binary")
	sm      = flag.String("supermin", "supermin", "supermin 5")
	noops   = flag.Int("noop", 20, "--if-newer runs averaged into one sample")
	runRuns = flag.Int("runs", 3, "gosupermin --run -- true round trips per accelerator")
	skipIt  = flag.String("skip", "", "comma-separated parts to skip: warm,noop,cold,boot,bomb,run")
	dir     = flag.String("dir", "/var/tmp", "where the outputs are written")
)

type result struct {
	wall time.Duration
	rss  int64 // KiB
}

// run runs argv and returns its wall time and peak RSS; it exits on failure.
func run(env []string, argv ...string) result {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchmark: %s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
		os.Exit(1)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return result{wall, ru.Maxrss}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func skip(part string) bool { return slices.Contains(strings.Split(*skipIt, ","), part) }

func dropCaches() bool {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0) == nil
}

type tool struct {
	name string
	bin  string
}

type rowFunc func(what string, a, b time.Duration, ms bool)

func main() {
	flag.Parse()
	sd := "/usr/lib/x86_64-linux-gnu/guestfs/supermin.d"
	if flag.NArg() > 0 {
		sd = flag.Arg(0)
	}
	work, err := os.MkdirTemp(*dir, "gosupermin-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(work)
	if abs, err := filepath.Abs(work); err == nil {
		work = abs
	}
	if _, err := os.Stat(sd); err != nil {
		sd = filepath.Join(work, "supermin.d")
		run(nil, *sm, "--prepare", "bash", "coreutils", "util-linux", "kmod", "e2fsprogs", "lvm2", "-o", sd)
	}
	gs, err := filepath.Abs(*gosm)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
	tools := []tool{{"supermin 5", *sm}, {"gosupermin", gs}}
	uname, _ := exec.Command("uname", "-r").Output()
	fmt.Printf("gosupermin benchmark, %s, %d cores, kernel %s", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), uname)
	fmt.Printf("input: %s (%d roots)\n", sd, countRoots(sd))
	fmt.Printf("outputs in: %s%s\n\n", work, journalNote(work))
	fmt.Printf("%-46s %12s %12s %8s\n", "", "supermin 5", "gosupermin", "ratio")
	row := func(what string, a, b time.Duration, ms bool) {
		f := func(d time.Duration) string {
			if ms {
				return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
			}
			return fmt.Sprintf("%.2f s", d.Seconds())
		}
		fmt.Printf("%-46s %12s %12s %7.2fx\n", what, f(a), f(b), float64(a)/float64(b))
	}
	// Each tool rebuilds over its own previous output, as libguestfs
	// does when a package changed; fresh builds remove it first, as a
	// build in a clean tree (a distribution's package build) starts.
	outOf := func(k int) string { return filepath.Join(work, fmt.Sprintf("out%d", k)) }
	build := func(k int, format string, cold, fresh bool) result {
		if fresh {
			os.RemoveAll(outOf(k))
		}
		if cold {
			dropCaches()
		}
		return run(nil, tools[k].bin, "--build", "-f", format, sd, "-o", outOf(k))
	}
	// pairs runs n interleaved pairs and gives the medians, the peak RSS
	// and the allocated size of each tool's output.
	pairs := func(format string, n int, cold, fresh bool) (t [2]time.Duration, rss, alloc [2]int64) {
		var times [2][]time.Duration
		for i := range n {
			for _, k := range []int{i % 2, 1 - i%2} {
				r := build(k, format, cold, fresh)
				times[k] = append(times[k], r.wall)
				rss[k] = max(rss[k], r.rss)
				alloc[k] = allocated(outOf(k), format)
			}
		}
		return [2]time.Duration{median(times[0]), median(times[1])}, rss, alloc
	}
	// Outputs of the other format are removed first: a tool does not
	// replace an ext2 output with a chroot.
	clean := func() { os.RemoveAll(outOf(0)); os.RemoveAll(outOf(1)) }
	var mem [][3]string
	if !skip("warm") {
		for _, format := range []string{"ext2", "chroot"} {
			clean()
			build(0, format, false, false) // the page cache warm, and a previous output
			build(1, format, false, false)
			t, rss, alloc := pairs(format, *runs, false, false)
			row(fmt.Sprintf("--build -f %s, warm (median of %d)", format, *runs), t[0], t[1], false)
			mem = append(mem, [3]string{"peak RSS, -f " + format, mib(rss[0]), mib(rss[1])},
				[3]string{"allocated output, -f " + format, mib(alloc[0]), mib(alloc[1])})
		}
		t, rss, _ := pairs("ext2", *runs, false, true)
		row(fmt.Sprintf("--build -f ext2, warm, no previous output (%d)", *runs), t[0], t[1], false)
		mem = append(mem, [3]string{"peak RSS, -f ext2, no previous output", mib(rss[0]), mib(rss[1])})
	}
	if !skip("noop") {
		noop(tools, sd, filepath.Join(work, "noop"), row)
	}
	if !skip("cold") {
		if os.Geteuid() != 0 || !dropCaches() {
			fmt.Println("cold builds: skipped (dropping the page cache needs root)")
		} else {
			for _, format := range []string{"ext2", "chroot"} {
				clean()
				build(0, format, false, false)
				build(1, format, false, false)
				t, _, _ := pairs(format, *colds, true, false)
				row(fmt.Sprintf("--build -f %s, cold (median of %d)", format, *colds), t[0], t[1], false)
			}
		}
	}
	if !skip("boot") {
		bootRows(tools, work, row)
	}
	fmt.Println()
	for _, m := range mem {
		fmt.Printf("%-46s %12s %12s\n", m[0], m[1], m[2])
	}
	if !skip("bomb") {
		bomb(tools[1], work)
	}
	if !skip("run") {
		runRows(tools[1], work)
	}
}

// runRows times `gosupermin --run OUT -- true` of a small ext2 appliance:
// boot, the command, its status back, the machine stopped. The median of
// -runs round trips for each accelerator.
func runRows(t tool, work string) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil || runtime.GOARCH != "amd64" {
		fmt.Println("--run: skipped (needs qemu-system-x86_64 on amd64)")
		return
	}
	sd := filepath.Join(work, "run.d")
	run(nil, t.bin, "--prepare", "bash", "coreutils", "dash", "-o", sd)
	out := filepath.Join(work, "run-ext2")
	run(nil, t.bin, "--build", "-f", "ext2", "--size", "1G", sd, "-o", out)
	for _, accel := range []string{"tcg", "kvm", "auto"} {
		var times []time.Duration
		note := ""
		for range *runRuns {
			// A bound: on some machines qemu hangs under KVM.
			cmd := exec.Command(t.bin, "--run", out, "--accel", accel, "--timeout", "60", "--", "true")
			cmd.Dir = work
			var stderr strings.Builder
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			if err != nil {
				note = fmt.Sprintf("fails here: %v %s", err, strings.TrimSpace(stderr.String()))
				break
			}
			times = append(times, time.Since(start))
			if strings.Contains(stderr.String(), "KVM does not work") {
				note = "(KVM fell back to TCG)"
			}
		}
		what := fmt.Sprintf("--run OUT -- true, ext2, --accel %s", accel)
		if len(times) == 0 {
			fmt.Printf("%-46s %s\n", what, note)
			continue
		}
		fmt.Printf("%-46s %12s %12.2f s  median of %d %s\n", what, "", median(times).Seconds(), len(times), note)
	}
}

// noop times --if-newer on an output that is up to date, each sample the
// mean of several runs: one is a few milliseconds.
func noop(tools []tool, sd, out string, row rowFunc) {
	var times [2][]time.Duration
	for k, t := range tools {
		os.RemoveAll(out + fmt.Sprint(k))
		run(nil, t.bin, "--build", "-f", "ext2", sd, "-o", out+fmt.Sprint(k))
	}
	for i := range *runs {
		for _, k := range []int{i % 2, 1 - i%2} {
			start := time.Now()
			for range *noops {
				run(nil, tools[k].bin, "--build", "--if-newer", "-f", "ext2", sd, "-o", out+fmt.Sprint(k))
			}
			times[k] = append(times[k], time.Since(start)/time.Duration(*noops))
		}
	}
	row(fmt.Sprintf("--build --if-newer, up to date (mean of %d)", *noops), median(times[0]), median(times[1]), true)
	os.RemoveAll(out + "0")
	os.RemoveAll(out + "1")
}

// journalNote warns when dir is on an ext4 without a journal: there the
// kernel looks for a recently deleted inode to reuse on every create
// (recently_deleted in fs/ext4/ialloc.c), so for half a minute after an
// output is removed, creating the next one's files costs several times
// more. Chroot builds, which create thousands of files back to back, show
// it most.
func journalNote(dir string) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	best, fstype, dev := "", "", ""
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		mp := f[4]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, fstype, dev = mp, f[sep+1], f[sep+2]
		}
	}
	if fstype != "ext4" {
		return " (" + fstype + ")"
	}
	journals, _ := filepath.Glob("/proc/fs/jbd2/" + filepath.Base(dev) + "-*")
	if len(journals) > 0 {
		return " (ext4)"
	}
	return " (ext4 without a journal: creating files right after a tree is removed is slow there; give -dir on a journaled file system for figures like a usual machine's)"
}

func mib(kib int64) string { return fmt.Sprintf("%d MiB", kib>>10) }

// allocated is the disk space of the output in KiB: the ext2 image's
// blocks, or the whole chroot tree's.
func allocated(out, format string) int64 {
	var total int64
	filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err == nil && (format == "chroot" || filepath.Base(p) == "root") {
			total += fi.Sys().(*syscall.Stat_t).Blocks / 2
		}
		return nil
	})
	return total
}

func countRoots(sd string) int {
	n := 0
	filepath.Walk(sd, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(p)
		if len(data) > 0 && (data[0] >= 'a' && data[0] <= 'z' || data[0] >= '0' && data[0] <= '9') {
			n += strings.Count(string(data), "\n")
		}
		return nil
	})
	return n
}

// bootInit is the small appliance's /init: it says it runs, and stops.
const bootInit = "#!/bin/sh\nmount -t proc proc /proc\necho BENCH-INIT-REACHED\necho o > /proc/sysrq-trigger\nsleep 30\n"

// bootRows builds a small appliance with each tool from one supermin.d and
// boots each in turn under TCG, timing qemu's start to the appliance's
// /init's first line.
func bootRows(tools []tool, work string, row rowFunc) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil || runtime.GOARCH != "amd64" {
		fmt.Println("boot: skipped (needs qemu-system-x86_64 on amd64)")
		return
	}
	sd := filepath.Join(work, "boot.d")
	run(nil, tools[0].bin, "--prepare", "bash", "coreutils", "util-linux", "mount", "dash", "-o", sd)
	if err := writeTarGz(filepath.Join(sd, "init.tar.gz"), "init", []byte(bootInit)); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
	var outs []string
	for k, t := range tools {
		out := filepath.Join(work, fmt.Sprintf("boot%d", k))
		run(nil, t.bin, "--build", "-f", "ext2", sd, "-o", out)
		outs = append(outs, out)
	}
	var times [2][]time.Duration
	for i := range *boots {
		for _, k := range []int{i % 2, 1 - i%2} {
			d, err := bootTime(qemu, outs[k])
			if err != nil {
				fmt.Printf("boot of %s's appliance: %v\n", tools[k].name, err)
				return
			}
			times[k] = append(times[k], d)
		}
	}
	row(fmt.Sprintf("boot to /init, ext2, TCG (median of %d)", *boots), median(times[0]), median(times[1]), false)
}

func bootTime(qemu, out string) (time.Duration, error) {
	cmd := exec.Command(qemu, "-accel", "tcg", "-m", "1024", "-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-kernel", filepath.Join(out, "kernel"), "-initrd", filepath.Join(out, "initrd"),
		"-drive", "file="+filepath.Join(out, "root")+",format=raw,if=virtio,snapshot=on",
		"-append", "console=ttyS0 root=/dev/vda quiet panic=-1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Process.Kill()
	found := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "BENCH-INIT-REACHED") {
				found <- time.Since(start)
				io.Copy(io.Discard, stdout)
				return
			}
		}
		close(found)
	}()
	select {
	case d, ok := <-found:
		if !ok {
			return 0, fmt.Errorf("qemu ended without the appliance's marker")
		}
		cmd.Wait()
		return d, nil
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("no marker after 5 minutes")
	}
}

// bomb builds from a base image of 1 GiB of zeros in one MiB of gzip, and
// prints the build's peak memory.
func bomb(t tool, work string) {
	sd := filepath.Join(work, "bomb.d")
	os.MkdirAll(sd, 0o755)
	os.WriteFile(filepath.Join(sd, "packages"), []byte("base-files\n"), 0o644)
	p := filepath.Join(sd, "bomb.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		return
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "./bomb", Mode: 0o644, Size: 1 << 30, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
	zero := make([]byte, 1<<20)
	for range 1 << 10 {
		tw.Write(zero)
	}
	tw.Close()
	zw.Close()
	f.Close()
	fi, _ := os.Stat(p)
	r := run(nil, t.bin, "--build", "-f", "chroot", sd, "-o", filepath.Join(work, "bomb-out"))
	fmt.Printf("%-46s %12s %12s\n", fmt.Sprintf("peak RSS, a %d KiB base image -> 1 GiB", fi.Size()>>10), "", mib(r.rss))
}

func writeTarGz(p, name string, data []byte) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
	tw.Write(data)
	tw.Close()
	zw.Close()
	return f.Close()
}
