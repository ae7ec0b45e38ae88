#!/usr/bin/env bash
set -euo pipefail

# Trigger the release workflow.
curl -fsS -X POST \
  -H "Accept: application/vnd.github+json" \
  -H "Authorization: Bearer ⟦S:github-app⟧" \
  https://api.github.com/repos/example/orders/dispatches \
  -d '{"event_type":"release"}'

# Upload the artifact with the token from the CI secret store.
./upload --token "⟦L=$UPLOAD_TOKEN⟧" --sha "⟦L:sha1⟧" dist/orders.tar.gz

export SLACK_TOKEN=⟦S:slack-user⟧
