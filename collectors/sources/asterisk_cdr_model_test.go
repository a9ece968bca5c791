package sources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servq/servq/collectors"
)

// CDR rows through the quality model, by hand (support queue, times in
// Berlin):
//
//	1: ANSWERED, duration 100, billsec 88 -> answered, wait 12s, talk 88s
//	2: NO ANSWER, duration 30            -> abandoned after 30s
//	3: ANSWERED, no dstchannel, 4s       -> abandoned after 4s (short)
//	4: ANSWERED, duration 50, billsec 45 -> answered, wait 5s, talk 45s
//
// offered 4, answered 2 (wait sum 17, both within 20s), abandoned 2 of
// which 1 short (<= 5s), handle sum 133s; a second read of the same file
// adds nothing.
func TestAsteriskCDRThroughTheQualityModel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Master.csv")
	rows := `"","5551001","600","from-queue","c","SIP/trunk-1","SIP/100-2","Queue","support","2026-11-02 10:00:00","2026-11-02 10:00:12","2026-11-02 10:01:40",100,88,"ANSWERED","DOCUMENTATION","u1",""
"","5551002","600","from-queue","c","SIP/trunk-3","","Queue","support","2026-11-02 10:00:05",,"2026-11-02 10:00:35",30,0,"NO ANSWER","DOCUMENTATION","u2",""
"","5551003","600","from-queue","c","SIP/trunk-4","","Queue","support","2026-11-02 10:01:00","2026-11-02 10:01:00","2026-11-02 10:01:04",4,4,"ANSWERED","DOCUMENTATION","u3",""
"","5551004","600","from-queue","c","SIP/trunk-5","SIP/101-6","Queue","support","2026-11-02 10:02:00","2026-11-02 10:02:05","2026-11-02 10:02:50",50,45,"ANSWERED","DOCUMENTATION","u4",""
`
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "collectors:\n  - {name: cdr, type: asterisk_cdr, schedule: \"@every 1m\", path: "+path+", time_zone: Europe/Berlin}\n")
	src := buildCollector(t, cfg, collectors.Env{})
	m := testModel(t, cfg)
	now := time.Date(2026, 11, 2, 10, 5, 0, 0, time.UTC)
	b, cursor := collectOnce(t, src, nil, now)
	if len(b.Rejected) != 0 {
		t.Fatalf("rejected: %v", cdrRejections(b))
	}
	commitRun(t, m, "cdr", b, cursor)
	// The same file read again from scratch (a lost cursor): nothing new.
	b2, _ := collectOnce(t, src, nil, now)
	commitRun(t, m, "cdr", b2, cursor)
	q := "channel=phone,collector=cdr,queue=support"
	expectValues(t, seriesValues(t, m), map[string]float64{
		"servq_calls_offered_total{" + q + "}":                                                             4,
		"servq_calls_answered_total{" + q + "}":                                                            2,
		"servq_calls_abandoned_total{" + q + "}":                                                           2,
		"servq_calls_abandoned_short_total{" + q + "}":                                                     1,
		"servq_call_wait_seconds_sum{channel=phone,collector=cdr,outcome=answered,queue=support}":          17,
		"servq_call_wait_seconds_bucket{channel=phone,collector=cdr,outcome=answered,queue=support,le=20}": 2,
		"servq_call_handle_seconds_sum{" + q + "}":                                                         133,
	})
}

// Rows with numbers or times out of bounds are rejected with their column,
// never counted (run clock 2026-11-02 10:05 UTC = 11:05 Berlin):
//
//	1: ANSWERED, duration 20, billsec 14     -> answered, wait 6s
//	2: NO ANSWER, duration 99999999999999999 -> bad_number (would overflow
//	   Duration to about -2.5e9s, a short abandon)
//	3: ANSWERED, duration 604801 (7d+1s)     -> bad_number
//	4: start 1970-01-01                      -> bad_time (clock never set)
//	5: start 2027-01-01                      -> bad_time (far ahead)
//	6: NO ANSWER after 9s, ends 11:30 Berlin (25 min ahead, within 1h)
//	   -> abandoned, wait 9s (not short)
//
// offered 2, answered 1 (wait 6), abandoned 1 (none short).
func TestAsteriskCDRNumbersOutOfBoundsThroughTheQualityModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Master.csv")
	row := func(start, answer, end, duration, billsec, disp, dstch, id string) string {
		return `"","5551001","600","from-queue","c","SIP/trunk-1","` + dstch + `","Queue","support","` + start + `",` + answer + `,"` + end + `",` +
			duration + "," + billsec + `,"` + disp + `","DOCUMENTATION","` + id + `",""` + "\n"
	}
	rows := row("2026-11-02 11:00:00", `"2026-11-02 11:00:06"`, "2026-11-02 11:00:20", "20", "14", "ANSWERED", "SIP/100-2", "u1") +
		row("2026-11-02 11:01:00", "", "2026-11-02 11:01:30", "99999999999999999", "0", "NO ANSWER", "", "u2") +
		row("2026-11-02 11:02:00", `"2026-11-02 11:02:05"`, "2026-11-02 11:02:30", "604801", "25", "ANSWERED", "SIP/100-3", "u3") +
		row("1970-01-01 01:00:00", "", "1970-01-01 01:00:09", "9", "0", "NO ANSWER", "", "u4") +
		row("2027-01-01 00:00:00", "", "2027-01-01 00:00:09", "9", "0", "NO ANSWER", "", "u5") +
		row("2026-11-02 11:29:51", "", "2026-11-02 11:30:00", "9", "0", "NO ANSWER", "", "u6")
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "collectors:\n  - {name: cdr, type: asterisk_cdr, schedule: \"@every 1m\", path: "+path+", time_zone: Europe/Berlin}\n")
	src := buildCollector(t, cfg, collectors.Env{})
	m := testModel(t, cfg)
	b, cursor := collectOnce(t, src, nil, time.Date(2026, 11, 2, 10, 5, 0, 0, time.UTC))
	got := strings.Join(cdrRejections(b), ", ")
	want := "bad_number Master.csv:2, bad_number Master.csv:3, bad_time Master.csv:4, bad_time Master.csv:5"
	if got != want {
		t.Errorf("rejections %s, want %s", got, want)
	}
	commitRun(t, m, "cdr", b, cursor)
	if len(b.Rejected) != 4 {
		t.Errorf("the model rejected more: %v", cdrRejections(b))
	}
	q := "channel=phone,collector=cdr,queue=support"
	expectValues(t, seriesValues(t, m), map[string]float64{
		"servq_calls_offered_total{" + q + "}":                                                     2,
		"servq_calls_answered_total{" + q + "}":                                                    1,
		"servq_calls_abandoned_total{" + q + "}":                                                   1,
		"servq_calls_abandoned_short_total{" + q + "}":                                             0,
		"servq_call_wait_seconds_sum{channel=phone,collector=cdr,outcome=answered,queue=support}":  6,
		"servq_call_wait_seconds_sum{channel=phone,collector=cdr,outcome=abandoned,queue=support}": 9,
	})
}
