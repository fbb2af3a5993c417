# gosupermin: the two commands are `make demo` and `make test`; both first
# install what they need from Debian's packages (as root, or through sudo).

GO        ?= go
BIN       := bin/gosupermin
DEMO      := demo
# Debian packages the tests and the demo use: supermin 5 to compare with and
# to make inputs, qemu and a kernel to boot, e2fsprogs/cpio/bsdtar to read
# our images back, rpm and pacman to make fixture databases.
DEBS      := supermin qemu-system-x86 linux-image-amd64 e2fsprogs cpio libarchive-tools \
             rpm pacman-package-manager makepkg fakeroot zstd xz-utils kmod util-linux \
             libalgorithm-diff-perl base-passwd libc-bin time bc busybox dash mount \
             libguestfs-tools
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps test demo bench fuzz clean man install uninstall deb deb-deps

all: build

build: inits
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/gosupermin

# --- Architectures: the init program of each (cmd/gosupermin-init, pure Go
# cross-builds), as bin/init-ARCH beside bin/gosupermin, where it finds them;
# installed as PREFIX/lib/gosupermin/init-ARCH. INIT_ARCHES is appliance/arch's
# table (a test checks it). The arm64 boot test builds a Debian tree with
# mmdebstrap under qemu-user and boots it with qemu-system-aarch64; another
# boots Debian's ppc64el and s390x kernels with qemu-system-ppc64 and -s390x.
INIT_ARCHES := amd64 arm64 riscv64 ppc64le s390x
INITS       := $(INIT_ARCHES:%=bin/init-%)
PREFIX      ?= /usr/local
DEBS        += mmdebstrap arch-test qemu-user-static binfmt-support qemu-system-arm \
               qemu-system-ppc qemu-system-misc

.PHONY: inits install-inits FORCE
inits: $(INITS)

# go build decides whether an init is up to date.
bin/init-%: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags='-s -w' -o $@ ./cmd/gosupermin-init

install-inits: inits
	install -d $(DESTDIR)$(PREFIX)/lib/gosupermin
	install -m 0755 $(INITS) $(DESTDIR)$(PREFIX)/lib/gosupermin/
# --- end of architectures

# Installs only what is missing, so a second run costs nothing.
deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q ' installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

test: deps
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -count=1 -timeout 40m ./...

# Build a small appliance from this machine, boot it and run a command in it.
demo: deps build
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN) --prepare bash dash coreutils mount util-linux kmod -o $(DEMO)/supermin.d
	$(BIN) --build -v -f ext2 --size 1G $(DEMO)/supermin.d -o $(DEMO)/appliance
	$(BIN) --run $(DEMO)/appliance --timeout 300 -- sh -c \
		'echo "*** gosupermin demo appliance: $$(uname -r), $$(ls /usr/bin | wc -l) programs in /usr/bin, in $$(pwd) ***"'

# Side-by-side figures against supermin 5.
bench: deps build
	.ci/bench

# -fuzzminimizetime: minimizing each new input for up to a minute, the
# default, would take a short run's whole time.
fuzz:
	@for t in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include=*_test.go . | sed 's/func //'); do \
		pkg=$$(grep -rl "^func $$t" --include=*_test.go . | head -1 | xargs dirname); \
		echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 20s -fuzzminimizetime 200x $$pkg || exit 1; \
	done

clean:
	rm -rf bin build $(DEMO)

# ---- Ecosystem: man page, install, Debian package ------------------------

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
LIBDIR      ?= $(PREFIX)/lib
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
VERSION     := $(shell sed -n 's/^const Version = "\(.*\)"/\1/p' cmd/gosupermin/main.go)
DEB_ARCH     = $(shell dpkg --print-architecture)
# Where make deb puts the .deb, and where it builds it.
DEBDIR      ?= bin
DEBBUILD    ?= build/deb
# What make deb needs, and groff for the man page's test.
DEB_TOOLS   := dpkg-dev debhelper fakeroot lintian groff-base
DEBS        += $(DEB_TOOLS)

# Regenerates docs/gosupermin.1 and docs/gosupermin.bash from the option
# table (cmd/gosupermin/docs.go); a test fails when they are stale.
man:
	$(GO) test ./cmd/gosupermin -run '^TestGeneratedDocs$$' -count=1 -update

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/gosupermin
	install -D -m 0644 docs/gosupermin.1 $(DESTDIR)$(MANDIR)/man1/gosupermin.1
	install -D -m 0644 docs/gosupermin.bash $(DESTDIR)$(BASHCOMPDIR)/gosupermin
	for f in $(INITS); do install -D -m 0755 $$f $(DESTDIR)$(LIBDIR)/gosupermin/$$(basename $$f) || exit 1; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/gosupermin $(DESTDIR)$(MANDIR)/man1/gosupermin.1 $(DESTDIR)$(BASHCOMPDIR)/gosupermin
	rm -rf $(DESTDIR)$(LIBDIR)/gosupermin

deb-deps:
	@$(MAKE) --no-print-directory deps DEBS="$(DEB_TOOLS)"

# $(DEBDIR)/gosupermin_VERSION_ARCH.deb, built offline by dpkg-buildpackage
# in a copy of the tree under $(DEBBUILD) with a vendor directory made from
# the module cache (the tree itself gets no vendor/), then checked by
# lintian.
deb: deb-deps
	$(GO) mod download
	rm -rf $(DEBBUILD) && mkdir -p $(DEBBUILD)/gosupermin-$(VERSION)
	tar -c --exclude=./.git --exclude=./bin --exclude=./build --exclude=./demo --exclude=./vendor . | \
		tar -x -C $(DEBBUILD)/gosupermin-$(VERSION)
	cd $(DEBBUILD)/gosupermin-$(VERSION) && GOFLAGS=-mod=mod GOPROXY=off $(GO) mod vendor
	cd $(DEBBUILD)/gosupermin-$(VERSION) && GOCACHE=$$($(GO) env GOCACHE) dpkg-buildpackage -b -us -uc
	lintian --fail-on error $(DEBBUILD)/gosupermin_$(VERSION)_$(DEB_ARCH).deb
	mkdir -p $(DEBDIR) && cp $(DEBBUILD)/gosupermin_$(VERSION)_$(DEB_ARCH).deb $(DEBDIR)/
