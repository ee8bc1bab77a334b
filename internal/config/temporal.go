package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.temporal.io/sdk/contrib/envconfig"
)

// temporalAliases are the variable names this service read before it
// followed the SDK's conventions. They keep working for one release, with a
// deprecation line at start; setting both names to different values is an
// error.
var temporalAliases = []struct{ old, current string }{
	{"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_CLIENT_CERT_PATH"},
	{"TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CLIENT_KEY_PATH"},
	{"TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
}

// envLookup adapts getenv to envconfig. An empty variable counts as unset,
// as everywhere else in this configuration.
type envLookup struct {
	getenv  func(string) string
	aliases map[string]string // current name -> old name
}

func (e envLookup) LookupEnv(key string) (string, bool) {
	if v := strings.TrimSpace(e.getenv(key)); v != "" {
		return v, true
	}
	if old, ok := e.aliases[key]; ok {
		if v := strings.TrimSpace(e.getenv(old)); v != "" {
			return v, true
		}
	}
	return "", false
}

// Environ lists the TEMPORAL_GRPC_META_* headers (the only thing envconfig
// enumerates the environment for), read through getenv.
func (e envLookup) Environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TEMPORAL_GRPC_META_") {
			if v := e.getenv(k); v != "" {
				out = append(out, k+"="+v)
			}
		}
	}
	return out
}

// loadTemporal reads the Temporal client settings the way the SDK's
// envconfig does (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
// TEMPORAL_TLS*, TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE …), with the old
// names as aliases.
//
// In dev the embedded server is the cluster: no profile file is read (a
// developer's CLI profile for another cluster must not leak in), and no TLS
// or API key applies.
func loadTemporal(mode Mode, getenv func(string) string) (Temporal, error) {
	var t Temporal
	var errs []error
	aliases := map[string]string{}
	for _, a := range temporalAliases {
		old, cur := strings.TrimSpace(getenv(a.old)), strings.TrimSpace(getenv(a.current))
		if old == "" {
			continue
		}
		if cur != "" && cur != old {
			errs = append(errs, fmt.Errorf("%s and its deprecated alias %s disagree: set only %s", a.current, a.old, a.current))
			continue
		}
		aliases[a.current] = a.old
		t.Deprecated = append(t.Deprecated, fmt.Sprintf("%s is deprecated and will be removed in the next release: use %s", a.old, a.current))
	}
	opts := envconfig.LoadClientConfigProfileOptions{
		EnvLookup:         envLookup{getenv: getenv, aliases: aliases},
		ConfigFilePath:    strings.TrimSpace(getenv("TEMPORAL_CONFIG_FILE")),
		ConfigFileProfile: strings.TrimSpace(getenv("TEMPORAL_PROFILE")),
	}
	if mode == ModeDev {
		opts = envconfig.LoadClientConfigProfileOptions{DisableFile: true, EnvLookup: envLookup{getenv: func(k string) string {
			if k == "TEMPORAL_NAMESPACE" {
				return getenv(k)
			}
			return ""
		}}}
	}
	prof, err := envconfig.LoadClientConfigProfile(opts)
	if err != nil {
		errs = append(errs, fmt.Errorf("temporal client profile (TEMPORAL_CONFIG_FILE/TEMPORAL_PROFILE): %w", err))
	}
	if prof.Address == "" {
		prof.Address = "127.0.0.1:7233"
	}
	if prof.Namespace == "" {
		prof.Namespace = "default"
	}
	if tls := prof.TLS; tls != nil && !tls.Disabled {
		if (tls.ClientCertPath == "" && len(tls.ClientCertData) == 0) != (tls.ClientKeyPath == "" && len(tls.ClientKeyData) == 0) {
			errs = append(errs, errors.New("TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH must be set together"))
		}
	}
	// TLS switched off while credentials or certificates are configured
	// would send the API key in clear, or silently drop mTLS: refuse.
	if tls := prof.TLS; tls != nil && tls.Disabled {
		hasFiles := tls.ClientCertPath != "" || len(tls.ClientCertData) > 0 || tls.ClientKeyPath != "" || len(tls.ClientKeyData) > 0 ||
			tls.ServerCACertPath != "" || len(tls.ServerCACertData) > 0
		if prof.APIKey != "" || hasFiles {
			errs = append(errs, errors.New("TEMPORAL_TLS=false with an API key or TLS certificates: the key would be sent in clear or mTLS dropped; remove TEMPORAL_TLS=false"))
		}
	}
	t.Profile = prof
	t.Address, t.Namespace = prof.Address, prof.Namespace
	t.TLS = (prof.TLS != nil && !prof.TLS.Disabled) || (prof.TLS == nil && prof.APIKey != "")
	return t, errors.Join(errs...)
}
