# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)
"""Re-apply the practable relay destinations after the relay host (re)starts.

The relay host keeps its rules in memory only, so every start of session.service loses them.
session-rules.service runs this after each start. Everything it does is the collection's one relay API
client (relay_host.py, installed beside this file; the relay_destination module runs the same code):
read the host plan (/etc/practable/plan.json) and each device's token file, wait for the API (bounded
retry with backoff), read the current rules and post only the rules that differ.

Exit status: 0 all rules in place, 1 the API never answered or a rule could not be applied,
2 the plan cannot be read.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import relay_host

LOG = logging.getLogger("apply-relay-rules")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--plan", default="/etc/practable/plan.json", help="the host plan")
    parser.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for the API")
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(name)s: %(levelname)s %(message)s", stream=sys.stderr)
    try:
        plan = relay_host.load_plan(args.plan)
        rules, problems = relay_host.rules_from_plan(plan)
    except relay_host.PlanError as exc:
        LOG.error("%s", exc)
        return 2
    for problem in problems:
        LOG.error("%s", problem)
    try:
        host = relay_host.RelayHost(plan["api_url"], timeout=args.request_timeout)
        host.wait(args.wait_timeout)
        _current, _after, add, update, _remove = relay_host.apply_rules(host, rules, [], purge=False)
    except relay_host.RelayHostError as exc:
        LOG.error("%s", exc)
        return 1
    for rule in add + update:
        LOG.info("rule %s %s -> %s", rule["id"], "added" if rule in add else "updated", rule["destination"])
    LOG.info(
        "%d rule(s) in place (%d posted), %d device(s) skipped", len(rules), len(add + update), len(problems)
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
