package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"remediator/internal/auth"
)

func TestRunRefusesUnknownOrMissingCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), nil, func(string) string { return "" }, &out, &errOut); err == nil {
		t.Fatal("no command must fail")
	}
	if err := run(context.Background(), []string{"bogus"}, func(string) string { return "" }, &out, &errOut); err == nil ||
		!strings.Contains(errOut.String(), "usage") {
		t.Fatalf("unknown command: %v %q", err, errOut.String())
	}
}

func TestAPIRefusesToStartWithoutCredentials(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"api"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no API credentials") {
		t.Fatalf("the production API must fail closed without credentials, got %v", err)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &out); err != nil || out.Len() == 0 {
		t.Fatalf("version: %v %q", err, out.String())
	}
}

func TestAPIKeyCreatePrintsAUsableEntry(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"apikey", "create", "--name", "ci-bot", "--roles", "developer", "--repos", "acme/*"},
		func(string) string { return "" }, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	var key, entry string
	for i, l := range lines {
		if strings.HasPrefix(l, "API key") {
			key = strings.TrimSpace(lines[i+1])
		}
		if strings.HasPrefix(l, "Add this entry") {
			entry = strings.TrimSpace(lines[i+1])
		}
	}
	keys, err := auth.ParseAPIKeys(entry)
	if err != nil || len(keys) != 1 || keys[0].Name != "ci-bot" {
		t.Fatalf("entry %q: %v", entry, err)
	}
	if strings.Contains(entry, key) {
		t.Fatal("the configuration entry must not contain the key itself")
	}
	a := &auth.Authenticator{APIKeys: keys}
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("X-API-Key", key)
	p, err := a.Authenticate(req)
	if err != nil || p.Subject != "ci-bot" || !p.CanAccessRepo("acme/api") || p.CanAccessRepo("other/x") {
		t.Fatalf("minted key: %+v %v", p, err)
	}
}
