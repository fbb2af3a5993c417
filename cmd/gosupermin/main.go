// Command gosupermin builds supermin appliances: --prepare records package
// roots in a supermin.d, --build turns it into a chroot, ext2 or cpio appliance.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/ext2"
	"github.com/gosupermin/gosupermin/appliance/initproc"
	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/gosupermin/gosupermin/internal/outdir"
	"github.com/gosupermin/gosupermin/internal/rootfs"
	"github.com/gosupermin/gosupermin/supermin"
)

// Version is what --version prints; libguestfs's configure reads its
// second field and wants supermin >= 5.
const Version = "5.3.99"

func main() {
	if initproc.IsInit() { // the appliance's /init: see appliance/initproc
		initproc.Main()
	}
	if os.Getenv(removeEnv) == "1" {
		os.Exit(removeMoved(os.Args[1:]))
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		// Collect garbage before the heap doubles, so that the whole
		// build stays within what a small machine (or a build farm's
		// cgroup) gives it: a libguestfs ext2 build keeps ~50 MiB live
		// (24 MiB of it read ahead). A limit that close to the live heap
		// collects all the time: at 64 MiB a build spent half its user
		// time collecting (150 collections, against 16 at 80 MiB).
		debug.SetMemoryLimit(80 << 20)
	}
	os.Exit(profiled(func() int { return run(os.Args[1:], os.Stdout, os.Stderr) }))
}

// profiled runs a build with the profiles developers ask for by
// GOSUPERMIN_CPUPROFILE and GOSUPERMIN_MEMPROFILE (allocations); go tool
// pprof reads them.
func profiled(f func() int) int {
	if p := os.Getenv("GOSUPERMIN_CPUPROFILE"); p != "" {
		if out, err := os.Create(p); err == nil {
			_ = pprof.StartCPUProfile(out)
			defer func() { pprof.StopCPUProfile(); out.Close() }()
		}
	}
	if p := os.Getenv("GOSUPERMIN_MEMPROFILE"); p != "" {
		defer func() {
			if out, err := os.Create(p); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(out, 0)
				out.Close()
			}
		}()
	}
	return f()
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "gosupermin: %v\nRun 'gosupermin --help' for the options.\n", err)
		return exitUsage
	}
	switch {
	case c.help:
		fmt.Fprint(stdout, usage())
		return exitOK
	case c.version:
		fmt.Fprintf(stdout, "gosupermin %s (supermin 5 compatible)\n", Version)
		return exitOK
	case c.listDrivers:
		root := c.root
		if root == "" {
			root = "/"
		}
		tree, err := rootfs.Open(root)
		if err != nil {
			fmt.Fprintf(stderr, "gosupermin: %v\n", err)
			return exitError
		}
		defer tree.Close()
		for _, d := range supermin.Drivers {
			state := "not-detected"
			if d.Detect(tree.FS()) {
				state = "detected"
			}
			fmt.Fprintf(stdout, "%s\t%s\n", d.Name, state)
		}
		return exitOK
	}
	if err := c.check(); err != nil {
		fmt.Fprintf(stderr, "gosupermin: %v\nRun 'gosupermin --help' for the options.\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if c.mode == "run" {
		return c.runAppliance(ctx, stdout, stderr)
	}
	if err := c.exec(ctx, stderr); err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted: the previous output, if any, is unchanged")
		}
		fmt.Fprintf(stderr, "gosupermin: %v\n", err)
		return exitError
	}
	return exitOK
}

func (c *cli) check() error {
	if c.mode == "run" {
		return c.checkRun()
	}
	switch {
	case len(c.runUsed) > 0:
		return usageError{c.runUsed[0] + " needs --run"}
	case c.mode == "":
		return usageError{"use --prepare, --build or --run"}
	case c.out == "":
		return usageError{"-o is required"}
	case len(c.args) == 0 && c.mode == "prepare":
		return usageError{"--prepare needs at least one package"}
	case len(c.args) == 0:
		return usageError{"--build needs at least one input (a supermin.d directory or file)"}
	case c.mode == "build" && c.format == "":
		return usageError{"--build needs -f chroot, ext2 or cpio"}
	case c.sbom != "" && c.mode != "build":
		return usageError{"--sbom needs --build"}
	}
	return nil
}

