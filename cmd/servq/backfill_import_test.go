package main

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/servq/servq/config"
)

// The import sink carries the push section's credentials in the
// Authorization header only (bearer first, else basic auth) and its extra
// labels as extra_label parameters; the URL never holds a secret.
func TestImportSinkCredentials(t *testing.T) {
	basic := &config.Push{Username: "vm", Password: "s3cret-pass", ExtraLabels: map[string]string{"site": "eu"}}
	im, err := importSink(context.Background(), "http://127.0.0.1:8428", basic)
	if err != nil {
		t.Fatal(err)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("vm:s3cret-pass"))
	if got := im.Headers.Get("Authorization"); got != want {
		t.Errorf("basic auth header %q, want %q", got, want)
	}
	if im.URL != "http://127.0.0.1:8428/api/v1/import/prometheus?extra_label=site%3Deu" {
		t.Errorf("URL %q", im.URL)
	}
	bearer := &config.Push{Username: "vm", Password: "s3cret-pass", BearerToken: "tok-123456"}
	im, err = importSink(context.Background(), "http://127.0.0.1:8428/api/v1/import/prometheus", bearer)
	if err != nil {
		t.Fatal(err)
	}
	if got := im.Headers.Get("Authorization"); got != "Bearer tok-123456" {
		t.Errorf("bearer header %q", got)
	}
	for _, s := range []string{"s3cret-pass", "tok-123456"} {
		if strings.Contains(im.URL, s) {
			t.Errorf("URL %q holds a secret", im.URL)
		}
	}
	im, err = importSink(context.Background(), "http://127.0.0.1:8428", nil)
	if err != nil || im.Headers.Get("Authorization") != "" {
		t.Errorf("no push section: header %q, err %v", im.Headers.Get("Authorization"), err)
	}
}
