"""CLI conventions that hold for every subcommand: --help exits 0 and prints
usage, an unknown option exits 2 with a one-line error, unknown commands exit 2."""
import re
import sys

from tl_check import Checker, run_tasklm

c = Checker("e2e/test_cli")

top = run_tasklm(["--help"])
c.check(top.returncode == 0, "tasklm --help exits 0", top.stderr)
commands = re.findall(r"^  (\S+)\s", top.stdout, re.M)
c.check(len(commands) >= 7, "tasklm --help lists the subcommands", top.stdout)

for cmd in commands:
    h = run_tasklm([cmd, "--help"])
    c.check(h.returncode == 0 and "usage" in (h.stdout + h.stderr).lower(),
            f"tasklm {cmd} --help exits 0 with a usage text", f"rc={h.returncode} {h.stderr[:200]}")
    bad = run_tasklm([cmd, "--no-such-flag"])
    lines = [l for l in bad.stderr.splitlines() if l.strip()]
    c.check(bad.returncode == 2, f"tasklm {cmd} --no-such-flag exits 2", f"rc={bad.returncode}")
    c.check(len(lines) >= 1 and "error" in lines[0].lower() and len(lines) <= 3,
            f"tasklm {cmd} --no-such-flag gives a short error", bad.stderr[:300])

u = run_tasklm(["no-such-command"])
c.check(u.returncode == 2 and "unknown command" in u.stderr, "unknown command exits 2", u.stderr)
n = run_tasklm([])
c.check(n.returncode == 2, "no command exits 2")

sys.exit(c.finish())
