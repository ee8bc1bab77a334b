package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
