// Package deploycheck keeps the deployment files (compose, .env.example,
// Kubernetes manifests) true to the code: every variable they set is one
// the service reads (or a compose-only setting they document), and the
// manifests parse and probe the paths the processes serve.
package deploycheck

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const root = "../.."

var envName = regexp.MustCompile(`\b((?:REMEDIATOR|TEMPORAL|KLYNX|GITHUB|GITLAB|SLACK|REDIS)_[A-Z0-9_]+)\b`)

// served is every variable name the Go code reads: all string literals of
// that shape in non-test sources.
func served(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "deploy" || d.Name() == ".data" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`"([A-Z][A-Z0-9_]+)"`).FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Read by the SDK's envconfig for us (internal/config/temporal.go).
	for _, n := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS",
		"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
		"TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS_CLIENT_CERT_DATA", "TEMPORAL_TLS_CLIENT_KEY_DATA",
		"TEMPORAL_TLS_SERVER_CA_CERT_DATA", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "TEMPORAL_CLIENT_AUTHORITY"} {
		names[n] = true
	}
	return names
}

// The variables the compose file passes to the remediator containers, the
// Kubernetes ConfigMap and the secret examples are all read by the code.
func TestDeployedVariablesAreRead(t *testing.T) {
	names := served(t)
	check := func(file string, keys []string) {
		for _, k := range keys {
			if !names[k] {
				t.Errorf("%s sets %s, which the service does not read", file, k)
			}
		}
	}
	for _, f := range []string{"deploy/k8s/config.env", "deploy/k8s/api.secret.env.example", "deploy/k8s/common.secret.env.example"} {
		check(f, envFileKeys(t, filepath.Join(root, f)))
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]any `yaml:"environment"`
		} `yaml:"services"`
	}
	readYAML(t, filepath.Join(root, "docker-compose.yml"), &compose)
	for _, svc := range []string{"remediator-api", "remediator-worker"} {
		s, ok := compose.Services[svc]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %s", svc)
		}
		var keys []string
		for k := range s.Environment {
			if envName.MatchString(k) {
				keys = append(keys, k)
			}
		}
		if len(keys) < 10 {
			t.Fatalf("%s: only %d variables parsed", svc, len(keys))
		}
		check("docker-compose.yml "+svc, keys)
	}
}

// Every ${VAR} the compose file reads is documented in .env.example.
func TestEnvExampleDocumentsEveryComposeVariable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, k := range envFileKeys(t, filepath.Join(root, ".env.example")) {
		documented[k] = true
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`).FindAllSubmatch(b, -1) {
		if !documented[string(m[1])] {
			t.Errorf(".env.example does not document %s", m[1])
		}
	}
}

// The manifests parse, and the probes use the paths and ports the processes
// serve (api: REMEDIATOR_HTTP_ADDR; worker: REMEDIATOR_METRICS_ADDR).
func TestKubernetesManifests(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(root, "deploy/k8s/*.yaml"))
	if len(files) < 3 {
		t.Fatalf("manifests: %v", files)
	}
	deployments := map[string]map[string]any{}
	for _, f := range files {
		dec := yaml.NewDecoder(bytes.NewReader(mustRead(t, f)))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if doc == nil {
				continue
			}
			if doc["apiVersion"] == nil || doc["kind"] == nil {
				t.Errorf("%s: a document without apiVersion/kind", f)
			}
			if doc["kind"] == "Deployment" {
				name := doc["metadata"].(map[string]any)["name"].(string)
				deployments[name] = doc
			}
		}
	}
	for name, port := range map[string]int{"remediator-api": 8080, "remediator-worker": 9090} {
		d, ok := deployments[name]
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		spec := d["spec"].(map[string]any)
		if r, _ := spec["replicas"].(int); r < 2 {
			t.Errorf("%s: %v replicas, want at least 2", name, spec["replicas"])
		}
		pod := spec["template"].(map[string]any)["spec"].(map[string]any)
		c := pod["containers"].([]any)[0].(map[string]any)
		for probe, path := range map[string]string{"livenessProbe": "/livez", "readinessProbe": "/readyz"} {
			p, ok := c[probe].(map[string]any)
			if !ok {
				t.Errorf("%s: no %s", name, probe)
				continue
			}
			get := p["httpGet"].(map[string]any)
			if get["path"] != path {
				t.Errorf("%s: %s on %v, want %s", name, probe, get["path"], path)
			}
			if pt, ok := get["port"].(int); ok && pt != port {
				t.Errorf("%s: %s on port %d, want %d", name, probe, pt, port)
			}
		}
	}
}

func envFileKeys(t *testing.T, path string) []string {
	t.Helper()
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, path)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: %q is not KEY=value", path, line)
			continue
		}
		keys = append(keys, strings.TrimSpace(k))
	}
	if len(keys) == 0 {
		t.Fatalf("%s: no variables", path)
	}
	return keys
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(mustRead(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
