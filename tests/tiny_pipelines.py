"""Tiny randomly initialised Stable Diffusion pipelines, built offline the way
diffusers' own fast tests do (get_dummy_components), saved as ordinary
diffusers folders so they load through the same code path a user's folder takes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _byte_chars() -> list[str]:
    """GPT-2/CLIP's byte-to-unicode table: every byte is a one-character token."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for c in cs]


def tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(vocab_file=str(folder / "vocab.json"),
                         merges_file=str(folder / "merges.txt"), model_max_length=77)


def components(tok: Any, in_channels: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32,
        in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=2)
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
        norm_num_groups=2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, hidden_size=32, intermediate_size=64,
        layer_norm_eps=1e-05, num_attention_heads=8, num_hidden_layers=3, vocab_size=1000))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tok,
            "scheduler": scheduler, "safety_checker": None, "feature_extractor": None,
            "requires_safety_checker": False}


def build(root: Path) -> tuple[Path, Path]:
    """Save a text-to-image and an inpainting pipeline under ROOT; return their folders."""
    import contextlib
    import io

    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    tok = tokenizer(root / "tok")
    sd, inpaint = root / "tiny-sd", root / "tiny-sd-inpaint"
    with contextlib.redirect_stderr(io.StringIO()):
        StableDiffusionPipeline(**components(tok, 4)).save_pretrained(sd)
        StableDiffusionInpaintPipeline(**components(tok, 9)).save_pretrained(inpaint)
    return sd, inpaint
