package resolver_test

import (
	"fmt"
	"os"

	"github.com/gosupermin/gosupermin/backends/dpkg"
	"github.com/gosupermin/gosupermin/resolver"
)

// Resolving the closure of a root against a dpkg database: alternatives
// take the installed one, virtual packages their provider, and every
// package comes after what it depends on.
func Example() {
	db, err := dpkg.Open(os.DirFS("../fixtures/dpkg/edge"))
	if err != nil {
		panic(err)
	}
	cl, err := resolver.Resolve(db, []string{"app", "nosuch"}, func(msg string) { fmt.Println("warning:", msg) })
	if err != nil {
		panic(err)
	}
	for _, p := range cl.Packages {
		fmt.Println(p.ID, p.Version)
	}
	fmt.Println("not installed:", cl.Missing)
	// Output:
	// warning: app:amd64 requires brokenver (>= 9), but brokenver 1.0 is installed: using it
	// libm:amd64 1.2
	// alt-present:all 3
	// mta-a:amd64 1
	// vp-new:amd64 1
	// interp:amd64 5.36
	// brokenver:amd64 1.0
	// natlib:amd64 1
	// tooler:amd64 1
	// app:amd64 1.0-1
	// not installed: [nosuch]
}
