package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/mcp/proxy"
)

func (a *app) proxyCommand() *cobra.Command {
	var (
		spec    proxy.Spec
		headers []string
		file    string
		output  string
		source  sourceFlags
	)
	cmd := &cobra.Command{
		Use:   "proxy --listen ADDR --upstream URL --credential ID [flags] | proxy --config FILE",
		Short: "Proxy a streamable-HTTP MCP server, injecting the current credential into each request",
		Long: `Run a local reverse proxy in front of a remote MCP server (streamable HTTP):
the MCP client is pointed at the proxy's URL and holds no secret; the proxy adds
the credential's current value to every request it forwards, so a rotation
needs no client restart.

The value is read once at start, kept in memory, and replaced in the
background when a rotation cuts over. It is read from the database (with the
master key, as 'rotator rotate' does) by default, from the service's Unix
socket with --socket (a long poll tells the proxy of a cutover), or from its
consume API with --url and --token-ref. When the upstream answers 401 anyway
(a cutover not yet seen), the proxy reads the value again and sends that
request once more.
Every read is recorded in the audit log as a value.read event.

By default the proxy sets "Authorization: Bearer {ID}" with the credential
given by --credential; --header NAME=TEMPLATE sets other headers (repeatable),
where {ID} stands for the current value of credential ID and {{ }} for literal
braces. A client's own Authorization header and any header the proxy sets are
removed (no token passthrough); a request mapping a tool parameter onto one of
them (x-mcp-header, sent as Mcp-Param-NAME) is refused. Requests addressed to
another host than localhost, or from a web page of another origin, are refused
(DNS rebinding). With --client-token REF the client must present that token as
"Authorization: Bearer TOKEN"; REF is a secret reference (${env:NAME},
${file:PATH}, ${aws-sm:ID}), never the token.

The proxy listens on loopback only, unless --tls-cert and --tls-key are given;
an http:// upstream must be on loopback too (https:// otherwise). The
proxy's root path maps to the upstream URL; a path below it is appended.

With --config FILE, each entry of the file's proxies: list is one upstream
with its own listen address:

  proxies:
    - name: github
      listen: 127.0.0.1:7070
      upstream: https://api.githubcopilot.com/mcp/
      credential: github-mcp-token
    - name: notes
      listen: 127.0.0.1:7071
      upstream: https://notes.example.com/mcp
      headers: {X-API-Key: "{notes-api-key}"}
      client_token: ${file:/run/user/1000/rotator/notes-client-token}

When it listens, the proxy prints each upstream's URL (-o json: one object
{"proxies": [...]}, with "url" for the client). Headers and bodies are never
logged. SIGINT or SIGTERM stops it.`,
		Example: `  rotator proxy --listen 127.0.0.1:7070 --credential github-mcp-token \
      --upstream https://api.githubcopilot.com/mcp/
  rotator proxy --listen 127.0.0.1:7071 --upstream https://notes.example.com/mcp \
      --header 'X-API-Key={notes-api-key}' --client-token '${file:/run/user/1000/notes-token}'
  rotator proxy --config proxies.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON); err != nil {
				return err
			}
			ups, err := proxyUpstreams(cmd, file, spec, headers)
			if err != nil {
				return err
			}
			if err := proxy.Validate(ups); err != nil {
				return usageError{err}
			}
			ctx := cmd.Context()
			src, err := a.openSource(ctx, source)
			if err != nil {
				return err
			}
			defer src.release()
			p, err := proxy.New(src.Source, ups, proxy.Options{Logger: a.logger, Redactor: a.redactor})
			if err != nil {
				return usageError{err}
			}
			err = p.Run(ctx, func(ls []proxy.Listening) {
				if output == formatJSON {
					_ = writeData(a.stdout, formatJSON, map[string]any{"proxies": ls})
					return
				}
				for _, l := range ls {
					token := ""
					if l.ClientToken {
						token = "; client token required"
					}
					fmt.Fprintf(a.stdout, "proxy %s: %s -> %s (injects %s%s)\n", l.Upstream, l.URL, l.Target, strings.Join(l.Credentials, ", "), token)
				}
			})
			switch {
			case errors.Is(err, delivery.ErrNotFound):
				return notFound(err)
			case err != nil:
				return err
			}
			stats := p.Stats()
			a.logger.Info("proxy stopped", slog.Int64("requests", stats.Requests), slog.Int64("refused", stats.Refused),
				slog.Int64("retried_after_401", stats.Retried), slog.Int64("upstream_errors", stats.UpstreamErrors))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Listen, "listen", "", "address to listen on, such as 127.0.0.1:7070 (loopback unless --tls-cert and --tls-key are given; port 0 picks a free one)")
	f.StringVar(&spec.URL, "upstream", "", "the MCP server's streamable-HTTP endpoint (https://, or http:// on loopback)")
	f.StringVar(&spec.Credential, "credential", "", "credential id whose value is injected as Authorization: Bearer VALUE (unless --header is given)")
	f.StringArrayVar(&headers, "header", nil, "header to inject, NAME=TEMPLATE, where {ID} is credential ID's current value (repeatable), such as 'X-API-Key={notes-api-key}'")
	f.StringVar(&spec.ClientToken, "client-token", "", "secret reference (${env:NAME}, ${file:PATH}, ${aws-sm:ID}) to a token the client must send as Authorization: Bearer TOKEN")
	f.StringVar(&spec.TLSCert, "tls-cert", "", "PEM certificate file to serve TLS with (needed to listen off loopback)")
	f.StringVar(&spec.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	f.StringVar(&file, "config", "", "proxy configuration file listing several upstreams (instead of the flags above)")
	source.register(cmd)
	outputFlag(cmd, &output, formatText, formatText, formatJSON)
	return cmd
}

// proxyUpstreams returns the upstreams of --config, or the one the flags
// give.
func proxyUpstreams(cmd *cobra.Command, file string, spec proxy.Spec, headers []string) ([]proxy.Upstream, error) {
	if file != "" {
		for _, name := range []string{"listen", "upstream", "credential", "header", "client-token", "tls-cert", "tls-key"} {
			if cmd.Flags().Changed(name) {
				return nil, usagef("--%s cannot be combined with --config: the file gives every upstream's settings", name)
			}
		}
		return proxy.LoadConfig(file)
	}
	switch {
	case spec.Listen == "":
		return nil, usagef("--listen is required (such as 127.0.0.1:7070), or --config FILE")
	case spec.URL == "":
		return nil, usagef("--upstream is required: the MCP server's endpoint, such as https://mcp.example.com/mcp")
	}
	for _, h := range headers {
		name, tmpl, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, usagef("--header must be NAME=TEMPLATE, such as 'Authorization=Bearer {credential-id}'")
		}
		spec.Headers = append(spec.Headers, proxy.Header{Name: strings.TrimSpace(name), Template: tmpl})
	}
	spec.Name = "default"
	u, err := spec.Resolve()
	if err != nil {
		return nil, usageError{err}
	}
	return []proxy.Upstream{u}, nil
}
