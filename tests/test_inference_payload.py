"""One truth for the hand-off payload: the bytes the solver charges are the bytes written."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from _inference_fixtures import hybrid_pipe, noise

from his_opt.costs import Channel, EdgeServer, GPUProfile, handoff_payload_bytes
from his_opt.costs._payload import HEADER_ALLOWANCE, metadata_text_bytes, safetensors_header
from his_opt.scenario import Scenario

PROMPT = 'a "quoted" caf\u00e9 at night \u2014 neon, rain\\n'
NEGATIVE = "blurry, low quality"


@pytest.fixture(scope="module")
def handoff():
    out = hybrid_pipe()(
        "a street",
        [PROMPT],
        negative_prompts=[NEGATIVE],
        common_steps=1,
        num_inference_steps=3,
        public_guidance_scale=2.0,
        guidance_scale=8.0,
        edge_steps=[1],
        latents=noise(1),
        output_type="latent",
    )
    return out.handoffs[0]


@pytest.mark.parametrize("mode", ["latent", "embeddings"])
def test_written_file_size_is_the_byte_model(handoff, tmp_path, mode):
    path = handoff.save(tmp_path / f"{mode}.safetensors", mode=mode)
    size = path.stat().st_size
    assert size == handoff.file_size(mode)
    # what the solver charges: the tensors exactly, the header as the texts plus the allowance
    charged = handoff_payload_bytes(
        32,
        32,
        mode=mode,
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        guided=True,
        latent_channels=4,
        bits_per_value=32,
        vae_factor=2,
        text_tokens=333,
        text_dim=32,
        pooled_dim=32,
    )
    data = path.read_bytes()
    header_len = 8 + struct.unpack("<Q", data[:8])[0]
    tensor_bytes = size - header_len
    texts = metadata_text_bytes(PROMPT) + metadata_text_bytes(NEGATIVE)
    assert charged - HEADER_ALLOWANCE - texts == tensor_bytes
    assert 0 <= charged - size <= HEADER_ALLOWANCE
    # the header beyond the texts is what the allowance bounds (here with room to spare)
    assert header_len - texts <= HEADER_ALLOWANCE - 512
    # the texts enter the header exactly as modelled
    header = json.loads(data[8:header_len])
    meta = header["__metadata__"]["his_opt.handoff"]
    assert json.loads(meta)["prompt"] == PROMPT
    bare = dict(json.loads(meta), prompt="", negative_prompt="")
    assert (
        len(json.dumps(json.dumps(json.loads(meta), separators=(",", ":"))))
        - len(json.dumps(json.dumps(bare, separators=(",", ":"))))
        == texts
    )
    # safetensors itself reads the file
    from safetensors.torch import load

    tensors = load(data)
    assert torch.equal(tensors["latents"], handoff.latents)
    assert ("prompt_embeds" in tensors) == (mode == "embeddings")


def test_header_layout_matches_safetensors():
    from safetensors.torch import save

    from his_opt.costs._payload import TensorSpec

    ours = safetensors_header([TensorSpec("latents", "float16", (1, 4, 8, 8))], {"k": "v"})
    theirs = save({"latents": torch.zeros(1, 4, 8, 8, dtype=torch.float16)}, metadata={"k": "v"})
    assert len(ours) == len(theirs) - 512
    assert json.loads(ours[8:]) == json.loads(theirs[8 : len(ours)])


def test_sd3_medium_sizes_and_the_solver_downlink():
    latent = handoff_payload_bytes(1024, 1024, prompt="a cat")
    embeddings = handoff_payload_bytes(1024, 1024, mode="embeddings", prompt="a cat")
    assert latent - HEADER_ALLOWANCE - 5 == 128 * 128 * 16 * 2
    assert embeddings - latent == 2 * (333 * 4096 + 2048) * 2
    assert embeddings / latent == pytest.approx(11.38, abs=0.01)

    from his_opt.allocation import build_instance
    from his_opt.allocation._synthetic import synthetic_users, toy_hiqm

    prompts = ["a cat", "a dog on a long sandy beach at dawn"]
    profile = GPUProfile(name="toy", rows=(1, 2), step_latency_s=(0.05, 0.09), power_w=300.0)
    for mode in ("latent", "embeddings"):
        sc = Scenario(total_steps=6, common_steps_max=2, edge_steps_max=3, handoff=mode)
        users = synthetic_users(prompts, sc)
        users["negative_prompt"] = [None, "blurry"]
        inst = build_instance(
            users, [EdgeServer("es1", profile, 10.0)], sc, toy_hiqm(6), similarity=np.eye(2)
        )
        rate = Channel(sc.bandwidth_hz, sc.tx_power_w, sc.channel_gain, sc.noise_psd_w_per_hz)
        for n, (p, q) in enumerate(zip(prompts, [None, "blurry"], strict=True)):
            payload = handoff_payload_bytes(1024, 1024, mode=mode, prompt=p, negative_prompt=q)
            assert inst.downlink_s[n] * rate.rate_bps == pytest.approx(8 * payload, rel=1e-12)


def test_bad_scenario_handoff_mode():
    with pytest.raises(ValueError, match="scenario field 'handoff'"):
        Scenario(handoff="pixels")
