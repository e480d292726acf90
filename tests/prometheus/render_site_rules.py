"""Render the analytics role's site rules template the way the role does, for promtool in the tests.

Usage: render_site_rules.py VARS_JSON OUT_FILE  (VARS_JSON: the role variables the template reads)
Plain Jinja2 (the template uses no Ansible filters), with Ansible's trim_blocks default.
"""

import json
import sys
from pathlib import Path

import jinja2

TEMPLATE = (
    Path(__file__).resolve().parents[2]
    / "roles"
    / "analytics"
    / "templates"
    / "prometheus"
    / "practable-analytics-site.rules.j2"
)


def main(argv: list) -> int:
    variables = json.loads(argv[1])
    variables.setdefault("analytics_metrics_managed", "rendered by tests/prometheus/render_site_rules.py")
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined, autoescape=False)
    text = env.from_string(TEMPLATE.read_text()).render(**variables)
    Path(argv[2]).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
