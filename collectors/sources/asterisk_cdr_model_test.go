package sources

import (
	"os"
	"path/filepath"
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
