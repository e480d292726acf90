"""The molecule scenarios' platforms, read from their configuration (the one owner of which image and
which Python each scenario tests): .config/molecule/config.yml merged with molecule/<s>/molecule.yml,
environment variables substituted the way molecule does (${VAR}, ${VAR:-default}).

    e2e_platforms.py images SCENARIO...    one image per line (scripts/build-image.sh builds them)
    e2e_platforms.py targets SCENARIO...   "<image> <python> <platform>" per platform: the interpreter the
                                           analytics venv is made with (scripts/build-offline-inputs.sh
                                           asks it its version to build the matching wheelhouse)

The venv's interpreter is the platform's host_vars `analytics_python`, else its
`ansible_python_interpreter`, else the analytics role's default `analytics_python`.
"""

import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List

import yaml

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / ".config" / "molecule" / "config.yml"
_VAR = re.compile(r"\$(?:\$|\{(\w+)(?::?-([^}]*))?\}|(\w+))")


def interpolate(text: str) -> str:
    def one(m: "re.Match[str]") -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(3)
        value = os.environ.get(name, "")
        if not value and m.group(2) is not None:
            return m.group(2)
        return value

    return _VAR.sub(one, text)


def merge(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def load(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        return {}
    data = yaml.safe_load(interpolate(path.read_text()))
    return data if isinstance(data, dict) else {}


def role_default_python() -> str:
    defaults = load(ROOT / "roles" / "analytics" / "defaults" / "main.yml")
    value = str(defaults.get("analytics_python", "python3"))
    return "python3" if "{" in value else value


def platforms(scenario: str) -> List[Dict[str, str]]:
    sdir = ROOT / "molecule" / scenario
    if not (sdir / "molecule.yml").is_file():
        raise SystemExit(f"no scenario {scenario} (molecule/{scenario}/molecule.yml)")
    config = merge(load(BASE), load(sdir / "molecule.yml"))
    links = config.get("provisioner", {}).get("inventory", {}).get("links", {})
    host_vars = sdir / links["host_vars"] if "host_vars" in links else None
    out = []
    for p in config.get("platforms", []):
        hv: Dict[str, Any] = {}
        if host_vars is not None:
            hv = load(host_vars / f"{p['name']}.yml")
        python = hv.get("analytics_python") or hv.get("ansible_python_interpreter") or role_default_python()
        out.append({"name": p["name"], "image": p["image"], "python": str(python)})
    return out


def main(argv: List[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("images", "targets"):
        sys.stderr.write(__doc__ or "")
        return 2
    seen = []
    for scenario in argv[2:]:
        for p in platforms(scenario):
            line = p["image"] if argv[1] == "images" else f"{p['image']} {p['python']} {p['name']}"
            if line not in seen:
                seen.append(line)
    sys.stdout.write("".join(line + "\n" for line in seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
