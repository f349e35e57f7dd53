"""``solve --similarity FILE``: a precomputed matrix replaces the embedding model (no torch)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from his_opt._errors import InputError
from his_opt.app import build_solve_instance, similarity_matrix
from his_opt.io import SolveInputs, load_similarity_table
from his_opt.resources import example_path

ROOT = Path(__file__).resolve().parents[1]
USERS, SIM = example_path("users_small.csv"), example_path("users_small_similarity.csv")


def test_solve_with_a_similarity_file_loads_no_torch(tmp_path):
    code = (
        "import sys\n"
        "from his_opt.cli import main\n"
        f"rc = main(['solve', {str(USERS)!r}, '--similarity', {str(SIM)!r}, '--out', "
        f"{str(tmp_path / 'r.xlsx')!r}, '--quiet', '--time-limit', '20'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print('RC', rc, 'HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert "RC 0 HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["provenance"]["inputs"]["similarity"]["file"] == str(SIM)


def test_the_matrix_is_looked_up_by_prompt():
    inputs = SolveInputs.load(USERS, similarity=SIM, seed=0)
    sim = similarity_matrix(inputs)
    table = load_similarity_table(SIM)
    prompts = list(inputs.users["prompt"])
    assert sim.shape == (len(set(prompts)), len(prompts))
    i, j = table.rows.index(prompts[1]), table.cols.index(prompts[3])
    assert sim[1, 3] == table.values[i, j]
    assert np.allclose(np.diag(sim), 1.0)
    inst = build_solve_instance(inputs)
    assert np.array_equal(inst.sim, sim)


def test_a_prompt_missing_from_the_matrix_is_one_line(tmp_path):
    users = tmp_path / "u.csv"
    users.write_text(USERS.read_text().rstrip("\n") + "\nz9,a prompt nobody embedded,,cat,,\n")
    inputs = SolveInputs.load(users, similarity=SIM)
    with pytest.raises(InputError, match="has no row for prompt 'a prompt nobody embedded'"):
        similarity_matrix(inputs)


def test_index_labelled_matrix_is_refused(tmp_path):
    bad = tmp_path / "s.csv"
    bad.write_text("prompt,0,1\n0,1.0,0.5\n1,0.5,1.0\n")
    with pytest.raises(InputError, match="--labels prompt"):
        load_similarity_table(bad)


def test_build_instance_takes_numbers_only():
    from his_opt.allocation import build_instance
    from his_opt.similarity import PromptSimilarity

    inputs = SolveInputs.load(USERS, similarity=SIM)
    with pytest.raises(ValueError, match="array of cosines"):
        build_instance(inputs.users, inputs.servers, inputs.scenario, inputs.hiqm,
                       similarity=PromptSimilarity())  # fmt: skip


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_layers_stay_apart():
    """io reads files (no allocation, no similarity model); the solver takes numbers."""
    from his_opt.allocation import USER_TABLE_COLUMNS
    from his_opt.io import USER_COLUMNS

    assert USER_COLUMNS == USER_TABLE_COLUMNS
    for module in (ROOT / "his_opt" / "io").glob("*.py"):
        bad = [m for m in _imports(module) if "allocation" in m or m.endswith("similarity")]
        assert not bad, (module, bad)
    assert not [m for m in _imports(ROOT / "his_opt/allocation/_instance.py") if "similarity" in m]


def test_a_similarity_matrix_past_its_memory_cap_is_refused_before_embedding():
    """The matrix (candidates x users, float64) is planned: past ``max_bytes`` one line naming
    ``--candidates`` and how many candidates fit, before any model is loaded."""
    inputs = SolveInputs.load(USERS, similarity=SIM, seed=0)
    n = len(inputs.users)
    n_pub = len(set(inputs.users["prompt"]))

    class NoModel:  # would fail the test if the cap let it be used
        def encode(self, prompts):
            raise AssertionError("embedded past the cap")

    with pytest.raises(InputError, match=r"'--candidates': 8 public .* 512 bytes .* pass at most 2 public") as err:
        similarity_matrix(inputs, model=NoModel(), max_bytes=8 * n * 2)
    assert "\n" not in str(err.value) and str(USERS) in str(err.value)
    assert similarity_matrix(inputs, max_bytes=8 * n * n_pub).shape == (n_pub, n)


def test_a_model_with_encode_only_builds_the_instance_from_its_rows():
    """The matrix comes from the embeddings of the distinct prompts (never their square), and
    the instance keeps that fresh matrix instead of a second copy."""
    inputs = SolveInputs.load(USERS, similarity=SIM, seed=0)
    table = load_similarity_table(SIM)
    rows = {p: i for i, p in enumerate(table.rows)}
    # rows whose dot products are the table's cosines: its Cholesky factor
    factor = np.linalg.cholesky(table.values + 1e-9 * np.eye(len(table.rows)))

    class EncodeOnly:
        def encode(self, prompts):
            return factor[[rows[p] for p in prompts]]

    inst = build_solve_instance(inputs, similarity=EncodeOnly())
    looked_up = similarity_matrix(inputs)
    np.testing.assert_allclose(inst.sim, np.clip(looked_up, -1, 1), atol=1e-6)
