package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// idPattern bounds key ids: they travel in every payload's metadata.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Key is one AES-256 key and the id payloads name it by.
type Key struct {
	ID     string
	Secret []byte
}

// String names the key without its secret (it ends up in logs).
func (k Key) String() string { return k.ID }

// Encode is the key in the form REMEDIATOR_CODEC_KEYS takes:
// id:base64(secret). It holds the secret.
func (k Key) Encode() string { return k.ID + ":" + base64.StdEncoding.EncodeToString(k.Secret) }

// GenerateKey makes a random key named id.
func GenerateKey(id string) (Key, error) {
	if !idPattern.MatchString(id) {
		return Key{}, fmt.Errorf("codec: key id %q: want 1-64 of A-Z a-z 0-9 . _ -", id)
	}
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, err
	}
	return Key{ID: id, Secret: secret}, nil
}

// ParseKeys reads "id:base64key" entries separated by commas or line
// breaks (blank lines and lines starting with # are skipped; spaces around
// entries are ignored). The first key is the current one. Ids are
// [A-Za-z0-9._-]{1,64}, keys exactly 32 bytes in standard base64 (as
// `openssl rand -base64 32` prints them), ids unique. Errors never quote a
// key.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	n := 0
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, entry := range strings.Split(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			id, b64, ok := strings.Cut(entry, ":")
			id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
			if !ok || b64 == "" {
				return nil, fmt.Errorf("entry %d is not id:base64key", n)
			}
			if !idPattern.MatchString(id) {
				return nil, fmt.Errorf("entry %d: key id %q: want 1-64 of A-Z a-z 0-9 . _ -", n, clip(id))
			}
			secret, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				secret, err = base64.RawStdEncoding.DecodeString(b64)
			}
			if err != nil {
				return nil, fmt.Errorf("key %s: not base64", id)
			}
			if len(secret) != KeySize {
				return nil, fmt.Errorf("key %s: %d bytes, want exactly %d (openssl rand -base64 32)", id, len(secret), KeySize)
			}
			if seen[id] {
				return nil, fmt.Errorf("key id %s is listed twice", id)
			}
			seen[id] = true
			keys = append(keys, Key{ID: id, Secret: secret})
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	return keys, nil
}

func clip(s string) string {
	if len(s) > 70 {
		return s[:70] + "…"
	}
	return s
}

// KeyRing holds the current key, which encrypts, and older ones, which
// only decrypt: a payload names its key by id.
type KeyRing struct {
	current string
	ids     []string
	aeads   map[string]cipher.AEAD
}

// NewKeyRing builds a ring from keys; the first is the current one.
func NewKeyRing(keys ...Key) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: a key ring needs at least one key")
	}
	r := &KeyRing{current: keys[0].ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if !idPattern.MatchString(k.ID) {
			return nil, fmt.Errorf("codec: key id %q: want 1-64 of A-Z a-z 0-9 . _ -", clip(k.ID))
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("codec: key %s: %d bytes, want %d", k.ID, len(k.Secret), KeySize)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("codec: key id %s is listed twice", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("codec: key %s: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %s: %w", k.ID, err)
		}
		r.aeads[k.ID] = aead
		r.ids = append(r.ids, k.ID)
	}
	return r, nil
}

// CurrentID is the id of the key new payloads are encrypted with.
func (r *KeyRing) CurrentID() string { return r.current }

// IDs lists every key id, the current one first.
func (r *KeyRing) IDs() []string { return append([]string(nil), r.ids...) }

// LoadOrCreateKeyFile reads the keys in path (ParseKeys' format), or, when
// it does not exist, writes a new random key there (mode 0600) and returns
// it. `remediator dev` keeps its key in the data dir this way, so a restart
// still reads the histories it wrote.
func LoadOrCreateKeyFile(path string) ([]Key, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		keys, err := ParseKeys(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return keys, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	key, err := GenerateKey("dev-" + hex.EncodeToString(suffix))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	content := "# remediator dev payload codec key (REMEDIATOR_CODEC_KEYS format); deleting it makes the histories here unreadable\n" +
		key.Encode() + "\n"
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close()
		return nil, err
	}
	return []Key{key}, f.Close()
}
