package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The documentation of the command: --help, the man page gosupermin(1)
// (docs/gosupermin.1) and the bash completion (docs/gosupermin.bash) are
// all generated from the tables below and the option table, so that they
// list the same options; `make man` regenerates the committed files and
// a test fails when they are stale.
//
// Texts use a light markup: **bold** for what is typed as it is (option
// names, commands), __italic__ for what stands for something else
// (arguments). --help shows them plain.

// optionDoc documents one option of the option table, by its first name.
type optionDoc struct {
	name string
	// arg names the option's argument ("DIR"); "" for a flag.
	arg string
	// mode says the option chooses what gosupermin does.
	mode bool
	// compat says the option is accepted and ignored.
	compat bool
	// hidden options are refused and documented nowhere (supermin 4's).
	hidden bool
	// values are the words the argument may be, for the completion;
	// complete is "dir" or "file" for an argument that names one.
	values   []string
	complete string
	// help is one line for --help and the man page; man adds to it in
	// the man page.
	help, man string
}

// optionDocs are in the order --help and the man page list them.
var optionDocs = []optionDoc{
	{name: "--prepare", mode: true,
		help: "record package roots and their config files in a supermin.d",
		man: "Resolves the closure of each __PACKAGE__ in the package database and writes __OUTPUT__**/packages** " +
			"(the roots, a few bytes) and __OUTPUT__**/base.tar.gz** (the config files of the whole closure, as they are on " +
			"this machine). A package that is not installed is an error."},
	{name: "--build", mode: true,
		help: "build an appliance from supermin.d inputs",
		man: "Reads each __INPUT__ (a supermin.d directory or file, see **THE SUPERMIN.D FORMAT**), resolves the roots' " +
			"closure against this machine's package database at the last moment, gathers the packages' files and writes " +
			"the appliance in the format **-f** names. A root that is not installed is skipped with a warning. " +
			"__OUTPUT__ is built beside itself and swapped in whole: a failure or an interrupt leaves the previous output as it was."},
	{name: "--run", mode: true,
		help: "boot the appliance OUT in qemu, run COMMAND in it and exit with its status",
		man: "__OUT__ is an output of **--build -f ext2** or **-f cpio**, of any architecture gosupermin knows (told from its " +
			"kernel). __COMMAND__ runs as root after the first-boot scripts, with /proc, /sys, /dev and /tmp mounted and a " +
			"sane PATH, in the appliance's copy of the current directory, which is shared read-write at the same path " +
			"(virtio 9p). Its standard input, output and error are gosupermin's, apart from the console's kernel and init " +
			"messages (shown with **-v**), and gosupermin exits with its status. Without __COMMAND__, on a terminal, a shell " +
			"runs on the console (Ctrl+A X stops the machine); not on a terminal, the shell reads its commands from standard " +
			"input. The root image is not changed unless **--persist**. See **RUNNING A COMMAND**."},
	{name: "--list-drivers", mode: true, help: "list the package-database drivers, each detected or not-detected, and exit"},
	{name: "-V", mode: true, help: "print the version and exit",
		man: "libguestfs's configure reads the second field of \"gosupermin 5.3.99 (supermin 5 compatible)\"."},
	{name: "-h", mode: true, help: "print this help and exit"},

	{name: "-o", arg: "DIR", complete: "dir", help: "output directory (required by --prepare and --build)"},
	{name: "-f", arg: "FORMAT", values: []string{"chroot", "ext2", "cpio", "fs", "filesystem"},
		help: "output format of --build: chroot (also fs, filesystem), ext2 or cpio", man: "See **OUTPUT FORMATS**."},
	{name: "--root", arg: "DIR", complete: "dir",
		help: "use the package database and files of the tree DIR instead of /",
		man:  "The tree may be one that mmdebstrap, dnf --installroot or pacstrap made. Its symlinks never lead outside it."},
	{name: "--size", arg: "SIZE", help: "size of the ext2 image: a number and b, K, M or G (default 4G)",
		man: "The image is sparse: only what the appliance holds takes space."},
	{name: "--copy-kernel", help: "copy the kernel image into the output instead of linking to it (with --kernel-format image)"},
	{name: "--kernel-format", arg: "FORMAT", values: []string{"auto", "elf", "image"},
		help: "OUT/kernel: auto (default: elf for an x86-64 bzImage, else image), elf or image",
		man: "**elf** is the uncompressed kernel inside an x86-64 bzImage, which qemu's **-kernel** boots through its PVH entry point " +
			"without the bzImage's own decompressor: under TCG (no KVM) that saves seconds at each boot, " +
			"under KVM a few tenths. It takes about 60 MiB in the output (half of it holes) and a second to decompress, " +
			"unless the output the build replaces has the same one, which is then taken over after a check of its content. " +
			"**image** is the distribution's kernel image as it is, a link to it (a copy with **--copy-kernel**), as supermin 5 writes it. " +
			"**auto** is **elf** when the kernel allows it (an x86-64 bzImage with a PVH entry point, compressed with xz, gzip or zstd) and **image** otherwise."},
	{name: "--host-cpu", arg: "ARCH", help: "prefer kernels for the CPU model ARCH (/boot/vmlinu?-*-ARCH)"},
	{name: "--compress", arg: "METHOD", values: []string{"zstd", "gzip", "none"},
		help: "compression of the cpio initramfs: zstd (default), gzip or none"},
	{name: "--init", arg: "FILE", complete: "file",
		help: "the initrd's init program: a static binary of the appliance's architecture (default: found, see INIT PROGRAM)",
		man:  "An init of another architecture than the appliance's is refused. Without **--init**, see **INIT PROGRAM**."},
	{name: "--firstboot",
		help: "save the packages' maintainer scripts and run them on the appliance's first boot",
		man: "They are saved under **/usr/lib/gosupermin/firstboot/** in dependency order with a runner that the init " +
			"runs before the appliance's own; **gosupermin.firstboot=0** on the kernel command line skips it. Without " +
			"**--firstboot** nothing is saved or run, as with supermin 5."},
	{name: "--include-packagelist", help: "write /packagelist in the appliance: the full names of the closure's packages"},
	{name: "--if-newer",
		help: "do nothing when OUTPUT is newer than every input file and the package database",
		man:  "Only file times are compared (an edit inside a supermin.d counts); libguestfs asks at every launch."},
	{name: "--lock", arg: "FILE", complete: "file", help: "serialise runs on FILE (an fcntl lock, as supermin's)"},
	{name: "--sbom", arg: "FILE", complete: "file",
		help: "with --build, write an SPDX 2.3 JSON bill of materials of the appliance to FILE",
		man:  "See **BILL OF MATERIALS**."},
	{name: "--share", arg: "DIR[:GUESTDIR]", complete: "dir",
		help: "with --run, share DIR read-write at GUESTDIR (default: the same path); repeatable",
		man:  "A share at the place of another, the current directory's included, replaces it."},
	{name: "--share-ro", arg: "DIR[:GUESTDIR]", complete: "dir",
		help: "with --run, share DIR read-only at GUESTDIR (default: the same path); repeatable",
		man:  "The appliance cannot change DIR (the 9p mount is read-only, and qemu refuses writes)."},
	{name: "--memory", arg: "SIZE", help: "with --run, the machine's memory: MiB, or a number and M or G (default 1G)"},
	{name: "--smp", arg: "N", help: "with --run, the number of virtual CPUs (default 1)"},
	{name: "--timeout", arg: "SECONDS", help: "with --run, stop the machine after SECONDS and exit with status 124 (0: never)"},
	{name: "--accel", arg: "ACCEL", values: []string{"auto", "kvm", "tcg"},
		help: "with --run, auto (default), kvm or tcg",
		man:  "**auto** uses KVM when /dev/kvm opens and the appliance is of this machine's architecture, and falls back to TCG, saying so once, when qemu fails under KVM or the appliance shows no sign of life within 10 seconds."},
	{name: "--persist", help: "with --run, keep what the command changes in the ext2 appliance's root image",
		man: "Without it the root is a snapshot: its file is not changed. A cpio appliance has nothing to keep."},
	{name: "-v", help: "more messages (repeat for more); with --run, the console too"},

	{name: "--use-installed", compat: true, help: "accepted and ignored: gosupermin never downloads packages"},
	{name: "--packager-config", arg: "FILE", compat: true, complete: "file", help: "accepted and ignored, as --use-installed"},
	{name: "--dtb", arg: "GLOB", compat: true, help: "accepted and ignored (obsolete in supermin 5 too)"},

	{name: "--names", hidden: true},
}

