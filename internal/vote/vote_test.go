package vote

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func sample() Vote {
	return Vote{
		RemediationID: "rem-1", Approve: true, Actor: "alice", Roles: []string{"approver", "admin"},
		Channel: "api", DecisionID: "dec-1", DiffDigest: "abc", Comment: "lgtm",
		SignedAt: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC),
	}
}

func newSigner(t *testing.T) *Signer {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerify(t *testing.T) {
	s := newSigner(t)
	keys := []PublicKey{s.PublicKey()}
	v := sample()
	sig := s.Sign(v)
	if err := Verify(keys, v, sig); err != nil {
		t.Fatalf("a genuine vote must verify: %v", err)
	}
	// Role order carries no meaning.
	reordered := v
	reordered.Roles = []string{"admin", "approver"}
	if err := Verify(keys, reordered, sig); err != nil {
		t.Fatalf("role order must not matter: %v", err)
	}
	// Every covered field changes the message.
	mutations := map[string]func(*Vote){
		"remediation": func(v *Vote) { v.RemediationID = "rem-2" },
		"approve":     func(v *Vote) { v.Approve = false },
		"actor":       func(v *Vote) { v.Actor = "ghost" },
		"roles":       func(v *Vote) { v.Roles = []string{"approver"} },
		"channel":     func(v *Vote) { v.Channel = "slack" },
		"decision":    func(v *Vote) { v.DecisionID = "dec-2" },
		"digest":      func(v *Vote) { v.DiffDigest = "abd" },
		"comment":     func(v *Vote) { v.Comment = "lgtm!" },
		"reason":      func(v *Vote) { v.Reason = "x" },
		"time":        func(v *Vote) { v.SignedAt = v.SignedAt.Add(time.Nanosecond) },
		// Length prefixes: moving bytes between fields is a different vote.
		"shift": func(v *Vote) { v.Actor, v.Channel = "alicea", "pi" },
	}
	for name, mutate := range mutations {
		m := sample()
		mutate(&m)
		if err := Verify(keys, m, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: want ErrBadSignature, got %v", name, err)
		}
	}
	other := newSigner(t)
	if err := Verify(keys, v, other.Sign(v)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a key the worker does not know: want ErrUnknownKey, got %v", err)
	}
	forged := Signature{KeyID: sig.KeyID, Sig: other.Sign(v).Sig}
	if err := Verify(keys, v, forged); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another key's signature under our key id: want ErrBadSignature, got %v", err)
	}
	if err := Verify(nil, v, sig); !errors.Is(err, ErrNoKeys) {
		t.Errorf("no keys: want ErrNoKeys, got %v", err)
	}
	// A key whose id does not match its bytes is not trusted.
	bad := []PublicKey{{ID: sig.KeyID, Key: other.PublicKey().Key}}
	if err := Verify(bad, v, sig); err == nil {
		t.Error("a mislabelled key must not verify")
	}
}

func TestKeyFormats(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "vote.pem")
	k1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file must be 0600: %v %v", st, err)
	}
	k2, err := LoadOrCreate(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("LoadOrCreate must return the stored key: %v", err)
	}
	s, _ := NewSigner(k1)
	pub := s.PublicKey()

	// Base64 raw keys, comma or space separated, duplicates collapsed.
	other := newSigner(t).PublicKey()
	keys, err := ParsePublicKeys([]byte(EncodePublicKey(pub) + ", " + EncodePublicKey(other) + "\n" + EncodePublicKey(pub)))
	if err != nil || len(keys) != 2 || keys[0].ID != pub.ID || keys[1].ID != other.ID {
		t.Fatalf("base64 keys: %v %v", keys, err)
	}
	// PEM public keys.
	der, _ := x509.MarshalPKIXPublicKey(ed25519.PublicKey(pub.Key))
	pemKeys := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keys, err = ParsePublicKeys(pemKeys)
	if err != nil || len(keys) != 1 || keys[0].ID != pub.ID {
		t.Fatalf("PEM keys: %v %v", keys, err)
	}
	for _, bad := range []string{"", "not base64!", "AAAA", "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParsePublicKeys([]byte(bad)); err == nil {
			t.Errorf("ParsePublicKeys(%q) must fail", bad)
		}
	}
	// Private keys: PEM or base64 seed.
	pemPriv, _ := EncodePrivateKey(k1)
	if k, err := ParsePrivateKey(pemPriv); err != nil || !k.Equal(k1) {
		t.Fatalf("PEM private key: %v", err)
	}
	if k, err := ParsePrivateKey([]byte(" " + b64(k1.Seed()) + "\n")); err != nil || !k.Equal(k1) {
		t.Fatalf("seed private key: %v", err)
	}
	if _, err := ParsePrivateKey([]byte("short")); err == nil {
		t.Error("a bad private key must fail")
	}
}

func b64(b []byte) string { return EncodePublicKey(PublicKey{Key: b}) }

func TestStartSignature(t *testing.T) {
	s := newSigner(t)
	sig := s.SignStart("rem-1", "/r/a", "dev")
	if !s.VerifyStart("rem-1", "/r/a", "dev", sig) {
		t.Fatal("a genuine start must verify")
	}
	for _, f := range [][3]string{{"rem-2", "/r/a", "dev"}, {"rem-1", "/r/b", "dev"}, {"rem-1", "/r/a", "mallory"}} {
		if s.VerifyStart(f[0], f[1], f[2], sig) {
			t.Errorf("%v must not verify", f)
		}
	}
	if newSigner(t).VerifyStart("rem-1", "/r/a", "dev", sig) {
		t.Error("another key must not verify")
	}
	// A vote signature is no start signature.
	v := sample()
	if s.VerifyStart(v.RemediationID, "", v.Actor, s.Sign(v)) {
		t.Error("domains must be separate")
	}
}
