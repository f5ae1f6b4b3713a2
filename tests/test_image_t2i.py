"""Text-to-image: the frozen encoders (tiny random SD-style VAE and CLIP text encoder saved to disk), the t2i EBT
and the t2i DiT. No network: the published hub encoders are replaced by same-class models of a few KB."""
from dataclasses import fields

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

import model.thinking as thinking
from model.config import InferenceConfig, TextToImageConfig, TextToImageEBTConfig
from model.img.dit_t2i import DiT_IMG_T2I
from model.img.ebt_t2i import EBT_IMG_T2I
from model.frozen import VAE_SCALE, decode_latents, encode_latents, load_vae
from model.img.encoders import (CLIP_TEXT_ENCODERS, TextToImageEncoders, caption_embedding, clip_text_encoder_name,
                                load_clip_text_encoder)

CLIP_DIM = 16
CAPTIONS = ["a red cat", "two dogs"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A 2-layer CLIP text encoder (width 16) and a letters-only CLIP BPE tokenizer, saved together."""
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = {token: i for i, token in enumerate([*letters, *(c + "</w>" for c in letters),
                                                 "<|startoftext|>", "<|endoftext|>"])}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=CLIP_DIM, intermediate_size=32, projection_dim=16,
                            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("clip")
    CLIPTextModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="module")
def encoders(vae_dir, clip_dir):
    return TextToImageEncoders(vae_dir, clip_dir)


def tiny_hparams(vae_dir, clip_dir, **overrides):
    """32x32 images -> 4x4 latents, patch 2 -> 4 tokens of width 32."""
    return dict(dict(image_dims=32, patch_size=2, embedding_dim=32, num_transformer_blocks=2,
                     multiheaded_attention_heads=4, vae_path=vae_dir, clip_text_encoder_size=clip_dir,
                     mcmc_step_size_learnable=True), **overrides)


def batch(encoders, seed=0):
    torch.manual_seed(seed)
    return {"image": torch.rand(2, 3, 32, 32) * 2 - 1, "caption": dict(encoders.tokenize(CAPTIONS))}


def randomize_zero_init(model):
    """Zero-initialised adaLN and output layers hide the condition and the energy; give them random values."""
    for name, p in model.named_parameters():
        if "adaln_modulation" in name or "final_layer" in name:
            torch.nn.init.normal_(p, std=0.3)
    return model


# ----------------------------------------------------------------------------- encoders

def test_vae_loads_frozen_and_latents_have_the_sd_shape_and_scale(vae_dir):
    vae = load_vae(vae_dir)
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    latents = encode_latents(vae, images)
    assert latents.shape == (3, 4, 4, 4) and not latents.requires_grad
    torch.testing.assert_close(latents, vae.encode(images).latent_dist.mean * 0.18215)
    assert VAE_SCALE == 0.18215
    decoded = decode_latents(vae, latents)
    assert decoded.shape == (3, 3, 32, 32) and decoded.min() >= -1 and decoded.max() <= 1
    torch.testing.assert_close(decoded, vae.decode(latents / 0.18215).sample.clamp(-1, 1))


def test_clip_loads_frozen_with_its_tokenizer_and_pools_the_eos_state(clip_dir):
    text_model, tokenizer = load_clip_text_encoder(clip_dir)
    assert not text_model.training and not any(p.requires_grad for p in text_model.parameters())
    tokens = tokenizer(CAPTIONS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    assert tokens["input_ids"].shape == (2, 77)
    pooled = caption_embedding(text_model, tokens["input_ids"], tokens["attention_mask"])
    assert pooled.shape == (2, CLIP_DIM)
    hidden = text_model(**tokens).last_hidden_state  # final-layer-normed states (B, 77, 16)
    eos = (tokens["input_ids"] == tokenizer.eos_token_id).int().argmax(1)  # first EOS of each caption
    torch.testing.assert_close(pooled, hidden[torch.arange(2), eos])
    assert (pooled[0] - pooled[1]).abs().max() > 1e-4


def test_clip_size_table_and_name_resolution(clip_dir):
    assert CLIP_TEXT_ENCODERS == {"small": "openai/clip-vit-base-patch32", "base": "openai/clip-vit-base-patch16",
                                  "large": "openai/clip-vit-large-patch14",
                                  "xl": "openai/clip-vit-large-patch14-336"}
    assert clip_text_encoder_name("large") == "openai/clip-vit-large-patch14"
    assert clip_text_encoder_name("owner/some-clip") == "owner/some-clip"
    assert clip_text_encoder_name(clip_dir) == clip_dir
    with pytest.raises(ValueError, match="clip_text_encoder_size 'medium': choose one of small, base, large, xl"):
        load_clip_text_encoder("medium")


def test_load_failures_name_what_was_tried_and_suggest_a_local_directory(tmp_path, vae_dir):
    missing = str(tmp_path / "nowhere" / "vae")
    with pytest.raises(OSError, match=r"(?s)could not load the VAE.*nowhere/vae.*local directory"):
        load_vae(missing)
    with pytest.raises(OSError, match=r"(?s)CLIP text encoder.*openai/clip-vit-base-patch16.*local directory"):
        load_clip_text_encoder("base")  # tests run with HF_HUB_OFFLINE=1
    with pytest.raises(OSError, match=r"(?s)CLIP text encoder.*local directory"):
        load_clip_text_encoder(vae_dir)  # a directory without a CLIP model in it


def test_unknown_clip_size_fails_before_loading_anything(tmp_path):
    with pytest.raises(ValueError, match="clip_text_encoder_size 'huge'"):
        TextToImageEncoders(str(tmp_path / "no-vae-here"), "huge")


def test_config_rejects_image_sizes_that_do_not_give_a_latent_grid():
    with pytest.raises(ValueError, match=r"--image_dims must be a multiple of 8 whose eighth \(4.5\)"):
        TextToImageConfig(image_dims=36, patch_size=2)
    with pytest.raises(ValueError, match=r"whose eighth \(2\) --patch_size 4 divides"):
        TextToImageEBTConfig(image_dims=16, patch_size=4)
    assert TextToImageConfig.from_hparams({"image_dims": [64, 64], "patch_size": 4}).latent_size == 8
    with pytest.raises(ValueError, match="more than 20 steps"):
        TextToImageConfig(image_dims=32, patch_size=2, diffusion_steps=20)
    assert "mcmc_replay_buffer" not in {f.name for f in fields(TextToImageEBTConfig)}  # not read: refused if written


# ----------------------------------------------------------------------------- EBT

def test_ebt_t2i_keeps_the_encoders_out_of_parameters_state_dict_and_optimiser(vae_dir, clip_dir, encoders):
    model = EBT_IMG_T2I(tiny_hparams(vae_dir, clip_dir), encoders=encoders)
    names = [n for n, _ in model.named_parameters()]
    assert "text_embeddings_projector.weight" in names and "alpha" in names
    assert model.text_embeddings_projector.in_features == CLIP_DIM
    assert model.transformer.input_size == 4 and model.transformer.in_channels == 4
    frozen = {id(p) for m in encoders.modules for p in m.parameters()}
    assert not frozen & {id(p) for p in model.parameters()}
    assert all(not k.startswith(("encoders", "vae", "text_model")) for k in model.state_dict())
    model.train()
    assert not encoders.vae.training and not encoders.text_model.training
    model.to(torch.float64)  # .to() moves the unregistered encoders too
    assert next(encoders.vae.parameters()).dtype == torch.float64
    model.to(torch.float32)
    assert next(encoders.text_model.parameters()).dtype == torch.float32


def test_ebt_t2i_builds_its_encoders_from_the_hparams(vae_dir, clip_dir):
    model = EBT_IMG_T2I(tiny_hparams(vae_dir, clip_dir, mcmc_num_steps=1))
    assert model.tokenizer("a cat")["input_ids"][0] == model.tokenizer.bos_token_id
    out = model.forward_loss_wrapper(batch(model.encoders), phase="valid")
    assert torch.isfinite(out["loss"])


def test_ebt_t2i_initial_energy_is_zero_and_targets_are_vae_latents(vae_dir, clip_dir, encoders):
    torch.manual_seed(0)
    model = EBT_IMG_T2I(tiny_hparams(vae_dir, clip_dir), encoders=encoders)
    data = batch(encoders)
    torch.manual_seed(1)
    out = model.forward_loss_wrapper(data, phase="valid")
    assert out["step_energies"].abs().max() == 0 and out["final_energy"] == 0
    assert out["step_losses"].shape == (2,) and out["count"] == 2
    # zero energy: thinking leaves the random start alone, so the loss is SmoothL1(start, latents)
    torch.manual_seed(1)
    start = torch.randn(2, 4, 4, 4)
    target = encode_latents(encoders.vae, data["image"])
    torch.testing.assert_close(out["step_losses"][-1], torch.nn.functional.smooth_l1_loss(start, target))
    torch.testing.assert_close(out["mse_raw_loss"], torch.nn.functional.mse_loss(start, target))


def test_ebt_t2i_loss_reaches_projector_and_ebt_through_second_order_but_not_the_encoders(
        vae_dir, clip_dir, encoders):
    torch.manual_seed(0)
    model = randomize_zero_init(EBT_IMG_T2I(tiny_hparams(vae_dir, clip_dir), encoders=encoders))
    out = model.forward_loss_wrapper(batch(encoders), phase="train")
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
    out["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for name in ("text_embeddings_projector.weight", "transformer.patch_embed.proj.weight",
                 "transformer.blocks.0.attention.qkv.weight", "transformer.final_layer.linear.weight", "alpha"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    assert all(p.grad is None for m in encoders.modules for p in m.parameters())


def test_ebt_t2i_training_lowers_the_loss_on_a_fixed_batch(vae_dir, clip_dir, encoders):
    torch.manual_seed(0)
    model = EBT_IMG_T2I(tiny_hparams(vae_dir, clip_dir, mcmc_step_size=10.0), encoders=encoders)
    data = batch(encoders)

    def evaluate():  # from the same random starting latents each time
        torch.manual_seed(1)
        return model.forward_loss_wrapper(data, phase="valid")
    before = evaluate()["loss"].item()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(8):
        optimizer.zero_grad()
        model.forward_loss_wrapper(data, phase="train")["loss"].backward()
        optimizer.step()
    after = evaluate()
    assert after["loss"].item() < 0.8 * before
    assert after["step_energies"][0] > after["step_energies"][-1]  # thinking now walks downhill


def test_ebt_t2i_best_of_n_keeps_the_minimum_energy_sample(vae_dir, clip_dir, encoders, monkeypatch):
    torch.manual_seed(0)
    model = randomize_zero_init(EBT_IMG_T2I(tiny_hparams(vae_dir, clip_dir, mcmc_step_size=1.0), encoders=encoders))
    candidates, think = [], thinking.think

    def recording_think(*args, **kwargs):
        result = think(*args, **kwargs)
        candidates.append(result)
        return result
    monkeypatch.setattr(thinking, "think", recording_think)
    icfg = InferenceConfig(infer_ebt_num_steps=3, infer_generated_samples=4, infer_langevin_dynamics_noise=0.5)
    result = model.advanced_inference(dict(encoders.tokenize(CAPTIONS)), icfg)
    (all_samples,) = candidates
    energies = all_samples.final_energy.view(2, 4)  # rows b0g0..b0g3, b1g0..
    assert len(result.states) == 3 and result.states[-1].shape == (2, 4, 4, 4)
    torch.testing.assert_close(result.final_energy, energies.min(1).values)
    picked = all_samples.states[-1].view(2, 4, 4, 4, 4)[torch.arange(2), energies.argmin(1)]
    torch.testing.assert_close(result.states[-1], picked)
    assert (energies.max(1).values > energies.min(1).values).all()  # the choice mattered


def test_ebt_t2i_generates_images_from_captions(vae_dir, clip_dir, encoders):
    torch.manual_seed(0)
    model = randomize_zero_init(EBT_IMG_T2I(tiny_hparams(vae_dir, clip_dir, mcmc_step_size=1.0), encoders=encoders))
    images = model.generate(CAPTIONS)  # raw strings are tokenized like the data pipeline does
    assert images.shape == (2, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    best = model.generate(CAPTIONS, InferenceConfig(infer_generated_samples=2))
    assert best.shape == (2, 3, 32, 32)
    out = model.forward_loss_wrapper(batch(encoders), phase="test", inference=InferenceConfig(infer_ebt_num_steps=3))
    assert out["step_losses"].shape == (3,) and torch.isfinite(out["loss"])


# ----------------------------------------------------------------------------- DiT

def test_dit_t2i_loss_and_condition_projector(vae_dir, clip_dir, encoders):
    torch.manual_seed(0)
    model = randomize_zero_init(DiT_IMG_T2I(tiny_hparams(vae_dir, clip_dir, diffusion_steps=50), encoders=encoders))
    assert model.diffusion.num_timesteps == 50
    assert model.text_embeddings_projector.in_features == CLIP_DIM
    assert not {id(p) for m in encoders.modules for p in m.parameters()} & {id(p) for p in model.parameters()}
    assert all(not k.startswith("encoders") for k in model.state_dict())
    out = model.forward_loss_wrapper(batch(encoders), phase="train")
    assert torch.isfinite(out["loss"]) and set(out) >= {"mse_conditioned_loss", "vb_loss", "step_losses", "count"}
    out["loss"].backward()
    assert model.text_embeddings_projector.weight.grad.abs().sum() > 0
    assert all(p.grad is None for m in encoders.modules for p in m.parameters())


@pytest.mark.parametrize("deterministic", [False, True])
def test_dit_t2i_generates_through_every_diffusion_step(vae_dir, clip_dir, encoders, deterministic):
    torch.manual_seed(0)
    model = randomize_zero_init(DiT_IMG_T2I(tiny_hparams(vae_dir, clip_dir, diffusion_steps=25,
                                                         use_deterministic_reverse=deterministic), encoders=encoders))
    calls = []
    model.dit.register_forward_hook(lambda module, args, output: calls.append(int(args[1][0])))
    images = model.generate(CAPTIONS, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    assert calls == list(range(24, -1, -1))
    if deterministic:  # DDIM: the same start noise gives the same images
        torch.testing.assert_close(model.generate(CAPTIONS, generator=torch.Generator().manual_seed(0)), images)


# ----------------------------------------------------------------------------- the command line, end to end

@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["ebt", "dit"])
def test_text_to_image_trains_from_the_command_line_on_a_local_coco_copy(vae_dir, clip_dir, model_name, tmp_path,
                                                                       capsys):
    """train_model.py --image_task t2i on a COCO-Text-shaped saved dataset with the tiny encoders: it trains,
    tests, and saves generated-vs-real grids."""
    import glob

    import numpy as np
    from datasets import Dataset, Features, Image, Sequence, Value
    from PIL import Image as PILImage

    import train_model

    rng = np.random.default_rng(0)
    images = [PILImage.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(24)]
    features = Features({"image": Image(), "caption": Sequence(Value("string"))})
    rows = {"image": images, "caption": [[f"picture {k}"] for k in range(24)]}
    coco = tmp_path / "coco"
    from datasets import DatasetDict
    DatasetDict({"train": Dataset.from_dict(rows, features=features),
                 "validation": Dataset.from_dict(rows, features=features)}).save_to_disk(str(coco))
    argv = ["--modality", "IMG", "--image_task", "t2i", "--model_name", model_name, "--dataset_name", "coco_tiny",
            "--dataset_dir", str(coco), "--vae_path", vae_dir, "--clip_text_encoder_size", clip_dir,
            "--image_dims", "32", "32", "--patch_size", "2", "--model_size", "4xs", "--override_embedding_dim", "32",
            "--diffusion_steps", "25", "--max_steps", "6",
            "--warm_up_steps", "2", "--batch_size_per_device", "4", "--validation_split_pct", "0.2",
            "--val_check_interval", "6", "--limit_val_batches", "2", "--limit_test_batches", "2", "--num_workers", "0",
            "--log_image_every_n_steps", "3", "--no_wandb", "--log_dir", str(tmp_path / "logs"), "--run_name", "t2i"]
    if model_name == "ebt":
        argv += ["--mcmc_num_steps", "2", "--mcmc_step_size", "100", "--mcmc_step_size_learnable",
                 "--mcmc_step_size_lr_multiplier", "1500"]
    assert train_model.main(argv) == 0
    out = capsys.readouterr().out
    assert "text-to-image on VAE latents" in out and "test images (latent SmoothL1)" in out
    (run_dir,) = glob.glob(str(tmp_path / "logs" / "t2i" / "*"))
    assert sorted(p.split("/")[-1] for p in glob.glob(f"{run_dir}/images/*.png")) == [
        "step_3.png", "step_6.png", "test_batch_0.png"]
    checkpoint = torch.load(f"{run_dir}/checkpoints/last.ckpt", weights_only=False)
    assert not any("vae" in k or "text_model" in k for k in checkpoint["state_dict"])  # frozen encoders not saved


def test_text_to_image_flops_count_the_caption_projector_once_per_image_and_not_the_encoders(vae_dir, clip_dir,
                                                                                              encoders):
    from model.flops import dit_flops, image_ebt_flops

    hp = tiny_hparams(vae_dir, clip_dir, mcmc_num_steps=2)
    ebt, dit = EBT_IMG_T2I(hp, encoders=encoders), DiT_IMG_T2I(hp, encoders=encoders)
    T = ebt.tokens_per_sample
    assert T == dit.tokens_per_sample == (4 // ebt.transformer.patch_size) ** 2  # latent grid 4x4
    projector = sum(p.numel() for p in ebt.text_embeddings_projector.parameters())
    # the projector's FLOPs (12 per weight per thinking step, 2 steps) spread over the image's T patches
    assert ebt.estimate_flops() == pytest.approx(image_ebt_flops(ebt.transformer, ebt.cfg) + 2 * 12 * projector / T)
    assert dit.estimate_flops() == dit_flops(dit.dit)  # the DiT's projector is its condition_projector
    assert dit.estimate_flops() < ebt.estimate_flops()
