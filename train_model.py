"""Train or evaluate an EBT, a Transformer++ or a DiT (docs/method.md); `bash job_scripts/quickstart.sh` runs the
offline CPU quickstart."""
import glob
import json
import os
import random
import signal
import sys
import time
import warnings

from utils.cli import UsageError, parse_args
from utils.usage import raised_by_this_project, run_entry_point
from utils.reports import print_loss_table


def choose_devices(gpus, cpu_processes=1):
    """(accelerator, devices, num_nodes) from --gpus; -1 (the default) takes the CPU when no GPU is visible (the
    published code refused); a count or a list of GPUs that are not there stops the run."""
    import json

    import torch

    num_nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", 1))
    if not torch.cuda.is_available():
        if gpus not in ("-1", "0"):  # e.g. a cluster node whose GPUs are hidden: a stop, not a day of CPU training
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            raise startup_error(f"--gpus {gpus} asks for GPUs but torch sees none here"
                                f"{f' (CUDA_VISIBLE_DEVICES={visible!r})' if visible is not None else ''}; "
                                f"append --gpus 0 to train on the CPU on purpose")
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
    return os.path.join(args.log_dir, args.run_name, time.strftime("%Y-%m-%d_%H-%M-%S")), True


def claim_run_folder(args, env):
    """(run folder, the folders this process made for it (outermost first), whether it is rank 0), claimed before
    any work.

    mkdir is atomic: of two runs that start in the same second, one gets <time>, the other <time>_1. A Slurm
    job's folder is reused only by the requeued job itself (it finds its hpc checkpoint there); any other run
    under a reused job id stops instead of overwriting that run's metrics and checkpoints.
    """
    run_dir, is_rank_zero = resolve_run_dir(args, env)
    if not is_rank_zero:
        return run_dir, [], False
    made, parent = [], os.path.dirname(os.path.abspath(run_dir))
    while not os.path.exists(parent):
        made.insert(0, parent)
        parent = os.path.dirname(parent)
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    if os.path.basename(run_dir).startswith("job"):
        if os.path.isdir(run_dir) and os.listdir(run_dir) and not glob.glob(os.path.join(run_dir, "hpc_ckpt_*.ckpt")):
            raise UsageError(f"train_model.py: error: {run_dir} already holds a run of this Slurm job id and no "
                             f"pre-emption checkpoint to continue; give another --run_name, or move that folder "
                             f"away (resume it with --resume_training_ckpt {run_dir}/checkpoints/last.ckpt)")
        if not os.path.isdir(run_dir):
            made.append(run_dir)
        os.makedirs(run_dir, exist_ok=True)
        remove_partial_checkpoints(run_dir)
        return run_dir, made, True
    base, suffix = run_dir, 1
    while True:
        try:
            os.mkdir(run_dir)
            return run_dir, made + [run_dir], True
        except FileExistsError:
            run_dir, suffix = f"{base}_{suffix}", suffix + 1


def remove_partial_checkpoints(run_dir):
    """A kill during a checkpoint write leaves its temporary file (utils/checkpointing.py); the next start of the
    run in its folder removes them: no finished checkpoint is ever a .tmp_ file."""
    for path in glob.glob(os.path.join(run_dir, ".tmp_*.ckpt")) + \
            glob.glob(os.path.join(run_dir, "checkpoints", ".tmp_*.ckpt")):
        os.remove(path)
        print(f"removed the partial checkpoint {path} of an interrupted write")


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


def load_checkpoint_hparams(args, argv, path, flag, finetune=False):
    """The checkpoint's hyperparameters with this command line's overrides (docs/method.md §11.2), and its weights."""
    from utils.cli import inherit_checkpoint_hparams

    checkpoint = read_checkpoint(path, flag)
    hp = inherit_checkpoint_hparams(args, argv, checkpoint["hyper_parameters"], finetune=finetune)
    return hp, checkpoint["state_dict"]