func (c *cli) exec(ctx context.Context, stderr io.Writer) error {
	if c.lock != "" {
		unlock, err := outdir.Lock(c.lock, c.out)
		if err != nil {
			return err
		}
		defer unlock()
	}
	env, err := readEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	opts := supermin.Options{
		Root: c.root, Verbose: c.verbose, Epoch: env.epoch,
		Log: func(_ int, msg string) { fmt.Fprintf(stderr, "gosupermin: %s\n", msg) },
	}
	if line := newProgressLine(stderr, env.term); line != nil {
		// Messages clear the line, and it comes back after them.
		defer line.clear()
		opts.Progress = line.update
		opts.Log = func(_ int, msg string) { line.print("gosupermin: " + msg + "\n") }
	}
	if c.mode == "prepare" {
		return supermin.Prepare(ctx, supermin.PrepareOptions{Options: opts, Packages: c.args, Out: c.out})
	}
	format, err := c.formatOf(env)
	if err != nil {
		return err
	}
	return explain(supermin.Build(ctx, supermin.BuildOptions{
		Options: opts, Inputs: c.args, Out: c.out, Format: format,
		IncludePackageList: c.includePackageList, IfNewer: c.ifNewer, Firstboot: c.firstboot,
		SBOM: supermin.SBOM{Path: c.sbom, Tool: "gosupermin-" + Version}, RemoveOld: removeInBackground,
	}), c)
}

// formatOf makes the -f format with its options.
func (c *cli) formatOf(env environment) (supermin.Format, error) {
	if c.format == "chroot" {
		return supermin.Chroot{}, nil
	}
	boot := supermin.Boot{
		Kernel:     kernel.Options{HostCPU: c.hostCPU, Kernel: env.kernel, Version: env.kernelVersion, Modules: env.modules},
		CopyKernel: c.copyKernel, KernelFormat: c.kernelFormat, Init: c.init,
	}
	if boot.Init == "" {
		boot.Init = env.init
	}
	if boot.Init == "" {
		// Searched once the build knows the appliance's architecture.
		boot.FindInit = func(target *arch.Arch) (string, error) {
			exe, err := os.Executable()
			if err != nil {
				exe = "" // only the system directories, then
			}
			return arch.FindInit(target, exe)
		}
	}
	if c.format == "cpio" {
		return &supermin.CPIO{Boot: boot, Compress: c.compress}, nil
	}
	return &supermin.Ext2{Boot: boot, Size: c.size, UUID: env.rootUUID, RandomUUID: env.randomUUID}, nil
}

// explain adds to a build error the advice that names this command's
// options and environment, which the library does not know.
func explain(err error, c *cli) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ext2.ErrNoSpace):
		return fmt.Errorf("%w; use a larger --size (it is %s)", err, supermin.HumanSize(c.size))
	case errors.Is(err, kernel.ErrNotFound):
		return fmt.Errorf("%w, or set SUPERMIN_KERNEL to a kernel image and SUPERMIN_MODULES to its module directory "+
			"(containers and WSL have no kernel of their own)", err)
	case errors.Is(err, kernel.ErrNoVersion):
		return fmt.Errorf("%w; set SUPERMIN_KERNEL_VERSION to its release", err)
	case errors.Is(err, kernel.ErrNoModules):
		return fmt.Errorf("%w, or set SUPERMIN_MODULES", err)
	case errors.Is(err, kernel.ErrUnreadable):
		return fmt.Errorf("%w, or set SUPERMIN_KERNEL to a readable copy", err)
	case errors.Is(err, arch.ErrNoInit):
		return fmt.Errorf("%w; then give it with --init FILE (or GOSUPERMIN_INIT=FILE), or put it where gosupermin looks", err)
	case errors.Is(err, arch.ErrNotInTable):
		return fmt.Errorf("%w with --init FILE", err)
	case errors.Is(err, arch.ErrInitArch):
		return fmt.Errorf("%w, and give it with --init FILE (or GOSUPERMIN_INIT=FILE)", err)
	case errors.Is(err, arch.ErrMismatch) && c.hostCPU != "":
		return fmt.Errorf("%w (the host CPU asked for is --host-cpu %s)", err, c.hostCPU)
	}
	return err
}
