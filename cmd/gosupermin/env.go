package main

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// environment is what gosupermin reads of its environment: supermin 5's
// variables and our own, each documented in envDocs (docs.go). Nothing
// below cmd/ reads the environment.
type environment struct {
	epoch         time.Time // SOURCE_DATE_EPOCH
	kernel        string    // SUPERMIN_KERNEL
	kernelVersion string    // SUPERMIN_KERNEL_VERSION (with SUPERMIN_KERNEL)
	modules       string    // SUPERMIN_MODULES
	init          string    // GOSUPERMIN_INIT (--init wins)
	rootUUID      [16]byte  // GOSUPERMIN_ROOT_UUID=UUID
	randomUUID    bool      // GOSUPERMIN_ROOT_UUID=random
	term          string    // TERM: "dumb" has no progress line
}

func readEnv(lookup func(string) (string, bool)) (environment, error) {
	get := func(k string) string { v, _ := lookup(k); return v }
	e := environment{
		kernel: get("SUPERMIN_KERNEL"), modules: get("SUPERMIN_MODULES"), init: get("GOSUPERMIN_INIT"),
		term: get("TERM"),
	}
	if e.kernel != "" {
		e.kernelVersion = get("SUPERMIN_KERNEL_VERSION")
	}
	if s := get("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return e, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", s)
		}
		e.epoch = time.Unix(n, 0).UTC()
	}
	switch v := get("GOSUPERMIN_ROOT_UUID"); v {
	case "":
	case "random":
		e.randomUUID = true
	default:
		h, err := hex.DecodeString(strings.ReplaceAll(v, "-", ""))
		if err != nil || len(h) != 16 {
			return e, fmt.Errorf("GOSUPERMIN_ROOT_UUID=%q: not a UUID (or \"random\")", v)
		}
		copy(e.rootUUID[:], h)
	}
	return e, nil
}