def read_checkpoint(path, flag):
    """A training checkpoint of this project, or one line saying the file is not one."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        checkpoint["hyper_parameters"], checkpoint["state_dict"]
    except Exception as error:  # a truncated or foreign file
        raise UsageError(f"train_model.py: error: --{flag} {path} is not a checkpoint of this project "
                         f"({type(error).__name__}: {error})") from error
    return checkpoint


def check_resume(args):
    """--resume_training_ckpt continues the same run: the same model and schedule, and steps left to train."""
    from utils.cli import resume_mismatch

    checkpoint = read_checkpoint(args.resume_training_ckpt, "resume_training_ckpt")
    message = resume_mismatch(args, checkpoint["hyper_parameters"], checkpoint.get("global_step", 0))
    if message:
        raise UsageError(f"train_model.py: error: --resume_training_ckpt {args.resume_training_ckpt}: {message}")


def main(argv=None):
    try:
        return run(argv)
    finally:  # close this run's W&B run, so that a next run in the same process (tests, sweeps) gets its own
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish()


def run(argv=None):
    """A run as a short sequence of named steps; a bad start stops before its folder exists, with one line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, state_dict = read_command_line(argv)
        seed_everything(args)
        if args.debug_dataloader:
            return debug_data(args)
        hardware = Hardware(args)
        run_dir, made, is_rank_zero = claim_run_folder(args, os.environ)
        try:
            module = build_module(args, state_dict)
        except BaseException:
            for folder in reversed(made):  # no folder for a run that stops at start-up
                if not os.listdir(folder):
                    os.rmdir(folder)
            raise
    except UsageError as error:
        print(" ".join(str(error).split()), file=sys.stderr)  # one line, also for a library's message in it
        return 2
    open_run_folder(args, run_dir, is_rank_zero)
    describe(args, module, hardware)
    trainer, checkpoint = build_trainer(args, module, hardware, run_dir)
    if args.only_test:
        return evaluate(args, module, trainer, run_dir)
    return train_and_report(args, module, trainer, checkpoint, run_dir)


def startup_error(message):
    return UsageError(f"train_model.py: error: {message}")


def read_command_line(argv):
    """(hyperparameters, trained weights or None): a test or finetuning run starts from its checkpoint's."""
    args = parse_args(argv)
    if args.only_test:
        return load_checkpoint_hparams(args, argv, args.only_test_model_ckpt, "only_test_model_ckpt")
    if args.finetuning_model_ckpt:
        return load_checkpoint_hparams(args, argv, args.finetuning_model_ckpt, "finetuning_model_ckpt",
                                       finetune=True)
    if args.resume_training_ckpt:
        check_resume(args)
    return args, None


def seed_everything(args):
    import lightning as L

    if args.is_random_seed:  # drawn once: DDP workers inherit rank 0's draw
        args.seed = int(os.environ.setdefault("EBT_RANDOM_SEED", str(random.randint(0, 10**6))))
    L.seed_everything(args.seed, workers=True, verbose=False)


def debug_data(args):
    """--debug_dataloader: iterate the training set once and stop."""
    from utils.dataloader_debugger import debug_dataloader

    try:
        debug_dataloader(args)
    except ValueError as error:
        raise startup_error(error) from error
    return 0


class Hardware:
    """Devices, the effective batch (and the peak lr under --lr_scaling_rule), precision switches."""

    def __init__(self, args):
        import torch

        self.accelerator, self.devices, self.num_nodes = choose_devices(args.gpus, args.num_cpu_processes)
        if self.accelerator == "cpu" and args.float_precision.startswith("16"):
            raise startup_error(f"--float_precision {args.float_precision} needs a GPU (float16 on the CPU is slow and "
                                f"unscaled); use bf16-mixed or 32-true on the CPU")
        per_node = (torch.cuda.device_count() if self.devices == -1 and self.accelerator == "gpu" else
                    len(self.devices) if isinstance(self.devices, list) else self.devices)
        self.num_devices = per_node * self.num_nodes
        args.effective_batch_size = self.num_devices * args.batch_size_per_device * args.accumulate_grad_batches
        if args.lr_scaling_rule:
            args.peak_learning_rate *= args.effective_batch_size / 256
        if args.set_matmul_precision:
            torch.set_float32_matmul_precision(args.set_matmul_precision)
        if args.detect_anomaly:
            torch.autograd.set_detect_anomaly(True)

    @property
    def device_type(self):
        return "cuda" if self.accelerator == "gpu" else "cpu"


