#!/usr/bin/env bash
# Render the HTML report of a freshly seeded database in headless Chromium.
#
# Seeds an SQLite database through the real CLI (apply, rotations that
# succeed, one that rolls back, an emergency rotation, a runbook edited
# afterwards), writes `rotator report -o html`, loads it in headless
# Chromium and fails if the page logs any console message (errors, CSP
# violations: the page must load nothing external). Saves a screenshot to
# docs/report.png and checks that the page prints (to PDF).
#
#   scripts/check-report-html.sh            # needs chromium: apt-get install -y chromium
#   CHROMIUM=/path/to/chrome scripts/check-report-html.sh
#   KEEP=1 scripts/check-report-html.sh     # keep the work directory
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$chromium" ]; then
	echo "check-report-html: no chromium found; install it (apt-get install -y chromium) or set CHROMIUM" >&2
	exit 1
fi
work=$(mktemp -d)
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work"; fi

cd "$root"
go build -o "$work/rotator" ./cmd/rotator
cp -r runbooks "$work/runbooks"
printf 'not a directory\n' >"$work/blocker"
cat >"$work/rotator.yaml" <<EOF
providers:
  api-keys: {type: generated, length: 40, prefix: "rtr_"}
  secrets: {type: generated, length: 64, alphabet: base64url}
targets:
  env: {type: file, path: $work/run/mcp.env, format: dotenv}
  blocked: {type: file, path: $work/blocker/sub/mcp.env, format: dotenv}
credentials:
  - {id: github-mcp-token, consumer: mcp-server-github, provider: api-keys, scope: [repo:read, issues:write], owner: platform-team,
     labels: {team: platform, env: prod}, max_age: 30d, grace: 0s, runbook: runbooks/generated.md#rotation,
     targets: [{target: env, key: GITHUB_TOKEN}]}
  - {id: notes-api-key, consumer: mcp-server-notes, provider: api-keys, scope: [notes:read], owner: platform-team,
     labels: {team: platform, env: prod}, max_age: 7d, grace: 0s, runbook: runbooks/generated.md#rotation,
     targets: [{target: env, key: NOTES_API_KEY}]}
  - {id: reports-db-password, consumer: mcp-server-postgres, provider: secrets, scope: ["SELECT on reporting.*"], owner: data-team,
     labels: {team: data, env: prod}, max_age: 30d, grace: 0s, runbook: runbooks/generated.md#rotation,
     targets: [{target: env, key: REPORTS_DB_PASSWORD}]}
  - {id: slack-webhook-secret, consumer: mcp-server-slack, provider: secrets, scope: [chat:write], owner: data-team,
     labels: {team: data, env: prod}, max_age: 14d, grace: 0s, runbook: runbooks/generated.md#rotation,
     targets: [{target: blocked, key: SLACK_SECRET}]}
  - {id: claude-desktop-gateway-token, consumer: claude-desktop, provider: secrets, scope: [mcp:tools], owner: ai-enablement,
     labels: {team: ai, env: dev}, max_age: 30d, grace: 0s, runbook: runbooks/generated.md#rotation,
     targets: [{target: env, key: GATEWAY_TOKEN}]}
EOF

export ROTATOR_DATABASE_URL="sqlite://$work/rotator.db"
r() { "$work/rotator" --log-level warn "$@"; }
r apply -f "$work/rotator.yaml" >/dev/null
# Every credential once; slack-webhook-secret cannot publish and rolls back.
r rotate --all --wait --actor alice --reason "initial rotation" >/dev/null || true
r rotate github-mcp-token notes-api-key --wait --actor bob >/dev/null
r rotate --selector team=platform --emergency --reason "token pasted in a public issue (INC-4711)" --wait --actor oncall >/dev/null
# The runbook changes after the runs followed it: the report flags them.
printf '\nReviewed again after INC-4711.\n' >>"$work/runbooks/generated.md"
r audit verify --seal >/dev/null
(cd "$work" && r report -o html --out "$work/report.html" --title "rotator audit report (demo)")

log="$work/chromium.log"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-extensions
	--disable-background-networking --enable-logging=stderr --v=0 --user-data-dir="$work/profile")
"$chromium" "${flags[@]}" --window-size=1400,1800 --screenshot="$work/report.png" "file://$work/report.html" 2>"$log" >/dev/null
"$chromium" "${flags[@]}" --print-to-pdf="$work/report.pdf" --no-pdf-header-footer "file://$work/report.html" 2>>"$log" >/dev/null

status=0
if grep -E 'CONSOLE|Uncaught|Refused to|Content Security Policy|net::ERR' "$log"; then
	echo "check-report-html: the page logged console messages (above)" >&2
	status=1
fi
for f in report.png report.pdf; do
	if [ ! -s "$work/$f" ]; then
		echo "check-report-html: chromium wrote no $f" >&2
		status=1
	fi
done
if [ "$status" -eq 0 ]; then
	cp "$work/report.png" "$root/docs/report.png"
	echo "check-report-html: report rendered without console messages; screenshot saved to docs/report.png ($(wc -c <"$work/report.pdf") byte PDF printed)"
fi
exit "$status"
