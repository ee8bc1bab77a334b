package vote

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GenerateKey makes a new signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// EncodePrivateKey writes key as a PKCS#8 PEM block, the format
// `openssl genpkey -algorithm ed25519` produces.
func EncodePrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodePublicKey is the form REMEDIATOR_VOTE_PUBLIC_KEYS takes: the raw
// 32-byte key in standard base64.
func EncodePublicKey(pub PublicKey) string { return base64.StdEncoding.EncodeToString(pub.Key) }

// ParsePrivateKey reads a PKCS#8 PEM Ed25519 key, or the base64 of a 32-byte
// seed.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("vote: PEM block %q, want PRIVATE KEY (PKCS#8 Ed25519)", block.Type)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("vote: %w", err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, errors.New("vote: the private key is not Ed25519")
		}
		return priv, nil
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("vote: want a PKCS#8 PEM Ed25519 key or the base64 of a 32-byte seed")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKeys reads verification keys: PEM "PUBLIC KEY" blocks, or
// base64 raw keys separated by commas or white space. Several keys allow a
// rotation: workers accept the old and the new key while the API switches.
func ParsePublicKeys(data []byte) ([]PublicKey, error) {
	var keys []PublicKey
	add := func(pub ed25519.PublicKey) {
		k := PublicKey{ID: KeyID(pub), Key: []byte(pub)}
		for _, have := range keys {
			if have.ID == k.ID {
				return
			}
		}
		keys = append(keys, k)
	}
	rest := data
	if strings.Contains(string(data), "-----BEGIN") {
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "PUBLIC KEY" {
				return nil, fmt.Errorf("vote: PEM block %q, want PUBLIC KEY", block.Type)
			}
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("vote: %w", err)
			}
			pub, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, errors.New("vote: a public key is not Ed25519")
			}
			add(pub)
		}
		if strings.TrimSpace(string(rest)) != "" {
			return nil, errors.New("vote: unexpected text after the PEM blocks")
		}
	} else {
		for _, f := range strings.FieldsFunc(string(data), func(r rune) bool {
			return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r'
		}) {
			b, err := base64.StdEncoding.DecodeString(f)
			if err != nil || len(b) != ed25519.PublicKeySize {
				return nil, errors.New("vote: a public key is neither PEM nor the base64 of 32 bytes")
			}
			add(ed25519.PublicKey(b))
		}
	}
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	return keys, nil
}

// LoadOrCreate reads the signing key at path, creating it (0600) when it does
// not exist. Only `remediator dev` uses it: production keys are provisioned.
func LoadOrCreate(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return ParsePrivateKey(data)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	pemBytes, err := EncodePrivateKey(key)
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
	if _, err := f.Write(pemBytes); err != nil {
		_ = f.Close()
		return nil, err
	}
	return key, f.Close()
}
