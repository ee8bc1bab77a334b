package codec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

func key(t *testing.T, id string) Key {
	t.Helper()
	k, err := GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t *testing.T, keys ...Key) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const secret = "AKIAEXAMPLESECRET1234 and a diff line +\tfmt.Println(x)"

func TestRoundTrip(t *testing.T) {
	r := ring(t, key(t, "k1"))
	dc := DataConverter(r)
	p, err := dc.ToPayload(map[string]string{"log_excerpt": secret})
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Metadata[MetadataEncoding]) != EncodingEncrypted || string(p.Metadata[MetadataKeyID]) != "k1" || len(p.Metadata) != 2 {
		t.Fatalf("metadata: %v", p.Metadata)
	}
	if bytes.Contains(p.Data, []byte("AKIA")) || bytes.Contains(p.Data, []byte("json/plain")) {
		t.Fatal("the encrypted payload holds the value or its metadata in clear")
	}
	var got map[string]string
	if err := dc.FromPayload(p, &got); err != nil || got["log_excerpt"] != secret {
		t.Fatalf("round trip: %v %v", got, err)
	}
	// Two encryptions of one value differ (random nonce).
	q, _ := dc.ToPayload(map[string]string{"log_excerpt": secret})
	if bytes.Equal(p.Data, q.Data) {
		t.Fatal("the nonce is not random")
	}
	// The codec's Decode restores the default converter's payload exactly.
	plain, _ := converter.GetDefaultDataConverter().ToPayload(map[string]string{"log_excerpt": secret})
	dec, err := New(r).Decode([]*commonpb.Payload{p})
	if err != nil || !bytes.Equal(dec[0].Data, plain.Data) || string(dec[0].Metadata[MetadataEncoding]) != "json/plain" {
		t.Fatalf("decode: %v %v", dec, err)
	}
	// Many payloads at once (ToPayloads), and the default converter cannot read them.
	ps, err := dc.ToPayloads("a", 2, []byte("raw"))
	if err != nil || len(ps.Payloads) != 3 {
		t.Fatal(err)
	}
	var a string
	var b int
	var c []byte
	if err := dc.FromPayloads(ps, &a, &b, &c); err != nil || a != "a" || b != 2 || string(c) != "raw" {
		t.Fatalf("payloads: %q %d %q %v", a, b, c, err)
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &got); err == nil {
		t.Fatal("the default converter decoded an encrypted payload")
	}
}

func TestRotation(t *testing.T) {
	old, next := key(t, "2024-01"), key(t, "2025-06")
	before := DataConverter(ring(t, old))
	p, err := before.ToPayload(secret)
	if err != nil {
		t.Fatal(err)
	}
	// A new current key is prepended; the old one stays for reading.
	after := DataConverter(ring(t, next, old))
	var got string
	if err := after.FromPayload(p, &got); err != nil || got != secret {
		t.Fatalf("an old payload after the rotation: %q %v", got, err)
	}
	q, _ := after.ToPayload(secret)
	if id := string(q.Metadata[MetadataKeyID]); id != "2025-06" {
		t.Fatalf("new payloads use key %s, want the new current key", id)
	}
	// Dropping the old key too early is an error naming the id, not garbage.
	err = DataConverter(ring(t, next)).FromPayload(p, &got)
	if err == nil || !strings.Contains(err.Error(), `key id "2024-01"`) || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("unknown key id: %v", err)
	}
}

