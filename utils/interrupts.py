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
    """At the first optimizer-step boundary after SIGINT or SIGTERM (on any rank: the ranks agree on it), write
    `checkpoint_path` and raise RunInterrupted. A second Ctrl+C stops at once, as usual."""

    def __init__(self, checkpoint_path):
        self.checkpoint_path = checkpoint_path
        self.received = None
        self._previous_handlers = {}

    def _note(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(f"\n{self.received}: finishing this step, then writing {self.checkpoint_path} (Ctrl+C again to stop "
              f"at once)", flush=True)

    def on_train_start(self, trainer, pl_module):
        # ours rather than Lightning's SIGTERM handler, which stops at the next micro-batch, also inside a
        # gradient-accumulation window, without a checkpoint
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._note)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (batch_idx + 1) % trainer.accumulate_grad_batches:  # only where an optimizer step has just ended
            return
        received = self.received
        stop = received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.save_checkpoint(self.checkpoint_path)
            raise RunInterrupted(received or "a signal to another rank", trainer.global_step, self.checkpoint_path)

    def teardown(self, trainer, pl_module, stage):
        for signum, handler in self._previous_handlers.items():
            if signal.getsignal(signum) == self._note:  # Lightning may have restored its own ones already
                signal.signal(signum, handler)
        self._previous_handlers = {}