def build_module(args, state_dict):
    """The trainer module with its model (trained weights loaded) and its data, built before the run folder."""
    from base_model_trainer import ModelTrainer

    try:
        module = ModelTrainer(args)
    except (ValueError, OSError) as error:  # e.g. a tokenizer or an encoder that cannot be loaded
        if not raised_by_this_project(error):
            raise
        raise startup_error(error) from error
    if state_dict is not None:
        try:
            module.load_state_dict(state_dict)
        except RuntimeError as error:  # e.g. a checkpoint from before a parameter was added
            detail = " ".join(str(error).split())[:300]
            raise startup_error(f"the checkpoint's weights do not fit this model: {detail}") from error
    try:  # a missing or empty dataset stops the run before its folder exists
        module.setup("test" if args.only_test else "fit")
    except ValueError as error:
        raise startup_error(error) from error
    return module


def open_run_folder(args, run_dir, is_rank_zero):
    """Rank 0 copies the console into the claimed run folder and speaks for the run; other ranks fall silent."""
    from utils.text_logger import tee_console

    if is_rank_zero:
        os.environ["EBT_RUN_DIR"] = run_dir  # inherited by the DDP workers Lightning starts
        tee_console(os.path.join(run_dir, args.console_log_filename))
        print(f"run folder: {run_dir}")
    else:
        sys.stdout = open(os.devnull, "w")


def describe(args, module, hardware):
    """The start-up lines: the model, its inputs and devices, and the task's own notes."""
    import torch

    if args.compile_model:
        module.model = torch.compile(module.model)
    task, hp = module.task, module.hparams
    n_params = sum(p.numel() for p in module.model.parameters())
    print(f"model: {hp.model_name}-{hp.model_size} ({hp.num_transformer_blocks} layers, "
          f"{hp.multiheaded_attention_heads} heads, width {hp.embedding_dim}), {n_params / 1e6:.2f}M parameters, "
          f"{task.describe_inputs(module.model)}, {hardware.accelerator} x {hardware.num_devices}, "
          f"effective batch {args.effective_batch_size}")
    for line in task.startup_lines(module.model, hardware.device_type):
        print(line)
    if args.log_model_archi:
        print(module.model)


