package orchestrator

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"remediator/internal/codec"
	"remediator/internal/config"
	"remediator/internal/correlation"
	"remediator/internal/logging"
)

// Extras are the optional client settings a command adds on top of the
// connection profile: the SDK's metrics and tracing interceptors, and the
// payload codec's keys.
type Extras struct {
	MetricsHandler client.MetricsHandler
	Interceptors   []interceptor.ClientInterceptor
	// Codec encrypts every payload the client (and a worker built on it)
	// writes, failures included, and decrypts what it reads; nil writes
	// payloads in clear (REMEDIATOR_CODEC=off).
	Codec *codec.KeyRing
}

// Dial connects to the Temporal frontend the profile names (address,
// namespace, API key, TLS and mTLS, gRPC headers: the SDK's envconfig
// conventions) and fails fast when it does not answer.
func Dial(ctx context.Context, cfg config.Temporal, logger *slog.Logger, extras Extras) (client.Client, error) {
	opts, err := cfg.Profile.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return nil, fmt.Errorf("temporal client profile: %w", err)
	}
	opts.HostPort, opts.Namespace = cfg.Address, cfg.Namespace
	opts.Logger = logging.SDK(logger.With("component", "temporal-client"))
	// The correlation id of the HTTP request flows into workflow and
	// activity contexts through headers.
	opts.ContextPropagators = []workflow.ContextPropagator{correlation.Propagator{}}
	opts.ConnectionOptions.DialOptions = append(opts.ConnectionOptions.DialOptions, DialOptions()...)
	opts.MetricsHandler = extras.MetricsHandler
	opts.Interceptors = extras.Interceptors
	if extras.Codec != nil {
		opts.DataConverter = codec.DataConverter(extras.Codec)
		opts.FailureConverter = codec.FailureConverter(opts.DataConverter)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to Temporal at %s (namespace %s): %w", cfg.Address, cfg.Namespace, err)
	}
	return c, nil
}
