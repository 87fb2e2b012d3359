"""Tiny randomly initialised pipelines of each local family, built offline the way
diffusers' own fast tests do (tests/pipelines/*/test_*.py `get_dummy_components`,
diffusers 0.42), saved as ordinary diffusers folders so they load through the same
code path a user's folder takes.

diffusers' tests take their Qwen tokenizer from the hub
(hf-internal-testing/tiny-random-Qwen2VLForConditionalGeneration); these are made in
code instead: byte-level BPE with one token per byte and no merges, so every prompt
encodes to its own ids and nothing is downloaded. Under transformers 5 a tokenizer
takes its vocabulary and merges as data (`vocab=`, `merges=`): the old
`vocab_file=`/`merges_file=` keywords are ignored and leave a 2-token tokenizer.
"""

from __future__ import annotations

import contextlib
import io
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


def tokenizer(folder: Path | None = None) -> Any:
    """A CLIP tokenizer (514 tokens: each byte, each byte ending a word, start, end)."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


# Qwen's chat format, as the Qwen3 tokenizer's chat template writes it (enough of it
# for `apply_chat_template(..., add_generation_prompt=True)`, which FLUX.2 klein and
# Z-Image call).
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>"
                 "assistant\n{% endif %}")
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|image_pad|>")


def qwen_tokenizer() -> Any:
    """A Qwen2 tokenizer: 256 byte tokens, then QWEN_SPECIAL (ids 256...)."""
    from transformers import Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(_byte_chars())}
    for t in QWEN_SPECIAL:
        vocab[t] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=1024)
    tok.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL[1:])})
    tok.chat_template = CHAT_TEMPLATE
    return tok


QWEN_VOCAB = 320  # > 256 + len(QWEN_SPECIAL): the text encoders' embedding rows


def components(tok: Any, in_channels: int) -> dict[str, Any]:
    """Stable Diffusion (tests/pipelines/stable_diffusion/test_stable_diffusion.py)."""
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
        layer_norm_eps=1e-05, num_attention_heads=8, num_hidden_layers=3,
        vocab_size=len(tok)))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tok,
            "scheduler": scheduler, "safety_checker": None, "feature_extractor": None,
            "requires_safety_checker": False}


def tiny_taesd(folder: Path, latent_channels: int = 4, blocks: int = 2) -> Path:
    """An AutoencoderTiny like TAESD (diffusers' AutoencoderTiny defaults) with tiny
    widths; BLOCKS - 1 up/downsamplings: 2 matches the tiny SD VAE's scale of 2 (TAESD
    itself has 4, for SD's 8)."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(encoder_block_out_channels=(4,) * blocks,
                    decoder_block_out_channels=(4,) * blocks,
                    num_encoder_blocks=(1,) * blocks, num_decoder_blocks=(1,) * blocks,
                    latent_channels=latent_channels).save_pretrained(folder)
    return folder


def hub_cache(cache: Path, repo: str, folder: Path, commit: str = "0" * 40) -> Path:
    """Put FOLDER's files into the hub cache CACHE as REPO's snapshot, laid out as
    huggingface_hub lays it out (blobs by hash, snapshot links, refs/main)."""
    import hashlib
    import os

    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    for f in folder.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            link = snap / f.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.exists() or link.is_symlink():
                link.unlink()
            link.symlink_to(os.path.relpath(blob, link.parent))
    return snap


