package main

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otelmq/otelmq/examples/internal/embedded"
)

// rabbitReachable reports whether the broker the program would use answers,
// without the testcontainers fallback, which could take minutes.
func rabbitReachable() bool {
	u := os.Getenv("AMQP_URL")
	if u == "" {
		u = embedded.DefaultAMQPURL
	}
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := pu.Host
	if pu.Port() == "" {
		host = net.JoinHostPort(pu.Hostname(), "5672")
	}
	c, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// TestQuick runs the program on tiny counts and checks that every
// transport printed a row for each of its modes, that the SDK modes'
// spans were all exported (run fails on a drop, and the column says so),
// and that the targets and the path cost were printed.
func TestQuick(t *testing.T) {
	transports := []string{"memory", "kafka", "sqs"}
	if rabbitReachable() {
		transports = append(transports, "rabbitmq")
	} else if os.Getenv("CI") == "true" {
		t.Fatal("no RabbitMQ broker reachable (AMQP_URL or 127.0.0.1:5672), and CI=true requires one")
	} else {
		t.Log("no RabbitMQ broker reachable: skipping the rabbitmq part")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-quick", "-runs", "2", "-n", "30", "-sustained", "2000", "-transports", strings.Join(transports, ",")}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string][]string{
		"memory":   {modeRaw, modeNoop, modeSDK, modeRatio, modeRatioPB},
		"kafka":    {modeRaw, modeNoop, modeSDK, modeRatio, modeRatioPB, modeKotel, modeHooks},
		"rabbitmq": {modeRaw, modeNoop, modeSDK, modeRatio, modeRatioPB, modeHand},
		"sqs":      {modeRaw, modeNoop, modeSDK, modeRatio, modeRatioPB},
	}
	text := out.String()
	for _, tr := range transports {
		start := strings.Index(text, "\n== "+tr+":")
		if start < 0 {
			t.Errorf("no table for %s", tr)
			continue
		}
		section := text[start+1:]
		if end := strings.Index(section, "\n== "); end >= 0 {
			section = section[:end]
		}
		if strings.HasPrefix(section, "== "+tr+": skipped") {
			t.Errorf("%s was skipped", tr)
		}
		for _, m := range modes[tr] {
			row := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(m) + `\s+\d+\s.*$`).FindString(section)
			if row == "" {
				t.Errorf("%s: no row for mode %s", tr, m)
				continue
			}
			// A spans column of "N ok" means every run's exported count
			// equalled its ended count; SDK modes must have spans.
			// At 10% sampling a tiny run may sample nothing: only require
			// that nothing was dropped.
			want := `\s[1-9]\d* ok\s*$`
			if strings.Contains(m, "ratio") {
				want = `\s\d+ ok\s*$`
			}
			if strings.Contains(m, "sdk") && !regexp.MustCompile(want).MatchString(row) {
				t.Errorf("%s %s: spans not all exported, or none: %q", tr, m, row)
			}
		}
		if !strings.Contains(section, "target otelmq-noop throughput") || !strings.Contains(section, "target otelmq-sdk-ratio0.1 throughput") || !strings.Contains(section, "target otelmq-sdk-ratio0.1-pb throughput") {
			t.Errorf("%s: the no-op and 10%% sampling targets not printed", tr)
		}
	}
	if !strings.Contains(text, "== middleware path") || !strings.Contains(text, "beyond the carrier") {
		t.Error("no middleware path cost")
	}
	if !regexp.MustCompile(`(?m)^== sustained load: 2000 in-memory messages .* [1-9]\d* spans exported$`).MatchString(text) ||
		!regexp.MustCompile(`(?m)^\s+2000\s+\d+\.\d+\s+\d+\s*$`).MatchString(text) ||
		!strings.Contains(text, "target goroutines flat") {
		t.Error("no sustained-load table with its last checkpoint and targets")
	}
}

// TestSustainedVerdicts: growth per message is measured between the first
// and the last checkpoint, and a goroutine left behind is a MISS.
func TestSustainedVerdicts(t *testing.T) {
	flat := []checkpoint{{100, 2 << 20, 5}, {1000, 2<<20 + 900, 5}}
	for _, v := range sustainedVerdicts(flat) {
		if !v.ok {
			t.Errorf("flat run judged a MISS: %+v", v)
		}
	}
	leaky := []checkpoint{{100, 2 << 20, 5}, {1000, 2<<20 + 900*200, 6}}
	for _, v := range sustainedVerdicts(leaky) {
		if v.ok {
			t.Errorf("200 B/message and a goroutine more judged a PASS: %+v", v)
		}
	}
	if sustainedVerdicts(flat[:1]) != nil {
		t.Error("one checkpoint cannot be judged")
	}
}

// TestModesAndProfiles: -modes runs only the modes named and judges no
// targets; -cpuprofile and -memprofile write profiles pprof can read.
func TestModesAndProfiles(t *testing.T) {
	dir := t.TempDir()
	cpuOut, memOut := dir+"/cpu.out", dir+"/mem.out"
	var out bytes.Buffer
	err := run(context.Background(), []string{"-transports", "memory", "-modes", modeNoop, "-runs", "1", "-n", "50",
		"-path=false", "-sustained", "0", "-cpuprofile", cpuOut, "-memprofile", memOut}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !regexp.MustCompile(`(?m)^\s*` + modeNoop + `\s+\d+\s`).MatchString(text) {
		t.Error("no row for the mode asked for")
	}
	for _, m := range []string{modeRaw, modeSDK, modeRatio, modeRatioPB} {
		if regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(m) + `\s+\d+\s`).MatchString(text) {
			t.Errorf("mode %s ran though -modes did not name it", m)
		}
	}
	if strings.Contains(text, "target ") || !strings.Contains(text, "targets not judged") {
		t.Error("targets judged on a subset of the modes")
	}
	for _, f := range []string{cpuOut, memOut} {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			t.Errorf("profile %s not written: %v", f, err)
		}
	}
}
