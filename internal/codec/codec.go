// Package codec keeps payloads out of workflow history in clear: a
// converter.PayloadCodec that encrypts every payload with AES-256-GCM
// (log excerpts, diffs, comments, statuses — whatever the service writes),
// with keys from configuration that can rotate.
//
// An encrypted payload is the whole serialized payload (metadata and data),
// sealed with the current key under a random 12-byte nonce:
//
//	metadata: encoding = binary/encrypted, encryption-key-id = <key id>
//	data:     nonce (12 bytes) || AES-256-GCM(proto(payload)), key id as associated data
//
// Decoding picks the key by the id in the metadata, so older keys keep
// reading the histories they wrote; a payload that is not encrypted passes
// through unchanged (histories written before the codec, memo fields).
//
// Memo fields stay in clear on purpose: workflow code and the API read them
// with the default converter, and they hold no secrets (correlation id,
// request hash, requester, start token and signature). The SDK encodes a
// memo with the client's data converter and, when that fails, with its
// default one (SDK flag MemoUserDCEncode); DataConverter refuses values
// wrapped in Clear, so ClearMemo's fields take that path and are written as
// plain JSON, exactly as before the codec existed. Search attributes never
// go through a data converter: the server indexes them.
package codec

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	MetadataEncoding  = converter.MetadataEncoding // "encoding"
	EncodingEncrypted = "binary/encrypted"
	MetadataKeyID     = "encryption-key-id"
)

const nonceSize = 12

// Codec encrypts and decrypts payloads with a key ring.
type Codec struct {
	ring *KeyRing
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns the codec of ring.
func New(ring *KeyRing) *Codec { return &Codec{ring: ring} }

// Encode encrypts every payload with the current key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	id := c.ring.current
	aead := c.ring.aeads[id]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: serializing payload %d: %w", i, err)
		}
		buf := make([]byte, nonceSize, nonceSize+len(plain)+aead.Overhead())
		if _, err := rand.Read(buf); err != nil {
			return payloads, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:    []byte(id),
			},
			Data: aead.Seal(buf, buf, plain, []byte(id)),
		}
	}
	return out, nil
}

// Decode decrypts encrypted payloads with the key their metadata names and
// passes every other payload through.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if !Encrypted(p) {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.ring.aeads[id]
		if !ok {
			return payloads, fmt.Errorf("codec: payload %d is encrypted with key id %q, which is not configured (known: %s)",
				i, clip(id), strings.Join(c.ring.ids, ", "))
		}
		data := p.GetData()
		if len(data) < nonceSize+aead.Overhead() {
			return payloads, fmt.Errorf("codec: payload %d (key %s) is too short to be encrypted", i, id)
		}
		plain, err := aead.Open(nil, data[:nonceSize], data[nonceSize:], []byte(id))
		if err != nil {
			return payloads, fmt.Errorf("codec: payload %d does not decrypt with key %s: tampered with, or another key under the same id", i, id)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return payloads, fmt.Errorf("codec: payload %d (key %s): %w", i, id, err)
		}
		out[i] = &dec
	}
	return out, nil
}

// HTTPHandler serves Temporal's remote codec protocol (POST …/encode and
// …/decode, {"payloads": […]} both ways) with the ring's codec, for the Web
// UI and the CLI. It does not authenticate: mount it behind the API's.
func HTTPHandler(ring *KeyRing) http.Handler {
	return converter.NewPayloadCodecHTTPHandler(New(ring))
}

// Encrypted reports whether p is a payload this codec encrypted.
func Encrypted(p *commonpb.Payload) bool {
	return string(p.GetMetadata()[MetadataEncoding]) == EncodingEncrypted
}

// DataConverter is the SDK's default converter with the codec applied to
// every payload (converter.NewCodecDataConverter), except values wrapped in
// Clear, which it refuses so that the SDK's memo path writes them with its
// default converter (see the package comment).
func DataConverter(ring *KeyRing) converter.DataConverter {
	return dataConverter{converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), New(ring))}
}

// FailureConverter moves failure messages and stack traces into an encoded
// attribute payload, which the data converter encrypts: an error that
// quotes its input leaks nothing into history either.
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc, EncodeCommonAttributes: true})
}

// errClear is what DataConverter answers for a Clear value.
var errClear = errors.New("codec: a Clear value is written by the default data converter")

type dataConverter struct{ converter.DataConverter }

func (d dataConverter) ToPayload(value any) (*commonpb.Payload, error) {
	if _, ok := value.(Clear); ok {
		return nil, errClear
	}
	return d.DataConverter.ToPayload(value)
}

func (d dataConverter) ToPayloads(values ...any) (*commonpb.Payloads, error) {
	for _, v := range values {
		if _, ok := v.(Clear); ok {
			return nil, errClear
		}
	}
	return d.DataConverter.ToPayloads(values...)
}

// WithSerializationContext keeps the wrapper around a context-aware copy.
func (d dataConverter) WithSerializationContext(ctx converter.SerializationContext) converter.DataConverter {
	return dataConverter{converter.WithDataConverterSerializationContext(d.DataConverter, ctx)}
}

// Clear marks a memo value that must stay readable without the keys. It is
// written as the JSON of V, the same payload the default converter makes
// for V itself, so readers decode V as before.
type Clear struct{ V any }

// MarshalJSON writes V.
func (c Clear) MarshalJSON() ([]byte, error) { return json.Marshal(c.V) }

// ClearMemo wraps every memo value in Clear.
func ClearMemo(memo map[string]any) map[string]any {
	out := make(map[string]any, len(memo))
	for k, v := range memo {
		out[k] = Clear{V: v}
	}
	return out
}