func TestTamperDetection(t *testing.T) {
	k := key(t, "k1")
	c := New(ring(t, k))
	enc, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"` + secret + `"`)}})
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(p *commonpb.Payload){
		"flipped ciphertext bit": func(p *commonpb.Payload) { p.Data[len(p.Data)-20] ^= 1 },
		"flipped nonce bit":      func(p *commonpb.Payload) { p.Data[0] ^= 0x80 },
		"truncated":              func(p *commonpb.Payload) { p.Data = p.Data[:10] },
		"relabelled key id":      func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k2") },
	} {
		p := &commonpb.Payload{Metadata: map[string][]byte{}, Data: bytes.Clone(enc[0].Data)}
		for k, v := range enc[0].Metadata {
			p.Metadata[k] = bytes.Clone(v)
		}
		mutate(p)
		// k2 holds k1's secret under another id: the id is bound to the ciphertext.
		c2 := New(ring(t, k, Key{ID: "k2", Secret: k.Secret}))
		if _, err := c2.Decode([]*commonpb.Payload{p}); err == nil {
			t.Errorf("%s: decoded", name)
		} else if strings.Contains(err.Error(), "AKIA") {
			t.Errorf("%s: the error quotes the plaintext: %v", name, err)
		}
	}
	// Another key under the same id does not open it either.
	if _, err := New(ring(t, key(t, "k1"))).Decode(enc); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("a foreign key with the same id: %v", err)
	}
}

func TestPlaintextPassesThrough(t *testing.T) {
	// Histories written before the codec existed keep working.
	plain, _ := converter.GetDefaultDataConverter().ToPayloads("written before the codec", nil)
	dc := DataConverter(ring(t, key(t, "k1")))
	var s string
	var n *int
	if err := dc.FromPayloads(plain, &s, &n); err != nil || s != "written before the codec" || n != nil {
		t.Fatalf("plaintext payloads: %q %v", s, err)
	}
	out, err := New(ring(t, key(t, "k1"))).Decode(plain.Payloads)
	if err != nil || out[0] != plain.Payloads[0] {
		t.Fatalf("Decode changed a plaintext payload: %v", err)
	}
}

func TestClearMemoValuesAreWrittenByTheDefaultConverter(t *testing.T) {
	dc := DataConverter(ring(t, key(t, "k1")))
	memo := ClearMemo(map[string]any{"requester": "dev", "generation": int64(3), "start_signature": (*struct{ Sig string })(nil)})
	for k, v := range memo {
		if _, err := dc.ToPayload(v); err == nil {
			t.Fatalf("%s: the codec's converter accepted a Clear value", k)
		}
		// The SDK's fallback: the default converter, whose payload decodes
		// as the wrapped value did before.
		p, err := converter.GetDefaultDataConverter().ToPayload(v)
		if err != nil || string(p.Metadata[MetadataEncoding]) != "json/plain" {
			t.Fatalf("%s: %v %v", k, p, err)
		}
	}
	p, _ := converter.GetDefaultDataConverter().ToPayload(memo["requester"])
	var who string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &who); err != nil || who != "dev" {
		t.Fatalf("requester: %q %v", who, err)
	}
	p, _ = converter.GetDefaultDataConverter().ToPayload(memo["generation"])
	var gen int64
	if err := converter.GetDefaultDataConverter().FromPayload(p, &gen); err != nil || gen != 3 {
		t.Fatalf("generation: %d %v", gen, err)
	}
	if _, err := dc.ToPayloads("x", Clear{V: "y"}); err == nil {
		t.Fatal("ToPayloads accepted a Clear value")
	}
}

func TestFailuresAreEncrypted(t *testing.T) {
	dc := DataConverter(ring(t, key(t, "k1")))
	fc := FailureConverter(dc)
	f := fc.ErrorToFailure(temporal.NewApplicationError("patch does not apply: "+secret, "PatchDoesNotApply"))
	if strings.Contains(f.String(), "AKIA") {
		t.Fatalf("the failure holds the message in clear: %v", f)
	}
	err := fc.FailureToError(f)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !strings.Contains(appErr.Error(), secret) || appErr.Type() != "PatchDoesNotApply" {
		t.Fatalf("decoded failure: %v", err)
	}
}

func TestParseKeys(t *testing.T) {
	k1, k2 := key(t, "k1"), key(t, "old.key_2-x")
	keys, err := ParseKeys(" " + k1.Encode() + " ,\n\n# rotated out in June\n  " + k2.Encode() + "\n")
	if err != nil || len(keys) != 2 || keys[0].ID != "k1" || keys[1].ID != "old.key_2-x" || !bytes.Equal(keys[1].Secret, k2.Secret) {
		t.Fatalf("keys: %v %v", keys, err)
	}
	// Unpadded base64 is accepted too.
	raw := "k3:" + base64.RawStdEncoding.EncodeToString(k1.Secret)
	if keys, err := ParseKeys(raw); err != nil || !bytes.Equal(keys[0].Secret, k1.Secret) {
		t.Fatalf("unpadded: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString(k1.Secret)
	for name, in := range map[string]string{
		"empty":         " , \n",
		"no colon":      b64,
		"no key":        "k1:",
		"bad id":        "k 1:" + b64,
		"long id":       strings.Repeat("k", 65) + ":" + b64,
		"not base64":    "k1:***",
		"short key":     "k1:" + base64.StdEncoding.EncodeToString(k1.Secret[:16]),
		"long key":      "k1:" + base64.StdEncoding.EncodeToString(append(bytes.Clone(k1.Secret), 0)),
		"duplicate ids": "k1:" + b64 + ",k1:" + b64,
	} {
		_, err := ParseKeys(in)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), b64[:12]) {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
	if _, err := NewKeyRing(); err == nil {
		t.Error("an empty ring")
	}
	if _, err := NewKeyRing(Key{ID: "k", Secret: []byte("short")}); err == nil {
		t.Error("a short key in a ring")
	}
	r := ring(t, k2, k1)
	if r.CurrentID() != "old.key_2-x" || strings.Join(r.IDs(), ",") != "old.key_2-x,k1" {
		t.Fatalf("ring: %s %v", r.CurrentID(), r.IDs())
	}
	if strings.Contains(k1.String(), b64) {
		t.Fatal("Key.String shows the secret")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "codec-keys")
	first, err := LoadOrCreateKeyFile(path)
	if err != nil || len(first) != 1 || !strings.HasPrefix(first[0].ID, "dev-") {
		t.Fatalf("created: %v %v", first, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi.Mode(), err)
	}
	again, err := LoadOrCreateKeyFile(path)
	if err != nil || again[0].ID != first[0].ID || !bytes.Equal(again[0].Secret, first[0].Secret) {
		t.Fatalf("reloaded another key: %v", err)
	}
	if err := os.WriteFile(path, []byte("nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a corrupt file: %v", err)
	}
}
