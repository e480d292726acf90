#!/usr/bin/env bash
# promtool check rules + promtool test rules on the shipped alert rules and the analytics role's site
# rules template (rendered with the test schedule and with the role's defaults). Skips, saying why, when
# promtool (Debian package prometheus) is not installed. Usage: tests/prometheus/check.sh [PYTHON]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${1:-python3}"
if ! command -v promtool >/dev/null 2>&1; then
    echo "SKIPPED: promtool not installed (apt-get install prometheus)"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rules="$root/roles/analytics/files/prometheus/practable-analytics.rules"
mkdir -p "$work/schedule" "$work/defaults"
"$python" "$here/render_site_rules.py" \
    '{"analytics_metrics_mountpoint": "/var/analytics",
      "analytics_metrics_sessions": [{"days": [4], "start": "00:00", "end": "01:00"},
                                     {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:30"}]}' \
    "$work/schedule/practable-analytics-site.rules"
# the role's defaults, read from its defaults file (one owner of those values)
"$python" - "$root/roles/analytics/defaults/main.yml" "$work/defaults.json" <<'PY'
import json, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
json.dump({"analytics_metrics_mountpoint": "/", "analytics_metrics_sessions": d["analytics_metrics_sessions"]},
          open(sys.argv[2], "w"))
PY
"$python" "$here/render_site_rules.py" "$(cat "$work/defaults.json")" "$work/defaults/practable-analytics-site.rules"
for dir in schedule defaults; do
    cp "$rules" "$work/$dir/"
    promtool check rules "$work/$dir/practable-analytics.rules" "$work/$dir/practable-analytics-site.rules"
done
cp "$here/practable-analytics.test.yml" "$work/schedule/"
cp "$here/default-off.test.yml" "$work/defaults/"
promtool test rules "$work/schedule/practable-analytics.test.yml"
promtool test rules "$work/defaults/default-off.test.yml"
echo "promtool: rules checked and tested"
