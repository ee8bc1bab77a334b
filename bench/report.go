//go:build !production

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// figure is one line of the table.
type figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Goal is the target as text; empty when the figure is context.
	Goal string `json:"goal,omitempty"`
	// Met is nil when the figure has no goal (or could not be judged).
	Met *bool `json:"met,omitempty"`
	// Note qualifies the value (e.g. "extrapolated").
	Note string `json:"note,omitempty"`
}

// scenario is one block of the report.
type scenario struct {
	Name    string         `json:"name"`
	Title   string         `json:"title"`
	Params  map[string]any `json:"params"`
	Figures []figure       `json:"figures"`
	Notes   []string       `json:"notes,omitempty"`
	Details map[string]any `json:"details,omitempty"`
	Error   string         `json:"error,omitempty"`
	Seconds float64        `json:"seconds"`
}

func (s *scenario) add(f figure) { s.Figures = append(s.Figures, f) }

func (s *scenario) note(format string, args ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
}

func met(ok bool) *bool { return &ok }

type machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	CPUModel   string `json:"cpu_model,omitempty"`
	Hostname   string `json:"hostname,omitempty"`
}

func describeMachine() machine {
	m := machine{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
	}
	m.Hostname, _ = os.Hostname()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

type source struct {
	Commit string `json:"commit,omitempty"`
	Dirty  bool   `json:"dirty"`
}

// describeSource reads (never changes) the checkout's commit.
func describeSource() source {
	var s source
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		s.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		s.Dirty = len(strings.TrimSpace(string(out))) > 0
	}
	return s
}

// report is the JSON document written to bench/results/<timestamp>.json.
type report struct {
	Timestamp time.Time      `json:"timestamp"`
	Machine   machine        `json:"machine"`
	Source    source         `json:"source"`
	Flags     map[string]any `json:"flags"`
	Service   map[string]any `json:"service"`
	Notes     []string       `json:"notes"`
	Scenarios []*scenario    `json:"scenarios"`
	Seconds   float64        `json:"total_seconds"`
}

func (r *report) writeJSON(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, r.Timestamp.UTC().Format("20060102T150405Z")+".json")
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

func (r *report) printTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\nremediator benchmark  %s  %s/%s  %d CPU  %s  %s\n", r.Timestamp.UTC().Format(time.RFC3339),
		m.GOOS, m.GOARCH, m.NumCPU, m.GoVersion, orDash(m.CPUModel))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tGOAL\tMET?")
	for _, s := range r.Scenarios {
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\t(error)\t%s\t\t\n", s.Title, s.Error)
		}
		for i, f := range s.Figures {
			title := ""
			if i == 0 && s.Error == "" {
				title = s.Title
			}
			val := formatValue(f.Value, f.Unit)
			if f.Note != "" {
				val += " (" + f.Note + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", title, f.Name, val, orDash(f.Goal), metText(f.Met, f.Goal))
		}
	}
	tw.Flush()
	for _, s := range r.Scenarios {
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  [%s] %s\n", s.Name, n)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  * %s\n", n)
	}
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "/s":
		return fmt.Sprintf("%.1f /s", v)
	case "x":
		return fmt.Sprintf("%.3f×", v)
	case "B":
		return fmt.Sprintf("%.0f B", v)
	case "":
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

func metText(m *bool, goal string) string {
	switch {
	case goal == "":
		return ""
	case m == nil:
		return "?"
	case *m:
		return "yes"
	}
	return "NO"
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
