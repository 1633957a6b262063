"""Shared helpers for the Python peer and end-to-end tests.

Each test script creates a Checker, records checks, and ends with
`sys.exit(checker.finish())`, which prints "RESULT passed=N failed=M"
(the line scripts/run-tests.sh adds up)."""
import os
import subprocess
import sys

ROOT = os.environ.get("TASKLM_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TASKLM = os.environ.get("TASKLM", os.path.join(ROOT, "build", "tasklm"))
MODEL = os.environ.get("TASKLM_MODEL", os.path.join(ROOT, "models", "smollm2-135m-instruct-q4_1.gguf"))


class Checker:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f": {detail}" if detail else ""))
        sys.stdout.flush()
        return cond

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        print(f"RESULT passed={self.passed} failed={self.failed}")
        return 1 if self.failed else 0


def run_tasklm(args, input=None, timeout=600, binary=None):
    """Runs the CLI; returns CompletedProcess with text stdout/stderr."""
    return subprocess.run([binary or TASKLM] + list(args), input=input, capture_output=True,
                          text=True, timeout=timeout)


def write_short_task(parent):
    """A name-match task folder with a short template (cheap to score) under parent; returns its path."""
    import json
    tdir = os.path.join(parent, "task")
    os.makedirs(tdir)
    with open(os.path.join(tdir, "template.txt"), "w") as f:
        f.write("Same person? <a> / <b>. Answer:")
    with open(os.path.join(tdir, "task.json"), "w") as f:
        json.dump({"name": "short", "description": "test", "template": "template.txt",
                   "fields": [{"column": "elected_name", "placeholder": "<a>"},
                              {"column": "partner_name", "placeholder": "<b>"}],
                   "label_column": "labeled_result", "labels": ["yes", "no", "partial"], "label_prefix": " ",
                   "max_field_bytes": 256}, f)
    return tdir