def build_trainer(args, module, hardware, run_dir):
    """(Lightning Trainer, the best-checkpoint callback): loggers, checkpoints, progress bar, strategy, plugins."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, TQDMProgressBar

    from utils.checkpointing import AtomicCheckpointIO
    from utils.interrupts import CheckpointOnInterrupt

    if module.task.saves_pictures:
        module.image_dir = os.path.join(run_dir, "images")
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, monitor=args.checkpoint_monitor_string,
                                 mode=args.checkpoint_monitor_mode, save_top_k=args.save_top_k_ckpts, save_last=True,
                                 filename="step={step}-valid_loss={valid_loss:.4f}", auto_insert_metric_name=False,
                                 enable_version_counter=False)
    # last.ckpt is also written at the final step (inside the loop, so its state resumes exactly)
    final_checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="last", every_n_train_steps=args.max_steps,
                                       enable_version_counter=False)
    callbacks = [checkpoint, final_checkpoint, TQDMProgressBar(refresh_rate=max(1, args.log_every_n_steps // 2)),
                 CheckpointOnInterrupt(os.path.join(ckpt_dir, "last.ckpt"))]
    if args.log_model_archi:
        callbacks.append(ModelSummary(max_depth=-1))
    val_check = args.val_check_interval
    if isinstance(val_check, int):
        val_check *= args.accumulate_grad_batches  # Lightning counts micro-batches; we mean optimizer steps
    quiet_known_warnings()
    plugins = [AtomicCheckpointIO()]
    if args.is_slurm_run and "SLURM_JOB_ID" in os.environ:
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        # pre-emption: on SIGUSR1 (#SBATCH --signal=SIGUSR1@90) Lightning writes <run>/hpc_ckpt_<n>.ckpt and
        # requeues the job; the restarted job resumes from it (default_root_dir is the run folder)
        plugins.append(SLURMEnvironment(auto_requeue=True, requeue_signal=signal.SIGUSR1))
    trainer = L.Trainer(
        default_root_dir=run_dir,
        accelerator=hardware.accelerator, devices=hardware.devices, num_nodes=hardware.num_nodes,
        strategy=distribution_strategy(args, hardware.num_devices),
        precision=args.float_precision, max_steps=args.max_steps, max_epochs=-1,
        logger=build_loggers(args, module, run_dir),
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
    return trainer, checkpoint


def build_loggers(args, module, run_dir):
    """metrics.csv always; W&B where it can work."""
    from utils.csv_log import ContinuingCSVLogger

    loggers = [ContinuingCSVLogger(run_dir, name="", version="")]
    if wandb_configured(args):
        from lightning.pytorch.loggers import WandbLogger

        wandb_logger = WandbLogger(name=args.run_name, project=args.wandb_project, entity=args.wandb_entity or None,
                                   save_dir=run_dir, offline=args.wandb_offline, tags=args.wandb_tags)
        if args.wandb_watch:
            wandb_logger.watch(module.model, log="all", log_freq=args.wandb_watch_log_freq)
        loggers.append(wandb_logger)
    elif not args.no_wandb:
        print("W&B: no API key or offline mode found, logging locally only (wandb login, or --no_wandb to silence)")
    return loggers


def distribution_strategy(args, num_devices):
    if args.distributed_strategy == "fsdp":
        from lightning.pytorch.strategies import ModelParallelStrategy

        # FSDP2 over all ranks (ModelTrainer.configure_model shards), also with one process; checkpoints are
        # one ordinary file gathered on rank 0, which single-process tests, generation and resuming all read
        return ModelParallelStrategy(data_parallel_size=num_devices, tensor_parallel_size=1,
                                     save_distributed_checkpoint=False)
    if num_devices == 1:
        return "auto"
    if args.find_unused_parameters:
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=True)
    return args.distributed_strategy


def quiet_known_warnings():
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # only a requeued run finds its checkpoint folder filled: claim_run_folder refused every other reuse
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")  # ResumableBatchSampler is
    warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")  # Lightning 2.6 on torch 2.13
    # our epoch metrics are torchmetrics, already all-reduced across DDP ranks before they are logged
    warnings.filterwarnings("ignore", ".*when logging on epoch level in distributed setting.*")
    warnings.filterwarnings("ignore", ".*functional.all_gather is deprecated.*")
    # FSDP2 on views among a unit's outputs (rotated keys, squeezed energies): none is modified in place
    warnings.filterwarnings("ignore", ".*returned a view tensor.*")


def logged(trainer, prefix):
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}


def evaluate(args, module, trainer, run_dir):
    """--only_test: the task's test report (test_report.json), or generated answers (results.jsonl)."""
    task = module.task
    if task.answers_questions:
        results_dir = args.infer_output_dir or run_dir
        os.makedirs(results_dir, exist_ok=True)
        suffix = f"_rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        results = os.path.join(results_dir, f"results{suffix}.jsonl")
        with open(results, "w") as module.results_file:
            trainer.test(module, verbose=False)
        scores = logged(trainer, "test_")
        print(f"\nanswers to {args.dataset_name}: exact match {scores['test_em_score']:.4f}, "
              f"token F1 {scores['test_f1_score']:.4f}")
        print(f"generations: {results}")
        return 0
    trainer.test(module, verbose=False)
    report = logged(trainer, "test_")
    if args.infer_plot_energy_landscape and trainer.global_rank == 0:
        print(f"pictures of thinking: {draw_thinking(args, module, run_dir)}")
    task.print_test_report(report, f"{args.dataset_name} test split, checkpoint {args.only_test_model_ckpt}")
    with open(os.path.join(run_dir, "test_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"report: {os.path.join(run_dir, 'test_report.json')}")
    if task.final_test_title:
        print(f"pictures: {module.image_dir}")
    return 0


def last_good_checkpoint(run_dir, good="good"):
    path = os.path.join(run_dir, "checkpoints", "last.ckpt")
    if os.path.isfile(path):
        return f"the last {good} checkpoint is {path}" + (" (no checkpoint holds weights that are not finite)"
                                                           if good == "good" else "")
    return "no checkpoint was written before"


def draw_thinking(args, module, run_dir):
    """--infer_plot_energy_landscape: energy_landscape.png of the first test batch (also to W&B when on)."""
    import torch

    from inference.energy_landscape import landscape_report, plot_report

    batch = next(iter(module.test_dataloader()))
    batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with module.seeded("test", 0):
        report = landscape_report(module.model, batch, module.inference)
    path = plot_report(report, os.path.join(run_dir, "energy_landscape.png"),
                       title=f"{args.model_name}-{args.model_size} on {args.dataset_name}")
    module.log_picture("energy_landscape", path)
    return path


def train_and_report(args, module, trainer, checkpoint, run_dir):
    """Train, validate, (images) test, then the tables, the plot and where everything is."""
    from utils.plotting import plot_training_curves

    from base_model_trainer import TrainingDiverged
    from utils.checkpointing import CheckpointWriteError
    from utils.interrupts import RunInterrupted

    start = time.time()
    try:
        trainer.fit(module, ckpt_path=args.resume_training_ckpt or None)
    except TrainingDiverged as error:
        if trainer.global_rank == 0:
            print(f"train_model.py: {error}; {last_good_checkpoint(run_dir)}", file=sys.stderr)
        return 1
    except CheckpointWriteError as error:
        if trainer.global_rank == 0:
            print(f"train_model.py: stopped at step {trainer.global_step}: {error}; "
                  f"{last_good_checkpoint(run_dir, 'written')}", file=sys.stderr)
        return 1
    except RunInterrupted as interrupted:
        if trainer.global_rank == 0:
            print(f"train_model.py: {interrupted}", file=sys.stderr)
        return interrupted.exit_status
    train_seconds = time.time() - start
    if trainer.global_rank == 0:  # a finished run's pre-emption checkpoints are consumed: a reused job id is refused
        for hpc in glob.glob(os.path.join(run_dir, "hpc_ckpt_*.ckpt")):
            os.remove(hpc)
    if args.fast_dev_run:
        return 0
    task = module.task
    trainer.validate(module, verbose=False)
    valid = logged(trainer, "valid_")
    if task.final_test_title:  # every rank takes part in the test, rank 0 reports it
        trainer.test(module, verbose=False)
    if trainer.global_rank != 0:
        return 0
    print_loss_table(valid, "valid", "validation", kind=task.loss_kind)
    if task.final_test_title:
        task.print_test_report(logged(trainer, "test_"), task.final_test_title)
        print(f"pictures:    {module.image_dir}")
    print(f"trained {trainer.global_step} steps in {train_seconds:.0f} s")
    metrics_csv = os.path.join(run_dir, "metrics.csv")
    plot = plot_training_curves(metrics_csv, os.path.join(run_dir, "training_curves.png"),
                                title=f"{args.model_name}-{args.model_size} on {args.dataset_name}",
                                ylabel=task.curve_label)
    last_ckpt = os.path.join(run_dir, "checkpoints", "last.ckpt")
    print(f"checkpoints: {os.path.dirname(last_ckpt)} (best: {checkpoint.best_model_path or last_ckpt})")
    print(f"metrics:     {metrics_csv}")
    print(f"plot:        {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
