"""toolkit/bench.py runs end to end on a tiny size (its speed is not tested)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from toolkit import bench
from toolkit.stackfile import REPO


def test_synthetic_and_bare_programs_register_what_they_say(run_program):
    program = bench.synthetic(2)()
    assert len(program.of_type("cofounder:apps:AppService")) == 2
    assert len(program.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")) == 2
    assert len(bench.bare(5)().resources) == 5
    assert {r.type for r in bench.bare(3, "bucket")().resources} == {"aws:s3/bucket:Bucket"}


def test_bench_prints_a_table_per_stack_and_the_synthetic_stack():
    res = subprocess.run([sys.executable, "-m", "toolkit.bench", "--stacks", "dev", "--synthetic", "1",
                          "--repeat", "1"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["case", "resources", "preview", "s", "plain", "s", "ratio",
                                "Bucket", "s", "ratio"]
    assert lines[1].split()[0] == "dev" and lines[2].startswith("synthetic x1")
    assert int(lines[2].split()[2]) == len(bench.synthetic(1)().resources)


def test_the_suite_ratio_times_both_commands_on_the_same_machine_and_judges_the_goal():
    def sleep(seconds: float) -> list[str]:
        return [sys.executable, "-c", f"import time; time.sleep({seconds})"]
    fast = bench.suite_ratio(preview=sleep(0.1), suite=sleep(0.4))
    assert 0.1 <= fast["preview_s"] < fast["suite_s"] and fast["previews"] == 3
    assert fast["ratio"] == fast["suite_s"] / fast["preview_s"] and fast["ok"] is True
    line = bench.suite_line(fast)
    assert line.startswith("test suite (make test): ") and line.endswith(f"within the goal of {bench.SUITE_GOAL} x")
    slow = bench.suite_line({**fast, "ratio": 25.0, "ok": False})
    assert "= 25.0 x one make preview STACK=prod" in slow and "ABOVE the goal" in slow
    with pytest.raises(SystemExit, match="failed \\(exit 3\\)"):
        bench.suite_ratio(preview=sleep(0), suite=[sys.executable, "-c", "raise SystemExit(3)"], previews=1)


def test_the_preview_is_split_into_sdk_imports_and_this_repositorys_work():
    quick = [sys.executable, "-c", "import time, json; time.sleep(0.3)"]
    split = bench.preview_split(["json"], preview=quick, repeat=1)
    assert split["sdk_import_s"] < split["preview_s"] and split["modules"] == 1
    assert split["project_s"] == pytest.approx(split["preview_s"] - split["sdk_import_s"])
    assert bench.split_line(split).startswith("make preview STACK=prod: ")
    assert all(m.split(".")[0] in bench.SDK_PACKAGES for m in bench.sdk_modules())
