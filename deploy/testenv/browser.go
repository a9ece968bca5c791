package testenv

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Browse opens url in a real headless Chromium (skipped when it is not
// installed, see Binary): it returns the DOM Chromium built and saves a
// screenshot of width×height pixels to shot. Console errors and load
// failures of the page fail the test.
func Browse(t testing.TB, url, shot string, width, height int) string {
	t.Helper()
	chromium := Binary(t, "chromium")
	common := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + filepath.Join(t.TempDir(), "profile"), "--enable-logging=stderr", "--v=0"}
	// Bounded so that a stuck browser fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dom, err := exec.CommandContext(ctx, chromium, append(common, "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	out, err := exec.CommandContext(ctx, chromium, append(common, "--screenshot="+shot,
		"--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), url)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	page := url[strings.LastIndexByte(url, '/')+1:]
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "CONSOLE") && (page == "" || strings.Contains(line, page)) ||
			strings.Contains(line, "ERR_FILE_NOT_FOUND") || strings.Contains(line, "Uncaught") {
			t.Errorf("Chromium reports: %s", line)
		}
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s missing or empty: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
	return string(dom)
}

// CountColours counts the pixels of a PNG near each of the colours (each
// channel within 24): a chart line is visible when enough are seen.
func CountColours(t testing.TB, file string, colours map[string][3]int) map[string]int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return countColours(img, colours)
}

func countColours(img image.Image, colours map[string][3]int) map[string]int {
	abs := func(v int) int {
		if v < 0 {
			return -v
		}
		return v
	}
	seen := map[string]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for name, c := range colours {
				if abs(int(r>>8)-c[0]) < 24 && abs(int(g>>8)-c[1]) < 24 && abs(int(bl>>8)-c[2]) < 24 {
					seen[name]++
				}
			}
		}
	}
	return seen
}
