"""Everything ``solve`` reads, loaded and validated together, with each input's provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .._errors import InputError
from ..costs import EdgeServer
from ..scenario import Scenario, load_scenario
from ._candidates import load_candidates
from ._servers import load_servers
from ._similarity_table import SimilarityTable, load_similarity_table
from ._table import file_sha256
from ._users import load_users

__all__ = ["SolveInputs", "check_consistency"]


@dataclass(eq=False)
class SolveInputs:
    """Validated inputs of one ``solve`` run; ``files`` maps each input role to its provenance."""

    users: pd.DataFrame
    servers: list[EdgeServer]
    scenario: Scenario
    hiqm: Any
    hiqm_path: Path
    candidates: list[str] | None = None
    similarity_model: str | None = None
    seed: int | None = None
    files: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    similarity_table: SimilarityTable | None = None
    consistency: list[str] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        users: str | Path,
        *,
        servers: str | Path | None = None,
        config: str | Path | None = None,
        hiqm: str | Path | None = None,
        candidates: str | Path | None = None,
        similarity_model: str | Path | None = None,
        similarity: str | Path | None = None,
        seed: int | None = None,
    ) -> SolveInputs:
        """Read and validate every input; ``InputError`` (file, row, field) on the first problem.

        The scenario comes first (its defaults fill the users' and servers' empty cells); the
        HIQM defaults to the shipped model of the scenario's variant and must match the
        scenario's variant and total steps. ``similarity`` is a precomputed similarity CSV
        (``his-opt similarity --labels prompt``); without it the application layer embeds the
        prompts with ``similarity_model``. Nothing here builds an optimisation instance.
        """
        from ..hiqm import HIQM, default_hiqm_path

        scenario = load_scenario(config)
        table = load_users(users, scenario, random_state=seed)
        server_list = load_servers(servers, scenario)
        cands = None if candidates is None else load_candidates(candidates)
        if hiqm is None:
            if scenario.variant == "custom":
                raise InputError(
                    "variant 'custom' has no shipped quality model; pass --hiqm",
                    file=config or "<scenario>",
                    field="variant",
                )
            hiqm_path = default_hiqm_path(scenario.variant)
        else:
            hiqm_path = Path(hiqm)
        model = HIQM.load(hiqm_path)
        if scenario.variant != "custom" and model.variant != scenario.variant:
            raise InputError(
                f"quality model is for variant {model.variant!r} but the scenario "
                f"uses {scenario.variant!r}",
                file=hiqm_path,
                field="variant",
            )
        if model.total_steps != scenario.total_steps:
            raise InputError(
                f"quality model has total_steps {model.total_steps} but the "
                f"scenario has {scenario.total_steps}",
                file=hiqm_path,
                field="total_steps",
            )
        notes = check_consistency(scenario, model, hiqm_path, server_list, servers or config)
        sim_table = None if similarity is None else load_similarity_table(similarity)
        if similarity_model is not None and not Path(similarity_model).is_dir():
            raise InputError(
                "similarity model folder not found",
                file=similarity_model,
                field="--similarity-model",
            )

        def info(path: str | Path | None) -> dict[str, Any] | None:
            if path is None:
                return None
            return {"file": str(path), "sha256": file_sha256(path)}

        files = {
            "users": info(users),
            "servers": info(servers),
            "config": info(config),
            "candidates": info(candidates),
            "hiqm": info(hiqm_path),
            "similarity": info(similarity),
        }
        return cls(
            users=table,
            servers=server_list,
            scenario=scenario,
            hiqm=model,
            hiqm_path=hiqm_path,
            candidates=cands,
            similarity_model=None if similarity_model is None else str(similarity_model),
            seed=seed,
            files=files,
            similarity_table=sim_table,
            consistency=notes,
        )


def check_consistency(
    scenario: Scenario,
    hiqm: Any,
    hiqm_path: Path,
    servers: list[EdgeServer],
    servers_source: str | Path | None,
) -> list[str]:
    """Refuse a scenario that contradicts what its quality model or a GPU profile was measured
    at (guidance scales, image size); return warnings for legitimate mixes (recorded in the
    plan): a model that records nothing, a profile measured on a CPU or only estimated."""
    notes: list[str] = []
    fitted = getattr(hiqm, "fitted_at", None)
    if fitted is None:
        notes.append(f"{hiqm_path}: the quality model records no fitted_at (model, size, guidance)")
    else:
        for key in ("public_guidance_scale", "guidance_scale"):
            if abs(float(fitted[key]) - float(getattr(scenario, key))) > 1e-9:
                raise InputError(
                    f"the scenario's {key} {getattr(scenario, key):g} differs from the "
                    f"{fitted[key]:g} the quality model was fitted at ({hiqm_path}); pass a "
                    "model fitted at these scales with --hiqm",
                    file=hiqm_path,
                    field=f"fitted_at.{key}",
                )
        for key in ("height", "width"):
            if int(fitted[key]) != int(getattr(scenario, key)):
                raise InputError(
                    f"the scenario's {key} {getattr(scenario, key)} differs from the "
                    f"{fitted[key]} px the quality model was fitted at",
                    file=hiqm_path,
                    field=f"fitted_at.{key}",
                )
    for server in servers:
        prof = server.profile
        resolution = getattr(prof, "resolution", None)
        if resolution is None:
            continue  # the paper's cycle model has no image size
        if scenario.height != scenario.width or int(resolution) != int(scenario.height):
            raise InputError(
                f"GPU profile {prof.name!r} was measured at {resolution} px but the scenario "
                f"generates {scenario.height}x{scenario.width}",
                file=servers_source or "<scenario>",
                field="profile" if servers_source else "server_profile",
            )
        device = str(getattr(prof, "device", "unknown"))
        if device.lower().startswith("cpu"):
            notes.append(f"server {server.name}: GPU profile {prof.name!r} was measured on a CPU")
        elif getattr(prof, "kind", "") == "estimate":
            notes.append(f"server {server.name}: GPU profile {prof.name!r} is an estimate")
    return notes
