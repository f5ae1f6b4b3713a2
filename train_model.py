"""Train or evaluate an EBT, a Transformer++ or a DiT (docs/method.md); `bash job_scripts/quickstart.sh` runs the
offline CPU quickstart."""
import json
import os
import random
import signal
import sys
import time
import warnings

from utils.cli import UsageError, parse_args


def choose_devices(gpus, cpu_processes=1):
    """(accelerator, devices, num_nodes) from --gpus; CPU when no GPU is visible (the published code refused)."""
    import json

    import torch

    num_nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", 1))
    if not torch.cuda.is_available():
        if gpus not in ("-1", "0"):
            print(f"note: --gpus {gpus} asked for GPUs but none is visible; training on CPU")
        return "cpu", cpu_processes, 1
    if gpus.startswith("["):
        return "gpu", json.loads(gpus), num_nodes
    count = int(gpus)
    return ("cpu", 1, 1) if count == 0 else ("gpu", -1 if count < 0 else count, num_nodes)


def resolve_run_dir(args, env):
    """(run folder, whether this process is global rank 0), the same folder in every process of a run.

    Lightning's DDP workers (LOCAL_RANK > 0) inherit EBT_RUN_DIR from rank 0. Processes that srun starts
    side by side (SLURM_NTASKS > 1) cannot share a timestamp, so they name the folder after the job; so does
    every Slurm batch run (--is_slurm_run), whose requeued restart must find its own folder again.
    """
    if env.get("LOCAL_RANK", "0") != "0" and "EBT_RUN_DIR" in env:
        return env["EBT_RUN_DIR"], False
    if "SLURM_JOB_ID" in env and (int(env.get("SLURM_NTASKS", 1)) > 1 or args.is_slurm_run):
        # a requeued job (pre-emption) keeps its job id, so it finds its folder and hpc checkpoint again
        job = env.get("SLURM_ARRAY_JOB_ID", env["SLURM_JOB_ID"])
        task = f"_{env['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_TASK_ID" in env else ""
        run_dir = os.path.join(args.log_dir, args.run_name, f"job{job}{task}")
        return run_dir, env.get("SLURM_PROCID", "0") == "0"
    base = run_dir = os.path.join(args.log_dir, args.run_name, time.strftime("%Y-%m-%d_%H-%M-%S"))
    suffix = 1
    while os.path.exists(run_dir):  # two runs started in the same second get separate folders
        run_dir, suffix = f"{base}_{suffix}", suffix + 1
    return run_dir, True


