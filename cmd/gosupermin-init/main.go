// Command gosupermin-init is the init program of gosupermin's initrds
// (appliance/initproc) alone, without the packer: `make build` cross-builds
// it for every architecture of appliance/arch's table as bin/init-ARCH,
// where gosupermin finds it for an appliance of that architecture. It runs
// only as process 1.
package main

import "github.com/gosupermin/gosupermin/appliance/initproc"

func main() { initproc.Main() }
