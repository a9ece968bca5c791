package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// Help and version forms print and exit 0 without running a command (the
// default command would start the demo server); usage errors exit 2.
func TestHelpAndVersionDoNotRunTheCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"--version"}, 0, "servq, version ", ""},
		{[]string{"-h"}, 0, "usage: servq", ""},
		{[]string{"--help"}, 0, "usage: servq", ""},
		{[]string{"help"}, 0, "usage: servq", ""},
		{[]string{"help", "rules"}, 0, "usage: servq rules", ""},
		{[]string{"rules", "--help"}, 0, "usage: servq rules", ""},
		{[]string{"run", "-h"}, 0, "usage: servq run", ""},
		{[]string{"collect", "--help"}, 0, "usage: servq collect", ""},
		{[]string{"--config.file=/nonexistent", "--version"}, 0, "servq, version ", ""},
		{[]string{"nosuch"}, 2, "", "servq: unexpected nosuch"},
		{[]string{"--nosuch"}, 2, "", "unknown long flag '--nosuch'"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.err) {
			t.Errorf("servq %s = %d\nstdout: %.300s\nstderr: %.300s\nwant %d, %q in stdout, %q in stderr",
				strings.Join(c.args, " "), code, out.String(), errb.String(), c.code, c.out, c.err)
		}
	}
}

// --version carries what servq_build_info does: platform and Go version.
func TestVersionPrintsBuildInfo(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, &out); code != 0 {
		t.Fatalf("--version = %d", code)
	}
	for _, want := range []string{"revision: ", "branch: ", "go version:       " + runtime.Version(), "platform:         " + runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--version lacks %q:\n%s", want, out.String())
		}
	}
}