def wandb_configured(args):
    """Use W&B only where it can work: a key, or an explicit offline mode; never block the default run."""
    if args.no_wandb or os.environ.get("WANDB_MODE") == "disabled":
        return False
    if args.wandb_offline or os.environ.get("WANDB_MODE") in ("offline", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = os.path.expanduser("~/.netrc")
    return os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read()


def print_loss_table(report, prefix, what, kind=None):
    """Loss, perplexity (text) and (EBT) mean energy after each thinking step; PSNR for images."""
    steps = sum(1 for k in report if k.startswith(f"{prefix}_loss_step_"))
    has_energy = f"{prefix}_energy_step_1" in report
    is_text = f"{prefix}_perplexity_step_1" in report
    kind = kind or ("token-weighted" if is_text else "SmoothL1 to the clean images" if f"{prefix}_psnr" in report
                    else "diffusion training loss")
    print(f"\n{what} ({kind}):")
    print(f"  {'after step':>10}  {'loss':>8}" + (f"  {'perplexity':>10}" if is_text else "")
          + (f"  {'energy':>9}" if has_energy else ""))
    if has_energy:
        print(f"  {'(guess)':>10}  {'':>8}" + (f"  {'':>10}" if is_text else "")
              + f"  {report[f'{prefix}_energy_step_1']:>9.4f}")
    for i in range(1, steps + 1):
        line = f"  {i:>10}  {report[f'{prefix}_loss_step_{i}']:>8.4f}"
        if is_text:
            line += f"  {report[f'{prefix}_perplexity_step_{i}']:>10.3f}"
        if has_energy:  # the energy after step i is the one step i+1 starts from, or the final one
            line += f"  {report.get(f'{prefix}_energy_step_{i + 1}', report[f'{prefix}_energy_final']):>9.4f}"
        print(line)
    if f"{prefix}_psnr" in report:
        passes = report.get(f"{prefix}_forward_passes")
        print(f"  PSNR {report[f'{prefix}_psnr']:.2f} dB (of the mean pixel MSE {report[f'{prefix}_pixel_mse']:.1f}; "
              f"mean of per-image PSNRs {report[f'{prefix}_psnr_per_image']:.2f} dB)"
              + (f", {passes:.0f} forward passes" if passes else "")
              + (f"; the noisy input: {report[f'{prefix}_noisy_psnr']:.2f} dB" if f"{prefix}_noisy_psnr" in report else ""))


def print_rollout(report, args):
    """Per-generated-frame errors of --infer_generate_video rollouts, in the encoder's feature space."""
    k = args.infer_video_condition_frames
    print(f"\nrollouts: {k} real frames, then frames {k}..{args.infer_max_gen_len - 1} predicted one at a time")
    print(f"  MSE {report['test_mse_loss']:.4f}, SmoothL1 {report['test_smooth_l1_loss']:.4f} (first predicted "
          f"frame: MSE {report['test_first_frame_mse_loss']:.4f}, SmoothL1 {report['test_first_frame_smooth_l1_loss']:.4f})")
    frames = sorted((int(key.rsplit("_", 1)[1]), value) for key, value in report.items()
                    if key.startswith("test_mse_frame_"))
    print("  MSE per frame: " + ", ".join(f"{i}: {v:.4f}" for i, v in frames))


def load_checkpoint_hparams(args, argv, path, flag, finetune=False):
    """The checkpoint's hyperparameters with this command line's overrides (docs/method.md §11.2), and its weights."""
    import torch

    from utils.cli import inherit_checkpoint_hparams

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        trained = checkpoint["hyper_parameters"]
    except Exception as error:  # a truncated or foreign file
        raise UsageError(f"train_model.py: error: --{flag} {path} is not a checkpoint of this project "
                         f"({type(error).__name__}: {error})") from error
    hp = inherit_checkpoint_hparams(args, argv, trained, finetune=finetune)
    return hp, checkpoint["state_dict"]


def main(argv=None):
    try:
        return run(argv)
    finally:  # close this run's W&B run, so that a next run in the same process (tests, sweeps) gets its own
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish()


def run(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_args(argv)
        state_dict = None
        if args.only_test:
            args, state_dict = load_checkpoint_hparams(args, argv, args.only_test_model_ckpt, "only_test_model_ckpt")
        elif args.finetuning_model_ckpt:
            args, state_dict = load_checkpoint_hparams(args, argv, args.finetuning_model_ckpt,
                                                       "finetuning_model_ckpt", finetune=True)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from base_model_trainer import ModelTrainer
    from data.nlp import load_tokenizer
    from model.nlp.vocab_step import describe_vocab_path
    from utils.checkpointing import AtomicCheckpointIO
    from utils.plotting import plot_training_curves
    from utils.text_logger import tee_console

    if args.is_random_seed:  # drawn once: DDP workers inherit rank 0's draw
        args.seed = int(os.environ.setdefault("EBT_RANDOM_SEED", str(random.randint(0, 10**6))))
    L.seed_everything(args.seed, workers=True, verbose=False)

    if args.modality == "NLP":
        try:
            tokenizer = load_tokenizer(args.tokenizer)
        except ValueError as error:
            print(f"train_model.py: error: {error}", file=sys.stderr)
            return 2
        args.vocab_size, args.pad_token_id = len(tokenizer), tokenizer.pad_token_id
    if args.debug_dataloader:
        from utils.dataloader_debugger import debug_dataloader

        try:
            debug_dataloader(args)
        except ValueError as error:
            print(f"train_model.py: error: {error}", file=sys.stderr)
            return 2
        return 0

    run_dir, is_rank_zero = resolve_run_dir(args, os.environ)
    accelerator, devices, num_nodes = choose_devices(args.gpus, args.num_cpu_processes)
    if args.distributed_strategy == "fsdp" and accelerator != "gpu":
        print("train_model.py: error: --distributed_strategy fsdp needs GPUs (Lightning's FSDP has no CPU "
              "backend); use ddp on CPU", file=sys.stderr)
        return 2
    num_devices = (torch.cuda.device_count() if devices == -1 and accelerator == "gpu" else
                   len(devices) if isinstance(devices, list) else devices) * num_nodes
    args.effective_batch_size = num_devices * args.batch_size_per_device * args.accumulate_grad_batches
    if args.lr_scaling_rule:
        args.peak_learning_rate *= args.effective_batch_size / 256
    if args.set_matmul_precision:
        torch.set_float32_matmul_precision(args.set_matmul_precision)
    if args.detect_anomaly:
        torch.autograd.set_detect_anomaly(True)

    module = ModelTrainer(args)
    if state_dict is not None:
        try:
            module.load_state_dict(state_dict)
        except RuntimeError as error:  # e.g. a checkpoint from before a parameter was added
            detail = " ".join(str(error).split())[:300]
            print(f"train_model.py: error: the checkpoint's weights do not fit this model: {detail}", file=sys.stderr)
            return 2
    try:  # build the data now: a missing or empty dataset stops the run before its folder exists
        module.setup("test" if args.only_test else "fit")
    except ValueError as error:
        print(f"train_model.py: error: {error}", file=sys.stderr)
        return 2

    if is_rank_zero:
        os.makedirs(run_dir, exist_ok=True)
        os.environ["EBT_RUN_DIR"] = run_dir  # inherited by the DDP workers Lightning starts
        tee_console(os.path.join(run_dir, args.console_log_filename))
        print(f"run folder: {run_dir}")
    else:  # rank 0 makes the run folder and speaks for the run
        sys.stdout = open(os.devnull, "w")
    if args.compile_model:
        module.model = torch.compile(module.model)
    n_params = sum(p.numel() for p in module.model.parameters())
    inputs = (f"vocabulary {args.vocab_size}, context {args.context_length}" if args.modality == "NLP" else
              f"clips of {args.context_length + 1} frames of {args.image_dims[0]}x{args.image_dims[1]}, "
              f"{args.backbone_type} features ({module.hparams.feature_dim} per frame)" if args.modality == "VID" else
              f"{args.image_dims[0]}x{args.image_dims[1]} images, patch {args.patch_size}, "
              + (f"noise level {args.denoise_images_noise_level}" if args.image_task == "denoising" else
                 f"text-to-image on VAE latents ({args.vae_path}), CLIP {args.clip_text_encoder_size}"))
    print(f"model: {args.model_name}-{args.model_size} ({args.num_transformer_blocks} layers, "
          f"{args.multiheaded_attention_heads} heads, width {args.embedding_dim}), {n_params / 1e6:.2f}M parameters, "
          f"{inputs}, {accelerator} x {num_devices}, effective batch {args.effective_batch_size}")
    if args.modality == "NLP":
        print(describe_vocab_path(module.model.cfg, args.model_name == "ebt", "cuda" if accelerator == "gpu" else "cpu"))
    if args.modality in ("IMG", "VID"):
        module.image_dir = os.path.join(run_dir, "images")
    if args.log_model_archi:
        print(module.model)

    loggers = [CSVLogger(run_dir, name="", version="")]
    if wandb_configured(args):
        from lightning.pytorch.loggers import WandbLogger

        wandb_logger = WandbLogger(name=args.run_name, project=args.wandb_project, entity=args.wandb_entity or None,
                                   save_dir=run_dir, offline=args.wandb_offline, tags=args.wandb_tags)
        if args.wandb_watch:
            wandb_logger.watch(module.model, log="all", log_freq=args.wandb_watch_log_freq)
        loggers.append(wandb_logger)
    elif not args.no_wandb:
        print("W&B: no API key or offline mode found, logging locally only (wandb login, or --no_wandb to silence)")

    ckpt_dir = os.path.join(run_dir, "checkpoints")
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, monitor=args.checkpoint_monitor_string,
                                 mode=args.checkpoint_monitor_mode, save_top_k=args.save_top_k_ckpts, save_last=True,
                                 filename="step={step}-valid_loss={valid_loss:.4f}", auto_insert_metric_name=False,
                                 enable_version_counter=False)
    # last.ckpt is also written at the final step (inside the loop, so its state resumes exactly)
    final_checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="last", every_n_train_steps=args.max_steps,
                                       enable_version_counter=False)
    callbacks = [checkpoint, final_checkpoint, TQDMProgressBar(refresh_rate=max(1, args.log_every_n_steps // 2))]
    if args.log_model_archi:
        callbacks.append(ModelSummary(max_depth=-1))
    strategy = "auto"
    if num_devices > 1:
        strategy = args.distributed_strategy
        if args.find_unused_parameters:
            from lightning.pytorch.strategies import DDPStrategy

            strategy = DDPStrategy(find_unused_parameters=True)
    val_check = args.val_check_interval
    if isinstance(val_check, int):
        val_check *= args.accumulate_grad_batches  # Lightning counts micro-batches; we mean optimizer steps
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # our console.log; the folder is new
    warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")  # ResumableBatchSampler is
    warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")  # Lightning 2.6 on torch 2.13
    # our epoch metrics are torchmetrics, already all-reduced across DDP ranks before they are logged
    warnings.filterwarnings("ignore", ".*when logging on epoch level in distributed setting.*")
    warnings.filterwarnings("ignore", ".*functional.all_gather is deprecated.*")

    plugins = [AtomicCheckpointIO()]
    if args.is_slurm_run and "SLURM_JOB_ID" in os.environ:
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        # pre-emption: on SIGUSR1 (#SBATCH --signal=SIGUSR1@90) Lightning writes <run>/hpc_ckpt_<n>.ckpt and
        # requeues the job; the restarted job resumes from it (default_root_dir is the run folder)
        plugins.append(SLURMEnvironment(auto_requeue=True, requeue_signal=signal.SIGUSR1))
    trainer = L.Trainer(
        default_root_dir=run_dir,
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
        precision=args.float_precision, max_steps=args.max_steps, max_epochs=-1, logger=loggers,
        callbacks=callbacks, plugins=plugins, enable_model_summary=args.log_model_archi,
        num_sanity_val_steps=args.val_sanity, fast_dev_run=args.fast_dev_run,
        limit_train_batches=args.limit_train_batches, limit_val_batches=args.limit_val_batches,
        limit_test_batches=args.limit_test_batches,
        overfit_batches=args.overfit_batches, val_check_interval=val_check,
        check_val_every_n_epoch=args.check_val_every_n_epoch,
        gradient_clip_val=args.gradient_clip_val if args.gradient_clip_val > 0 else None,
        accumulate_grad_batches=args.accumulate_grad_batches, deterministic=args.deterministic,
        profiler=args.profiler, log_every_n_steps=args.log_every_n_steps, detect_anomaly=args.detect_anomaly,
        use_distributed_sampler=False,  # our samplers shard by rank themselves
        inference_mode=False)  # the EBT takes input gradients while validating

    if args.only_test and args.execution_mode == "inference" and args.modality == "NLP":
        results_dir = args.infer_output_dir or run_dir
        os.makedirs(results_dir, exist_ok=True)
        suffix = f"_rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        results = os.path.join(results_dir, f"results{suffix}.jsonl")
        with open(results, "w") as module.results_file:
            trainer.test(module, verbose=False)
        scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
        print(f"\nanswers to {args.dataset_name}: exact match {scores['test_em_score']:.4f}, "
              f"token F1 {scores['test_f1_score']:.4f}")
        print(f"generations: {results}")
        return 0
    if args.only_test:
        trainer.test(module, verbose=False)
        report = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
        if args.modality == "VID" and args.infer_generate_video:
            print_rollout(report, args)
        else:
            print_loss_table(report, "test", f"{args.dataset_name} test split, checkpoint {args.only_test_model_ckpt}",
                             kind="SmoothL1 to the next frame's features" if args.modality == "VID" else None)
        with open(os.path.join(run_dir, "test_report.json"), "w") as f:
            json.dump(report, f, indent=1)
        print(f"report: {os.path.join(run_dir, 'test_report.json')}")
        if args.modality == "IMG":
            print(f"pictures: {module.image_dir}")
        return 0

    start = time.time()
    trainer.fit(module, ckpt_path=args.resume_training_ckpt or None)
    train_seconds = time.time() - start
    if args.fast_dev_run:
        return 0
    last_ckpt = os.path.join(ckpt_dir, "last.ckpt")

    trainer.validate(module, verbose=False)
    if trainer.global_rank != 0:
        return 0
    report = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid_")}
    print_loss_table(report, "valid", "validation",
                     kind="SmoothL1 to the next frame's features" if args.modality == "VID" else None)
    if args.modality == "IMG":  # what the paper compares: PSNR of denoised test images (docs/method.md §7.5)
        trainer.test(module, verbose=False)
        test = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
        print_loss_table(test, "test", f"test images denoised at noise level {args.denoise_images_noise_level}"
                         if args.image_task == "denoising" else "test images (latent SmoothL1)")
        print(f"pictures:    {module.image_dir}")
    print(f"trained {trainer.global_step} steps in {train_seconds:.0f} s")

    metrics_csv = os.path.join(run_dir, "metrics.csv")
    plot = plot_training_curves(metrics_csv, os.path.join(run_dir, "training_curves.png"),
                                title=f"{args.model_name}-{args.model_size} on {args.dataset_name}",
                                ylabel="cross-entropy (nats / token)" if args.modality == "NLP" else
                                "loss (SmoothL1 for the EBT, diffusion loss for the DiT)")
    print(f"checkpoints: {ckpt_dir} (best: {checkpoint.best_model_path or last_ckpt})")
    print(f"metrics:     {metrics_csv}")
    print(f"plot:        {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
