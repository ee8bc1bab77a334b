//go:build !production

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"remediator/internal/app"
	"remediator/internal/codec"
	"remediator/internal/config"
	"remediator/internal/devserver"
	"remediator/worker"
	"remediator/workflows"
)

// startStackOn is startStack with the API served on ln and its public URL
// set to it, so the embedded Web UI is configured with a codec endpoint the
// test can reach.
func startStackOn(t *testing.T, dataDir string, ports devserver.Ports, ln net.Listener, extraEnv ...string) *stack {
	t.Helper()
	env := map[string]string{"REMEDIATOR_DATA_DIR": dataDir, "REMEDIATOR_PUBLIC_URL": "http://" + ln.Addr().String()}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		env[extraEnv[i]] = extraEnv[i+1]
	}
	cfg, err := config.Load(config.ModeDev, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := app.StartDev(ctx, cfg, ports, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(d.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	s := &stack{t: t, cfg: cfg, ports: ports, dev: d, http: srv}
	t.Cleanup(s.stop)
	return s
}

func randomUpper(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// TestPayloadsAreEncryptedInHistory: a log excerpt with a planted secret,
// the diff and an approval comment never sit in workflow history in clear.
// A client without the keys reads the raw history and finds none of them;
// the API (whose client has the codec) still shows them; memo and search
// attributes stay readable and keep working; the embedded Web UI is set to
// the codec endpoint, which decodes the history's payloads for an admin.
func TestPayloadsAreEncryptedInHistory(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startStackOn(t, dir, ports, ln)
	ring, err := s.dev.Config.Codec.Ring()
	if err != nil || ring == nil {
		t.Fatalf("dev runs with the codec: %v", err)
	}

	logSecret, commentSecret := "AKIA"+randomUpper(16), "AKIA"+randomUpper(16)
	d := s.dev.Demo
	res := s.call("POST", "/api/remediations", "dev", map[string]string{
		"repo": d.Path, "ref": d.Branch, "failure_summary": d.FailureSummary,
		"log_excerpt": d.LogExcerpt + "\nexport AWS_ACCESS_KEY_ID=" + logSecret + "\n",
	}, "Idempotency-Key", "codec-1")
	if res.code != http.StatusAccepted {
		t.Fatalf("start: %d %v", res.code, res.body)
	}
	id := res.body["id"].(string)
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	diff := st["fix"].(map[string]any)["diff"].(string)
	diffLine := ""
	for _, l := range strings.Split(diff, "\n") {
		if strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++") && len(l) > len(diffLine) {
			diffLine = l
		}
	}
	if len(diffLine) < 8 {
		t.Fatalf("no distinctive line in the diff:\n%s", diff)
	}
	v := vote(st)
	v["comment"] = "checked; rotate " + commentSecret
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", v); r.code != 200 {
		t.Fatalf("approve: %d %v", r.code, r.body)
	}
	done := s.waitPhase(id, workflows.PhaseCompleted)

	// With the codec (the API's client): the status shows the diff and the comment.
	votes := done["votes"].([]any)
	if !strings.Contains(done["fix"].(map[string]any)["diff"].(string), diffLine) || len(votes) != 1 ||
		!strings.Contains(votes[0].(map[string]any)["comment"].(string), commentSecret) {
		t.Fatalf("the status lost what it shows: %v", done)
	}
	// The workflow read the memo's start signature (else it would warn that
	// it was not started through the API).
	if w, ok := done["warnings"].([]any); ok && len(w) > 0 {
		t.Fatalf("warnings: %v", w)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := client.DialContext(ctx, client.Options{HostPort: s.dev.Server.FrontendAddress(), Namespace: s.cfg.Temporal.Namespace,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	// Without the codec: the raw history holds none of the three in clear.
	var events, encrypted int
	it := raw.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		events++
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		for name, needle := range map[string]string{"the planted secret": logSecret, "the comment's secret": commentSecret, "a line of the diff": diffLine} {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("event %d (%s) holds %s in clear", ev.GetEventId(), ev.GetEventType(), name)
			}
		}
		// Every payload is encrypted but the memo, headers and search
		// attributes (which hold no secrets and must stay readable).
		err = proxy.VisitPayloads(ctx, ev, proxy.VisitPayloadsOptions{
			Visitor: func(vc *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				switch vc.Parent.(type) {
				case *commonpb.Memo, *commonpb.Header, *commonpb.SearchAttributes:
					for _, p := range ps {
						if codec.Encrypted(p) {
							t.Errorf("event %d: a %T payload is encrypted", ev.GetEventId(), vc.Parent)
						}
					}
					return ps, nil
				}
				for _, p := range ps {
					if !codec.Encrypted(p) || string(p.GetMetadata()[codec.MetadataKeyID]) != ring.CurrentID() {
						t.Errorf("event %d (%s): a %T payload is not encrypted with the current key: %v", ev.GetEventId(), ev.GetEventType(), vc.Parent, p.GetMetadata())
					}
					encrypted++
				}
				return ps, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("raw history: %d events, %d encrypted payloads, none of the secrets or the diff in clear", events, encrypted)
	if events < 10 || encrypted < 5 {
		t.Fatalf("%d events, %d encrypted payloads: not the history of a completed remediation", events, encrypted)
	}
	// A client without the keys cannot read the status either.
	if v, err := raw.QueryWorkflow(ctx, id, "", workflows.QueryStatus); err == nil {
		var st workflows.Status
		if v.Get(&st) == nil {
			t.Fatal("a client without the keys decoded the status")
		}
	}

	// With the codec, the same history gives the log excerpt back.
	first, err := s.dev.Client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT).Next()
	if err != nil {
		t.Fatal(err)
	}
	var in workflows.RemediationInput
	if err := codec.DataConverter(ring).FromPayloads(first.GetWorkflowExecutionStartedEventAttributes().GetInput(), &in); err != nil ||
		!strings.Contains(in.LogExcerpt, logSecret) {
		t.Fatalf("the input with the codec: %v", err)
	}

	// Memo and search attributes: in clear, read with the default converter,
	// and the API still finds, lists and de-duplicates by them.
	desc, err := raw.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	info := desc.GetWorkflowExecutionInfo()
	var requester, corr, repo string
	dc := converter.GetDefaultDataConverter()
	if dc.FromPayload(info.GetMemo().GetFields()[workflows.MemoRequester], &requester) != nil || requester != "dev" ||
		dc.FromPayload(info.GetMemo().GetFields()[workflows.MemoCorrelationID], &corr) != nil || corr != done["correlation_id"] ||
		dc.FromPayload(info.GetSearchAttributes().GetIndexedFields()[workflows.SearchAttrRepo], &repo) != nil || repo == "" {
		t.Fatalf("memo and search attributes must stay readable: requester %q correlation %q repo %q", requester, corr, repo)
	}
	again := s.call("POST", "/api/remediations", "dev", map[string]string{
		"repo": d.Path, "ref": d.Branch, "failure_summary": d.FailureSummary,
		"log_excerpt": d.LogExcerpt + "\nexport AWS_ACCESS_KEY_ID=" + logSecret + "\n",
	}, "Idempotency-Key", "codec-1")
	if again.code != http.StatusAccepted || again.body["id"] != id || again.body["existing"] != true {
		t.Fatalf("the same request again (memo request hash): %d %v", again.code, again.body)
	}
	if r := s.call("POST", "/api/remediations", "dev", map[string]string{"repo": d.Path, "failure_summary": "another"},
		"Idempotency-Key", "codec-1"); r.code != http.StatusConflict {
		t.Fatalf("the key for another request (memo request hash): %d %v", r.code, r.body)
	}
	listed := false
	for deadline := time.Now().Add(30 * time.Second); !listed && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, item := range s.call("GET", "/api/remediations?phase=Completed", "alice", nil).body["items"].([]any) {
			listed = listed || item.(map[string]any)["id"] == id
		}
	}
	if !listed {
		t.Fatal("the remediation is not listed (search attributes and memo)")
	}

	// The embedded Web UI is set to the codec endpoint with the access token
	// passed; the endpoint decodes the UI's history for an admin.
	uiURL := s.dev.Server.UIAddress()
	var settings struct {
		Codec struct {
			Endpoint        string
			PassAccessToken bool
		}
	}
	getJSON(t, uiURL+"/api/v1/settings", &settings)
	if want := "http://" + ln.Addr().String() + "/codec"; settings.Codec.Endpoint != want || !settings.Codec.PassAccessToken {
		t.Fatalf("the Web UI's codec settings: %+v, want endpoint %s with the access token", settings.Codec, want)
	}
	var history struct {
		History struct {
			Events []json.RawMessage `json:"events"`
		} `json:"history"`
	}
	rawHistory := getJSON(t, uiURL+"/api/v1/namespaces/default/workflows/"+id+"/history", &history)
	if len(history.History.Events) == 0 || bytes.Contains(rawHistory, []byte(logSecret)) || bytes.Contains(rawHistory, []byte(commentSecret)) {
		t.Fatalf("the UI's history: %d events, or a secret in clear", len(history.History.Events))
	}
	var started any
	_ = json.Unmarshal(history.History.Events[0], &started)
	payloads := encryptedPayloads(started)
	if len(payloads) != 1 {
		t.Fatalf("the UI's first event has %d encrypted payloads, want the input", len(payloads))
	}
	body, _ := json.Marshal(map[string]any{"payloads": payloads})
	codecCall := func(method, who string, body []byte) *http.Response {
		req, _ := http.NewRequest(method, settings.Codec.Endpoint+"/decode", bytes.NewReader(body))
		req.Header.Set("Origin", uiURL)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
		} else {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Namespace", "default")
			req.Header.Set("Authorization", "Bearer "+s.dev.Token(who))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	pre := codecCall(http.MethodOptions, "", nil)
	pre.Body.Close()
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != uiURL ||
		pre.Header.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, X-Namespace" {
		t.Fatalf("the UI's preflight: %d %v", pre.StatusCode, pre.Header)
	}
	if resp := codecCall(http.MethodPost, "alice", body); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an approver decoded: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	resp := codecCall(http.MethodPost, "admin", body)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var decoded struct {
		Payloads []struct {
			Data []byte `json:"data"`
		} `json:"payloads"`
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != uiURL || json.Unmarshal(out, &decoded) != nil ||
		len(decoded.Payloads) != 1 || !bytes.Contains(decoded.Payloads[0].Data, []byte(logSecret)) {
		t.Fatalf("decoding the UI's payload as admin: %d %s", resp.StatusCode, out)
	}

	// A history captured for the replay tests (make history) is written in
	// clear and replays without the keys.
	capDir := t.TempDir()
	s.save(capDir, "codec.json", id)
	f, err := os.Open(filepath.Join(capDir, "codec.json"))
	if err != nil {
		t.Fatal(err)
	}
	saved, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var savedIn workflows.RemediationInput
	if err := dc.FromPayloads(saved.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput(), &savedIn); err != nil || savedIn.ID != id {
		t.Fatalf("the captured history's input: %v", err)
	}
	replayer := sdkworker.NewWorkflowReplayer()
	worker.RegisterWorkflows(replayer)
	if err := replayer.ReplayWorkflowHistoryWithOptions(nil, saved, sdkworker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: id, RunID: saved.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()},
	}); err != nil {
		t.Fatalf("replaying the captured history: %v", err)
	}

	// A restart on the same data dir keeps the dev key (0600 in the data
	// dir): the worker still decodes the history to answer the status.
	s.stop()
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s2 := startStackOn(t, dir, ports, ln2)
	if ring2, _ := s2.dev.Config.Codec.Ring(); ring2 == nil || ring2.CurrentID() != ring.CurrentID() {
		t.Fatalf("the restart made another dev key: %v", ring2)
	}
	after := s2.waitPhase(id, workflows.PhaseCompleted)
	if !strings.Contains(after["fix"].(map[string]any)["diff"].(string), diffLine) {
		t.Fatalf("the status after a restart: %v", after)
	}
}

// getJSON GETs url, decodes the JSON answer into v and returns it raw.
func getJSON(t *testing.T, url string, v any) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return b
}

// encryptedPayloads finds the payloads (JSON objects with metadata and
// data) whose encoding is binary/encrypted, as the UI's API renders them.
func encryptedPayloads(v any) []any {
	var out []any
	switch v := v.(type) {
	case map[string]any:
		if md, ok := v["metadata"].(map[string]any); ok {
			if enc, _ := md["encoding"].(string); enc != "" {
				if b, err := base64.StdEncoding.DecodeString(enc); err == nil && string(b) == codec.EncodingEncrypted {
					return []any{v}
				}
			}
		}
		for _, c := range v {
			out = append(out, encryptedPayloads(c)...)
		}
	case []any:
		for _, c := range v {
			out = append(out, encryptedPayloads(c)...)
		}
	}
	return out
}

// TestProductionRefusesToStartWithoutCodecKeys: outside dev, `remediator
// api` and `remediator worker` without codec keys stop at start, naming the
// variable, before they dial anything.
func TestProductionRefusesToStartWithoutCodecKeys(t *testing.T) {
	env := map[string]string{
		"REMEDIATOR_API_TOKENS":       "ops:admin:0123456789abcdef0123",
		"REMEDIATOR_VOTE_SIGNING_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"REMEDIATOR_VOTE_PUBLIC_KEYS": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
		"REMEDIATOR_DATABASE_URL":     "postgres://remediator:pw@127.0.0.1:1/ledger",
		"TEMPORAL_ADDRESS":            "127.0.0.1:1", "REMEDIATOR_DATA_DIR": t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, run := range map[string]func(context.Context, func(string) string, io.Writer) error{"api": app.RunAPI, "worker": app.RunWorker} {
		err := run(ctx, func(k string) string { return env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "no payload codec keys: set REMEDIATOR_CODEC_KEYS") {
			t.Fatalf("remediator %s without codec keys: %v", name, err)
		}
	}
}
