"""`seqlab bench all` (issue 9 §3): the machine description, the generated block and its markers,
and the runner on a stand-in benchmark (the real ones take minutes even in `--quick`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from seqlab import bench_all
from seqlab.bench_all import END, START, Benchmark, BenchRun
from seqlab.errors import SeqlabError

CPUINFO = """processor\t: 0
model name\t: Test CPU @ 2.00GHz
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512_vnni avx512_bf16 amx_tile
processor\t: 1
model name\t: Test CPU @ 2.00GHz
physical id\t: 0
core id\t\t: 1
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512_vnni avx512_bf16 amx_tile
"""


def test_machine_info_reads_cpu_simd_and_versions():
    info = bench_all.machine_info(CPUINFO)
    assert info["cpu"] == "Test CPU @ 2.00GHz"
    assert info["physical_cores"] == 2
    assert info["simd"] == ["sse4_2", "avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"]
    assert "torch" in info["versions"] and "python" in info["versions"]
    assert info["logical_cores"] >= 1 and info["torch_cpu_capability"]
    real = bench_all.machine_info()  # this machine: whatever it has, the keys are there
    assert set(real) == set(info)


def test_markdown_tables_keep_tables_their_settings_line_and_ratios():
    stdout = "loading...\nprogress 1/3\n\ntorch 2, 1 thread\n| a | b |\n|---|---|\n| x | 1.0 |\nseqlab / pipe = 0.98\ndone\n"
    assert bench_all.markdown_tables(stdout) == "torch 2, 1 thread\n| a | b |\n|---|---|\n| x | 1.0 |\nseqlab / pipe = 0.98"
    assert bench_all.markdown_tables("no table here\n") == ""


def _runs() -> list[BenchRun]:
    ok = Benchmark("fake", "issue 0", "what it measures", "a / b", ("benchmarks/x.py",), ("benchmarks/x.py", "--quick"))
    skipped = Benchmark("slow", "issue 0", "hours", "c / d", ("benchmarks/y.py",), None)
    return [
        BenchRun(ok, [sys.executable, "benchmarks/x.py", "--quick"], 0, 1.5, "| a |\n|---|\n| 1 |"),
        BenchRun(skipped, [], None, 0.0, ""),
    ]


def test_render_block_states_machine_versions_commands_and_tables():
    block = bench_all.render_block(_runs(), bench_all.machine_info(CPUINFO), quick=True, load=(0.5, 1.25))
    assert "Test CPU @ 2.00GHz" in block and "avx512_bf16" in block and "torch " in block
    assert "0.50 before, 1.25 after" in block and "median of its repeats" in block
    assert "Smoke configuration" in block
    assert "`python benchmarks/x.py --quick` — exit 0, 2 s" in block and "| 1 |" in block
    assert "#### slow" in block and "Skipped" in block


def test_write_block_replaces_only_between_markers(tmp_path: Path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\nhand-written\n\n{START}\nold\n{END}\n\n## Later section\nkept\n", encoding="utf-8")
    bench_all.write_block(docs, "new block\n")
    assert (
        docs.read_text(encoding="utf-8")
        == f"# Benchmarks\n\nhand-written\n\n{START}\nnew block\n{END}\n\n## Later section\nkept\n"
    )


def test_write_block_appends_a_section_without_markers_and_refuses_broken_ones(tmp_path: Path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nhand-written\n", encoding="utf-8")
    bench_all.write_block(docs, "block\n")
    text = docs.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nhand-written\n\n" + bench_all.SECTION)
    assert text.endswith(f"{START}\nblock\n{END}\n")
    bench_all.write_block(docs, "again\n")  # idempotent: one block
    assert docs.read_text(encoding="utf-8").count(START) == 1
    docs.write_text(f"{END}\n{START}\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match="markers"):
        bench_all.write_block(docs, "x\n")
    assert docs.read_text(encoding="utf-8") == f"{END}\n{START}\n"  # nothing half-written


def test_run_benchmarks_runs_each_in_its_own_process_and_records_failures(tmp_path: Path):
    script = tmp_path / "fake.py"
    script.write_text(
        "import sys\nprint('settings line')\nprint('| k | v |')\nprint('|---|---|')\nprint('| x | 2 |')\n"
        "sys.exit(int(sys.argv[1]))\n",
        encoding="utf-8",
    )
    good = Benchmark("good", "i", "m", "r", (str(script), "0"), (str(script), "0"))
    bad = Benchmark("bad", "i", "m", "r", (str(script), "3"), (str(script), "3"))
    none = Benchmark("none", "i", "m", "r", (str(script), "0"), None)
    runs = bench_all.run_benchmarks([good, bad, none], quick=True, output=tmp_path / "out", root=tmp_path)
    assert [r.returncode for r in runs] == [0, 3, None]
    assert runs[0].tables == "settings line\n| k | v |\n|---|---|\n| x | 2 |"
    assert (tmp_path / "out" / "good" / "stdout.txt").exists()


def test_select_names_benchmarks_and_rejects_unknown_ones():
    assert [b.name for b in bench_all.select("generate,throughput")] == ["throughput", "generate"]
    assert len(bench_all.select(None)) == len(bench_all.BENCHMARKS)
    with pytest.raises(SeqlabError, match="unknown benchmark nope"):
        bench_all.select("nope")
    scripts = [b.full[0] for b in bench_all.BENCHMARKS if b.full[0].endswith(".py")]
    root = bench_all.repository_root()
    assert all((root / s).exists() for s in scripts)  # every listed script is in benchmarks/