// envDocs are the environment variables gosupermin reads (env.go).
var envDocs = []struct{ name, help string }{
	{"SUPERMIN_KERNEL", "the kernel image to use, instead of searching /lib/modules/*/vmlinuz and /boot/vmlinu?-*"},
	{"SUPERMIN_KERNEL_VERSION", "the release of SUPERMIN_KERNEL, when its header does not tell it"},
	{"SUPERMIN_MODULES", "the kernel's module directory, instead of /lib/modules/RELEASE"},
	{"SOURCE_DATE_EPOCH", "seconds since 1970: the time of made-up timestamps and of the bill of materials (reproducible builds)"},
	{"GOSUPERMIN_INIT", "the init program, as --init (which wins)"},
	{"GOSUPERMIN_ROOT_UUID", "the ext2 root's UUID, or \"random\" (default: derived from the content)"},
	{"TERM", "\"dumb\" turns the progress line off; --run gives it to the shell on the terminal"},
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

var exitDocs = []struct {
	code int
	help string
}{
	{exitOK, "success, also when --if-newer finds nothing to do; --run exits with the command's own status"},
	{exitError, "an error, told in one line: \"gosupermin: FILE: problem\"; with --run, also an appliance that could not run the command (what its console showed last is told)"},
	{exitUsage, "a bad command line"},
	{exitTimeout, "--run: the --timeout expired; the machine was stopped"},
	{exitInterrupted, "--run: interrupted (Ctrl+C); the machine was stopped"},
}

// synopsis are the ways to call gosupermin.
var synopsis = [][2]string{
	{"--prepare", "__PACKAGE__... **-o** __SUPERMIN.D__"},
	{"--build", "**-f** **chroot**|**ext2**|**cpio** [__OPTION__...] __INPUT__... **-o** __OUTPUT__"},
	{"--run", "__OUT__ [**--share**|**--share-ro** __DIR__[:__GUESTDIR__]]... [**--memory** __SIZE__] [**--smp** __N__] [**--timeout** __SECONDS__] [**--accel** **auto**|**kvm**|**tcg**] [**--persist**] [**--** __COMMAND__ [__ARG__...]]"},
	{"--list-drivers", ""},
	{"--version", ""},
	{"--help", ""},
}

// initSearch says where the init program of an appliance comes from.
const initSearch = `The initrd's init is a static program of the appliance's architecture (amd64, arm64, riscv64, ppc64le or s390x), which gosupermin learns from the package database and the kernel (and **--host-cpu** when given; they must agree). It is the first of: **--init**, **GOSUPERMIN_INIT**, __init-ARCH__ beside this program (bin/ after make build), __../lib/gosupermin/init-ARCH__ from it (an install), __linux_ARCH/gosupermin-init__ beside it (a cross go install), __/usr/local/lib/gosupermin/init-ARCH__, __/usr/lib/gosupermin/init-ARCH__, and for this machine's own architecture this program itself. An init of another architecture is refused.`

// manSections are the man page's prose, after OPTIONS and ENVIRONMENT's
// place is given by name. Paragraphs are separated by blank lines; a
// line starting with "$ " is an example command; "* TERM: text" is a
// tagged paragraph.
var manSections = []struct{ title, text string }{
	{"DESCRIPTION", `**gosupermin** builds supermin appliances: small Linux systems made of the packages installed on the build machine, for libguestfs and tools like it. It is a drop-in successor of **supermin**(1) 5: the same command line, the same supermin.d format and the same output layout. It reads the package database (dpkg, rpm or pacman) in process, runs no subprocess, needs no root, and replaces its output atomically and reproducibly.

The first step, **--prepare**, runs on a central build machine and writes a supermin.d of a few kilobytes. The second, **--build**, runs on the user's machine, offline, as any user: the appliance gets the packages as that machine has them, with every security update it has.`},
	{"MODES", ""},
	{"OPTIONS", ""},
	{"OUTPUT FORMATS", `* **chroot**: __OUTPUT__ is the tree itself: **chroot** __OUTPUT__ **/bin/bash** works. Device nodes and owners are made only as root.
* **ext2**: __OUTPUT__ holds **kernel** (the host kernel, linked or copied), **initrd** (an uncompressed cpio with gosupermin's init and the modules that mount the root) and **root** (a sparse ext2 image of **--size** bytes, with the kernel's whole module directory). Adding an empty **README.fixed** makes it a fixed appliance for libguestfs.
* **cpio**: __OUTPUT__ holds **kernel** and **initrd**, the whole appliance as one compressed initramfs (**--compress**) with gosupermin's init as **/init**.`},
	{"INIT PROGRAM", initSearch},
	{"THE SUPERMIN.D FORMAT", `An input of **--build** is a file or a directory, walked recursively with names sorted. Each file's kind comes from its content, never its name:

* gzip or xz wrapping a tar, or a plain tar: a base image, unpacked over the package files in input order. Absolute names, ".." and entries under a symlink of the archive are refused.
* first byte "/": hostfiles, glob(7) patterns of host files to add (a directory adds itself, not its contents).
* first byte "-": excludefiles, "-PATTERN" with fnmatch(3) patterns where "*" also matches "/", for package files only.
* first byte alphanumeric: packages, the roots, one a line.
* empty: ignored.

Anything else is an error naming the file.`},
	{"BILL OF MATERIALS", `With **--sbom** __FILE__, **--build** writes an SPDX 2.3 JSON document that scanners such as syft, grype and trivy read. The document DESCRIBES the appliance, which CONTAINS one package for each package of the closure: its name, version, supplier (Maintainer, Vendor or Packager), declared licence as an SPDX expression (rpm's License, pacman's license, or the machine-readable /usr/share/doc/PACKAGE/copyright of a Debian package; NOASSERTION when there is none) and its package URL (pkg:deb, pkg:rpm or pkg:alpm, named for the distribution of the tree's os-release). Each package DEPENDS_ON the packages the resolver chose for its relations. The bootable formats add the kernel, as the package that installed it when one did.

__FILE__ is written beside the output, never inside it, replaced atomically and only when the build succeeds. With **SOURCE_DATE_EPOCH** two builds give the same bytes: the creation time is that epoch and the document namespace is derived from the content.`},
	{"RUNNING A COMMAND", `**--run** boots the appliance with the architecture's qemu (TCG or KVM) and no network. The command and its arguments reach the init, and its output and exit status come back, on a virtio-serial channel (any bytes, any size); the kernel command line only says to run it. The command's standard output and error stay apart; other than them, gosupermin writes nothing to standard output. It exits with the command's status, 128 + N when a signal N killed it, 127 when the appliance has no such command, 124 when **--timeout** expires, and 1 with the console's last telling line when the appliance cannot boot or run it. Ctrl+C stops the machine; nothing is left behind, and no root is needed when /dev/kvm or TCG is usable.

The current directory is shared, unless it is / or a system directory (/usr, /etc...), which would hide the appliance's own. Files the command writes there belong to the user who runs gosupermin. Processes the command leaves running are killed when it exits.`},
	{"PROGRESS", `When standard error is a terminal, the long phases of a build (gathering the packages' files, saving first-boot scripts, writing the image or the tree, compressing the initramfs) show one line with what is done of the total, packages or bytes, which disappears when the phase ends. Messages of **-v** still come out whole. Nothing of it is written when standard error is not a terminal (logs stay clean) or **TERM** is "dumb".`},
	{"ENVIRONMENT", ""},
	{"EXIT STATUS", ""},
	{"EXAMPLES", `On a build machine, record an appliance of bash and coreutils:

$ gosupermin --prepare bash coreutils -o supermin.d

On the user's machine, build it as an ext2 appliance for libguestfs, with a bill of materials:

$ gosupermin --build -f ext2 supermin.d -o appliance.d --sbom appliance.spdx.json

Build from a tree made by mmdebstrap, reproducibly, and run a command in it:

$ SOURCE_DATE_EPOCH=1700000000 gosupermin --build -f cpio --root tree supermin.d -o appliance.d
$ gosupermin --run appliance.d -- sh -c 'uname -a > uname.txt'

A shell in the appliance, with a second directory shared at /src:

$ gosupermin --run appliance.d --share ../src:/src`},
	{"SEE ALSO", `**supermin**(1), **guestfish**(1), **libguestfs-test-tool**(1), **mmdebstrap**(1)`},
}

var markupRE = regexp.MustCompile(`\*\*(.+?)\*\*|__(.+?)__`)

// plain strips the markup.
func plain(s string) string { return markupRE.ReplaceAllString(s, "$1$2") }

// roffText escapes s for roff and turns the markup into fonts.
func roffText(s string) string {
	esc := strings.NewReplacer(`\`, `\e`, "-", `\-`, "'", `\(aq`, `"`, `\(dq`).Replace
	var b strings.Builder
	last := 0
	for _, m := range markupRE.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(esc(s[last:m[0]]))
		if m[2] >= 0 {
			b.WriteString(`\fB` + esc(s[m[2]:m[3]]) + `\fR`)
		} else {
			b.WriteString(`\fI` + esc(s[m[4]:m[5]]) + `\fR`)
		}
		last = m[1]
	}
	b.WriteString(esc(s[last:]))
	out := b.String()
	if strings.HasPrefix(out, ".") {
		out = `\&` + out // not a request
	}
	return out
}

// names are the option's names as --help and the man page show them:
// the option table's, less the single-dash long spellings kept for
// supermin 5 ("-help").
func (d optionDoc) names() []string {
	var out []string
	for _, n := range optionNames(d.name) {
		if strings.HasPrefix(n, "--") || len(n) == 2 {
			out = append(out, n)
		}
	}
	return out
}

// optionNames are the names of the option table's option whose first
// name is name.
func optionNames(name string) []string {
	for _, o := range options {
		if o.names[0] == name {
			return o.names
		}
	}
	return nil
}

// usage is the text of --help.
func usage() string {
	var b strings.Builder
	b.WriteString("gosupermin - build supermin appliances (supermin 5 compatible)\n\nUsage:\n")
	for _, s := range synopsis {
		fmt.Fprintf(&b, "  %s\n", strings.TrimSpace("gosupermin "+s[0]+" "+plain(s[1])))
	}
	section := func(title string, keep func(optionDoc) bool) {
		fmt.Fprintf(&b, "\n%s:\n", title)
		for _, d := range optionDocs {
			if d.hidden || !keep(d) {
				continue
			}
			left := strings.Join(d.names(), ", ")
			if d.arg != "" {
				left += " " + d.arg
			}
			if len(left) > 25 {
				fmt.Fprintf(&b, "  %s\n%28s", left, "")
			} else {
				fmt.Fprintf(&b, "  %-26s", left)
			}
			fmt.Fprintf(&b, "%s\n", plain(d.help))
		}
	}
	section("Modes", func(d optionDoc) bool { return d.mode })
	section("Options", func(d optionDoc) bool { return !d.mode && !d.compat })
	section("Accepted for supermin 5 compatibility", func(d optionDoc) bool { return d.compat })
	b.WriteString("\nEnvironment:\n")
	for _, e := range envDocs {
		fmt.Fprintf(&b, "  %-26s%s\n", e.name, e.help)
	}
	b.WriteString("\nExit status:\n")
	for _, e := range exitDocs {
		fmt.Fprintf(&b, "  %-26d%s\n", e.code, e.help)
	}
	b.WriteString("\nInit program:\n")
	for _, l := range wrap(plain(initSearch), 76) {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	b.WriteString("\nMore in gosupermin(1): output formats, the supermin.d format, the bill of materials.\n")
	return b.String()
}

// manPage is gosupermin(1) in roff (man(7) macros).
func manPage() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line(`.\" gosupermin(1): generated from cmd/gosupermin/docs.go by "make man"; do not edit.`)
	line(`.TH GOSUPERMIN 1 "" "gosupermin %s" "User Commands"`, Version)
	line(".nh") // no hyphenation: option names and paths stay whole
	line(".SH NAME")
	line(`gosupermin \- build supermin appliances (supermin 5 compatible)`)
	line(".SH SYNOPSIS")
	for i, s := range synopsis {
		if i > 0 {
			line(".br")
		}
		line("%s", roffText(strings.TrimSpace("**gosupermin** **"+s[0]+"** "+s[1])))
	}
	options := func(keep func(optionDoc) bool) {
		for _, d := range optionDocs {
			if d.hidden || !keep(d) {
				continue
			}
			var tag []string
			for _, n := range d.names() {
				t := "**" + n + "**"
				if d.arg != "" {
					t += " __" + d.arg + "__"
				}
				tag = append(tag, t)
			}
			line(".TP")
			line("%s", roffText(strings.Join(tag, ", ")))
			text := strings.ToUpper(d.help[:1]) + d.help[1:] + "."
			if d.man != "" {
				text += " " + d.man
			}
			line("%s", roffText(text))
		}
	}
	for _, s := range manSections {
		line(".SH %s", s.title)
		switch s.title {
		case "MODES":
			options(func(d optionDoc) bool { return d.mode })
			continue
		case "OPTIONS":
			options(func(d optionDoc) bool { return !d.mode && !d.compat })
			line(".PP")
			line("Accepted and ignored, for supermin 5 compatibility:")
			options(func(d optionDoc) bool { return d.compat })
			continue
		case "ENVIRONMENT":
			for _, e := range envDocs {
				line(".TP")
				line(`\fB%s\fR`, roffText(e.name))
				line("%s", roffText(strings.ToUpper(e.help[:1])+e.help[1:]+"."))
			}
			continue
		case "EXIT STATUS":
			for _, e := range exitDocs {
				line(".TP")
				line("%d", e.code)
				line("%s", roffText(strings.ToUpper(e.help[:1])+e.help[1:]+"."))
			}
			continue
		}
		for i, para := range strings.Split(s.text, "\n\n") {
			if i > 0 && !strings.HasPrefix(para, "* ") && !strings.HasPrefix(para, "$ ") {
				line(".PP")
			}
			switch {
			case strings.HasPrefix(para, "$ "):
				line(".PP")
				line(".RS 4")
				line(".nf")
				for _, l := range strings.Split(para, "\n") {
					line("%s", roffText(l))
				}
				line(".fi")
				line(".RE")
			case strings.HasPrefix(para, "* "):
				for _, item := range strings.Split(para, "\n") {
					tag, text, _ := strings.Cut(strings.TrimPrefix(item, "* "), ": ")
					line(".TP")
					line("%s", roffText(tag))
					line("%s", roffText(strings.ToUpper(text[:1])+text[1:]))
				}
			default:
				line("%s", roffText(para))
			}
		}
	}
	return b.String()
}

// bashCompletion completes the options, the words some arguments may
// be, and file or directory names.
func bashCompletion() string {
	var words, dirs, files, free []string
	var values []string
	for _, d := range optionDocs {
		if d.hidden {
			continue
		}
		names := d.names()
		words = append(words, names...)
		switch {
		case len(d.values) > 0:
			values = append(values, fmt.Sprintf("\t%s)\n\t\tCOMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n\t\treturn ;;",
				strings.Join(names, "|"), strings.Join(d.values, " ")))
		case d.complete == "dir":
			dirs = append(dirs, names...)
		case d.complete == "file":
			files = append(files, names...)
		case d.arg != "":
			free = append(free, names...)
		}
	}
	slices.Sort(words)
	var b strings.Builder
	b.WriteString(`# bash completion for gosupermin(1); generated from cmd/gosupermin/docs.go by "make man".
_gosupermin() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()
	case $prev in
`)
	for _, v := range values {
		b.WriteString(v + "\n")
	}
	for _, arm := range []struct {
		names []string
		do    string
	}{{dirs, "COMPREPLY=($(compgen -d -- \"$cur\"))\n\t\t"}, {files, "COMPREPLY=($(compgen -f -- \"$cur\"))\n\t\t"}, {free, ""}} {
		if len(arm.names) > 0 { // an empty pattern is a syntax error
			fmt.Fprintf(&b, "\t%s)\n\t\t%sreturn ;;\n", strings.Join(arm.names, "|"), arm.do)
		}
	}
	fmt.Fprintf(&b, `	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '%s' -- "$cur"))
		return
	fi
	# Inputs of --build and outputs are files and directories.
	COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _gosupermin gosupermin
`, strings.Join(words, " "))
	return b.String()
}

// wrap breaks text into lines of at most width bytes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
