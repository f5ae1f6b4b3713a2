"""Autoregressive EBT for video: next-frame prediction in a frozen encoder's feature space (docs/method.md §8.2).

    features f_0..f_C of C+1 frames (SD-VAE latents, DINOv2 CLS features or raw pixels; model/vid/encoders.py)
    observed  o_i = down(f_i)                            down: Linear(F, D), identity when F == D
    thinking  p <- p - alpha * dE(o_<=i, down(p))/dp     p lives in the feature space (B, n, F)
    loss      mean over steps of SmoothL1(p_step, f_{i+1})

The trunk, its fast observed-stream cache, every ebt_type and the thinking loop are the text EBT's
(model/ar_ebt.py, model/thinking.py); only the prediction space differs: no softmax, predictions are
feature vectors. Initial guesses: random noise, zeros, or a copy of the most recent frame's features.
Langevin noise is added to the prediction in the feature space (the published code added it after the
down-projection) and, unlike the published video model, honours --no_langevin_during_eval; System 2
thinking at test time (more steps, best-of-N by energy) works here (the published model raised).
"""
import torch
import torch.nn.functional as F

from model.ar_ebt import AutoregressiveEBT, energy_of_embedded
from model.config import VideoEBTConfig
from model.flops import autoregressive_ebt_flops, weight_count
from model.frozen import FollowsDevice
from model.thinking import EnergyMinimizer, ThinkingProblem
from model.vid.common import feature_projection, frame_features, inputs_and_targets, next_frame_loss


class EBT_VID(FollowsDevice, EnergyMinimizer):
    """Feature down-projection + the AR EBT trunk + alpha; a frozen frame encoder kept outside the weights."""

    def __init__(self, hparams, encoder=None):
        cfg = hparams if isinstance(hparams, VideoEBTConfig) else VideoEBTConfig.from_hparams(hparams)
        super().__init__(cfg)
        self.landscape_conditioned = cfg.ebt_type != "default"
        self.encoder_down_projection = feature_projection(cfg.feature_dim, cfg.embedding_dim)
        self.transformer = AutoregressiveEBT(cfg)
        self.encoders = encoder  # a plain object: frozen, not a submodule, not in the state dict; follows .to()

    def estimate_flops(self):
        """Training FLOPs per predicted frame (model/flops.py); the frozen encoder is not counted."""
        return autoregressive_ebt_flops(self, observed_input_weights=weight_count(self.encoder_down_projection))

    def embed_observed(self, features):
        """(B, n, F) features of observed frames -> (B, n, D) trunk inputs."""
        return self.encoder_down_projection(features)

    def embed_prediction(self, prediction):
        """Predicted features (B, n, F) -> (B, n, D); the same projection as the observed frames."""
        return self.encoder_down_projection(prediction)

    def initial_features(self, observed_features, rows=None):
        """The initial guess (rows, n, F) for the frames after `observed_features` (B, n, F)."""
        if rows is not None and rows != observed_features.shape[0]:
            observed_features = observed_features.repeat_interleave(rows // observed_features.shape[0], 0)
        kind = self.cfg.denoising_initial_condition
        if kind == "most_recent_embedding":
            return observed_features.detach().clone()
        if kind == "zeros":
            return torch.zeros_like(observed_features)
        return torch.randn_like(observed_features) * self.cfg.gaussian_random_noise_scaling

    def energy_function(self, observed_features, learning):
        """E(prediction (B, n, F), landscape) -> (B, n) against observed frames (B, n, F)."""
        energy = self.transformer.energy_function(self.embed_observed(observed_features), learning)
        return energy_of_embedded(energy, self.embed_prediction)

    def initial_state(self, rows, n, device, latest=None):
        """initial_features of the newest observed frames `latest` (B, n, F), for `rows` rows."""
        return self.initial_features(latest, rows)

    def forward(self, features, learning=False, final_energy=False):
        """Think about the next frame at every position. features (B, n, F) -> ThinkingResult of (B, n, F)."""
        B, n, _ = features.shape
        return self.think_about(self.energy_function(features, learning), B, n, features.device, learning,
                                final_energy, latest=features)

    def advanced_inference(self, features, icfg):
        energy_for = lambda G: self.energy_function(features.repeat_interleave(G, dim=0), learning=False)
        return self.advanced_think_about(energy_for, features.shape[0], features.shape[1], features.device, icfg,
                                         latest=features)

    def thinking_problem(self, batch):
        """ThinkingProblem of a batch of C+1 frames: the next frame's features at every position are the target,
        the loss per position the SmoothL1 to them."""
        inputs, targets = inputs_and_targets(frame_features(batch, self.encoders))
        B, n, _ = inputs.shape

        def loss(state):
            return F.smooth_l1_loss(state.float(), targets.float(), beta=1.0, reduction="none").mean(-1)

        return ThinkingProblem(lambda rows: self.energy_function(inputs[rows], learning=False),
                               self.initial_state(B, n, inputs.device, latest=inputs), targets, loss,
                               step_size_shape=(B, n, 1))

    def forward_loss_wrapper(self, batch, phase="train", final_energy=None, inference=None):
        """Loss and logs for a batch of C+1 frames: {"video": (B, C+1, 3, H, W)} or {"latents": (B, C+1, F)}."""
        inputs, targets = inputs_and_targets(frame_features(batch, self.encoders))
        training = phase == "train"
        result, final_energy = self.think_for_loss(inputs, training, final_energy, inference)
        step_losses = torch.stack([next_frame_loss(p, targets) for p in result.states])
        return {
            **self.thinking_report(result, step_losses, final_energy),
            "mse_loss": (result.states[-1].detach() - targets).pow(2).mean(),
            "count": torch.tensor(targets.shape[0] * targets.shape[1], device=targets.device),
        }
