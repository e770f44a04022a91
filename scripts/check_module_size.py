"""House rule (ARCHITECTURE.md §9): warn on modules over 400 lines, fail over 800."""

from __future__ import annotations

import sys
from pathlib import Path

WARN, FAIL = 400, 800


def main() -> int:
    status = 0
    for path in sorted(Path("src").rglob("*.py")):
        lines = sum(1 for _ in path.open(encoding="utf-8"))
        if lines > FAIL:
            print(f"FAIL {path}: {lines} lines (limit {FAIL})")
            status = 1
        elif lines > WARN:
            print(f"warn {path}: {lines} lines (split beyond {WARN})")
    return status


if __name__ == "__main__":
    sys.exit(main())