def build(root: Path) -> tuple[Path, Path]:
    """Save a text-to-image and an inpainting SD pipeline under ROOT; return their folders."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    tok = tokenizer()
    sd, inpaint = root / "tiny-sd", root / "tiny-sd-inpaint"
    with contextlib.redirect_stderr(io.StringIO()):
        StableDiffusionPipeline(**components(tok, 4)).save_pretrained(sd)
        StableDiffusionInpaintPipeline(**components(tok, 9)).save_pretrained(inpaint)
    return sd, inpaint


def _qwen3(hidden: int, layers: int, causal: bool) -> Any:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    torch.manual_seed(0)
    config = Qwen3Config(intermediate_size=16, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2, head_dim=8,
                         vocab_size=QWEN_VOCAB, max_position_embeddings=1024)
    return (Qwen3ForCausalLM if causal else Qwen3Model)(config)


def klein(folder: Path, *, distilled: bool) -> Path:
    """FLUX.2 klein (tests/pipelines/flux2/test_pipeline_flux2_klein.py). The text
    encoder has 28 layers so the pipeline's default `text_encoder_out_layers`
    (9, 18, 27) exist: three hidden states of 16 make the transformer's 48."""
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )

    torch.manual_seed(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=48,
        timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False)
    text_encoder = _qwen3(16, 28, causal=True)
    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(
        sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",), block_out_channels=(4,), layers_per_block=1,
        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False)
    with contextlib.redirect_stderr(io.StringIO()):
        Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                           text_encoder=text_encoder, tokenizer=qwen_tokenizer(),
                           transformer=transformer,
                           is_distilled=distilled).save_pretrained(folder)
    return folder


def z_image(folder: Path) -> Path:
    """Z-Image (tests/pipelines/z_image/test_z_image.py)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImagePipeline,
        ZImageTransformer2DModel,
    )

    torch.manual_seed(0)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2,
        n_refiner_layers=1, n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True,
        cap_feat_dim=16, rope_theta=256.0, t_scale=1000.0, axes_dims=[8, 4, 4],
        axes_lens=[256, 32, 32])
    # Made with torch.empty: NaN at random unless fixed (as diffusers' test does).
    with torch.no_grad():
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token.data))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token.data))
    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[8, 8, 8, 8], layers_per_block=1, latent_channels=16,
        norm_num_groups=8, sample_size=32, scaling_factor=0.3611, shift_factor=0.1159)
    text_encoder = _qwen3(16, 2, causal=False)
    with contextlib.redirect_stderr(io.StringIO()):
        ZImagePipeline(transformer=transformer, vae=vae,
                       scheduler=FlowMatchEulerDiscreteScheduler(),
                       text_encoder=text_encoder,
                       tokenizer=qwen_tokenizer()).save_pretrained(folder)
    return folder


def qwen_image(folder: Path) -> Path:
    """Qwen-Image (tests/pipelines/qwenimage/test_qwenimage.py)."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = qwen_tokenizer()
    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
        num_attention_heads=3, joint_attention_dim=16, guidance_embeds=False,
        axes_dims_rope=(8, 4, 4))
    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage(base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True], latents_mean=[0.0] * 4,
                                 latents_std=[1.0] * 4)
    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2,
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default",
                                      "type": "default"},
                     "rope_theta": 1000000.0, "vocab_size": QWEN_VOCAB},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16,
                       "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=QWEN_VOCAB,
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
        vision_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"))
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    with contextlib.redirect_stderr(io.StringIO()):
        QwenImagePipeline(transformer=transformer, vae=vae,
                          scheduler=FlowMatchEulerDiscreteScheduler(),
                          text_encoder=text_encoder, tokenizer=tok).save_pretrained(folder)
    return folder


def write_index(folder: Path, **changes: Any) -> None:
    """Change FOLDER's model_index.json (a test's broken or renamed model)."""
    path = folder / "model_index.json"
    index = json.loads(path.read_text())
    index.update(changes)
    path.write_text(json.dumps(index))


def tiny_lora(sd: Path, folder: Path) -> Path:
    """A LoRA for the tiny SD pipeline at SD, as a .safetensors file: rank 2 on the
    UNet's attention, with random (not zero) up-weights so it changes the pixels
    (peft's init_lora_weights=False), saved as diffusers saves a trained one."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(sd, local_files_only=True)
    torch.manual_seed(1)
    pipe.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights=False,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        weight_name="pixel-style.safetensors")
    return folder / "pixel-style.safetensors"


def count_loads(monkeypatch: Any) -> list[str]:
    """The models the local provider loads from now on, in order (its pipeline load
    wrapped for the test)."""
    import imagegen_cli.providers.local as local

    loads: list[str] = []
    real = local.load_pipeline

    def counting(model: str, **kw: Any) -> Any:
        loads.append(model)
        return real(model, **kw)

    monkeypatch.setattr(local, "load_pipeline", counting)
    return loads
