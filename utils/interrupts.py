"""Ctrl+C (SIGINT) and SIGTERM end a training run cleanly: the current step finishes, last.ckpt is written, the run
stops with a message that says how to resume (exit status 128 + the signal's number, as shells report it)."""
import signal

from lightning.pytorch.callbacks import Callback


class RunInterrupted(Exception):
    def __init__(self, name, step, checkpoint):
        super().__init__(f"stopped by {name} after step {step}; its state is in {checkpoint}: continue with "
                         f"--resume_training_ckpt {checkpoint}")
        self.exit_status = 128 + int(getattr(signal, name, signal.SIGTERM))


class CheckpointOnInterrupt(Callback):
    """At the first step boundary after SIGINT or SIGTERM (on any rank: the ranks agree on it), write
    `checkpoint_path` and raise RunInterrupted. A second Ctrl+C stops at once, as usual."""

    def __init__(self, checkpoint_path):
        self.checkpoint_path = checkpoint_path
        self.received = None
        self._previous_handler = None

    def _note(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(f"\n{self.received}: finishing this step, then writing {self.checkpoint_path} (Ctrl+C again to stop "
              f"at once)", flush=True)

    def on_train_start(self, trainer, pl_module):
        self._previous_handler = signal.signal(signal.SIGINT, self._note)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        received = self.received or ("SIGTERM" if trainer.received_sigterm else None)
        stop = received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.save_checkpoint(self.checkpoint_path)
            raise RunInterrupted(received or "a signal to another rank", trainer.global_step, self.checkpoint_path)

    def teardown(self, trainer, pl_module, stage):
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None
