// Package supermin builds supermin appliances in two steps: Prepare
// records package roots in a supermin.d, Build turns one into an appliance.
//
// # Data flow
//
// Build runs, in this order, each step in a package of its own:
//
//	supermin.d inputs   package roots, hostfiles, excludefiles, base images
//	   |                (the supermin.d format, read in this package)
//	   v
//	backends            the package database under Options.Root
//	   |                (dpkg, rpm or pacman, read in process)
//	   v
//	resolver            the roots' closure, in dependency order
//	   v
//	internal/gather     the closure's files, hostfiles, base images and
//	   |                first-boot scripts: one sealed appliance.Manifest
//	   v
//	Format              writes the manifest: Chroot (appliance/chroot),
//	                    Ext2 (appliance/ext2 with the kernel and an
//	                    initrd) or CPIO (appliance/cpio), into a new
//	                    directory that internal/outdir swaps in for Out
//
// Every file of the tree is read through internal/rootfs, so a symlink of
// the tree never leads outside it. Nothing is run as root, nothing is
// written outside Out, and a failed or cancelled build leaves the previous
// Out as it was.
//
// # Scope and limits
//
// The package database and the files are those of a tree on a local file
// system: nothing is downloaded, no package manager runs, and maintainer
// scripts are saved for the appliance's first boot (Firstboot), never run
// at build time. The bootable formats need a kernel with its modules in
// the tree or given (Boot.Kernel), and a static init program (Boot.Init).
// Build reads no environment variable: the command-line tool does.
package supermin
