"""Gaussian diffusion with IDDPM/ADM semantics, for the DiT baseline and the EBT noising (docs/method.md §7.1, §7.4).

Forward process over N steps with a linear beta schedule (scaled by 1000/N so that any N spans the same
noise range as the standard 1000-step DDPM):

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),        abar_t = prod_{s<=t} (1 - beta_s)

The network predicts eps and v in [-1, 1] ("learned range"): log var = frac log beta_t + (1 - frac) log
beta~_t with frac = (v + 1) / 2, beta~_t the (clipped) posterior variance. Training loss ("MSE" loss
type, as DiT): ||eps - eps_hat||^2 averaged over pixels + the variational-bound term (bits per dim) with
a stop-gradient on the predicted mean, so the bound trains only the variance. DiT does *not* rescale that
term by N/1000 (IDDPM does so only for its RESCALED_MSE loss type); neither do we.

Schedules are float64; per-t coefficients are cast to the input's dtype. Sampling loops run under
no_grad, start from `noise` (x_t when `timestep_start` is given) and call the model exactly
timestep_start + 1 times (t = timestep_start, ..., 0).

Noise levels (docs/method.md §7.1): a model trained at noise level L with `diffusion_steps` steps uses
`diffusion_for_noise_level(diffusion_steps, L)` (int(diffusion_steps / L) steps), so its t = steps - 1 is
the point a fraction L of the way through a standard 1000-step schedule; testing at level L' uses
`test_timestep(L', num_timesteps)`.
"""
import math

import torch

# ----------------------------------------------------------------------------- schedule and helpers


def linear_beta_schedule(num_steps):
    """DDPM's linear betas, scaled to num_steps: linspace(1e-4 * 1000/N, 0.02 * 1000/N, N), float64."""
    scale = 1000 / num_steps
    return torch.linspace(scale * 0.0001, scale * 0.02, num_steps, dtype=torch.float64)


def diffusion_for_noise_level(diffusion_steps, noise_level):
    """The published `denoise_images_noise_level` schedule: int(diffusion_steps / noise_level) steps."""
    return GaussianDiffusion(int(diffusion_steps / noise_level))


def test_timestep(noise_level, num_timesteps):
    """Timestep that noises to level L at test time: int(L * num_timesteps) - 1 (docs/method.md §7.1)."""
    return int(noise_level * num_timesteps) - 1


test_timestep.__test__ = False  # a library function, not a pytest test, if a test module imports it by name


def mean_flat(x):
    """Mean over all but the batch dimension: (B, ...) -> (B,)."""
    return x.mean(dim=tuple(range(1, x.dim())))


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    """The tanh approximation of the standard normal CDF that IDDPM/ADM use."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log P(x) of 8-bit data scaled to [-1, 1] under N(means, e^(2 log_scales)) integrated over x's bin.

    Bins have width 2/255 around each of the 256 levels; the end bins extend to -inf / +inf.
    """
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


# ----------------------------------------------------------------------------- diffusion


class GaussianDiffusion:
    """Linear-schedule DDPM with eps prediction and learned-range variance (IDDPM/ADM semantics)."""

    def __init__(self, num_steps):
        self.num_timesteps = int(num_steps)
        betas = linear_beta_schedule(self.num_timesteps)
        alphas = 1.0 - betas
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)
        one = torch.ones(1, dtype=torch.float64)
        self.alphas_cumprod_prev = torch.cat([one, self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.sqrt_recip_alphas_cumprod = (1.0 / self.alphas_cumprod).sqrt()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / self.alphas_cumprod - 1.0).sqrt()
        # q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, posterior_variance)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # the variance is 0 at t = 0; its log is clipped to the t = 1 value
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]))
        self.posterior_mean_coef1 = betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * alphas.sqrt() / (1.0 - self.alphas_cumprod)
        self.log_betas = betas.log()

    @staticmethod
    def _extract(values, t, x):
        """values[t] in x's dtype and device, shaped (B, 1, ..., 1) to broadcast against x."""
        picked = values[t.to(values.device)].to(x.dtype).to(x.device)  # cast on CPU: float64 is not everywhere
        return picked.view(-1, *[1] * (x.dim() - 1))

    # -------------------------------------------------------------------------- forward process

    def q_sample(self, x0, t, noise=None):
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. x0 (B, ...), t (B,) long."""
        noise = torch.randn_like(x0) if noise is None else noise
        return (self._extract(self.sqrt_alphas_cumprod, t, x0) * x0
                + self._extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def q_posterior_mean_variance(self, x0, x_t, t):
        """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x0)."""
        mean = (self._extract(self.posterior_mean_coef1, t, x_t) * x0
                + self._extract(self.posterior_mean_coef2, t, x_t) * x_t)
        return (mean, self._extract(self.posterior_variance, t, x_t),
                self._extract(self.posterior_log_variance_clipped, t, x_t))

    def predict_x0_from_eps(self, x_t, t, eps):
        return (self._extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
                - self._extract(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps)

    def predict_eps_from_x0(self, x_t, t, x0):
        return ((self._extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0)
                / self._extract(self.sqrt_recipm1_alphas_cumprod, t, x_t))

    # -------------------------------------------------------------------------- reverse process

    def p_mean_variance(self, model_fn, x_t, t, clip_denoised=True):
        """p(x_{t-1} | x_t) given model_fn(x_t, t) = [eps, v]: dict(mean, variance, log_variance, pred_x0)."""
        return self._p_from_output(model_fn(x_t, t), x_t, t, clip_denoised)

    @staticmethod
    def _split_output(output, channels):
        """Model output (B, 2C, ...) -> eps, v, each (B, C, ...)."""
        if output.shape[1] != 2 * channels:
            raise ValueError(f"expected a learned-sigma model output with {2 * channels} channels (eps and v), "
                             f"got {output.shape[1]}; build the DiT with learn_sigma=True")
        return output.split(channels, dim=1)

    def _p_from_output(self, output, x_t, t, clip_denoised):
        eps, v = self._split_output(output, x_t.shape[1])
        frac = (v + 1) / 2  # v in [-1, 1] interpolates between the two log-variance bounds
        log_variance = (frac * self._extract(self.log_betas, t, x_t)
                        + (1 - frac) * self._extract(self.posterior_log_variance_clipped, t, x_t))
        pred_x0 = self.predict_x0_from_eps(x_t, t, eps)
        if clip_denoised:
            pred_x0 = pred_x0.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_x0, x_t, t)
        return dict(mean=mean, variance=log_variance.exp(), log_variance=log_variance, pred_x0=pred_x0)

    def p_sample(self, model_fn, x_t, t, clip_denoised=True, generator=None):
        """One ancestral step x_t -> x_{t-1}: mean + std * noise, no noise where t == 0."""
        out = self.p_mean_variance(model_fn, x_t, t, clip_denoised)
        noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        nonzero = (t != 0).to(x_t.dtype).view(-1, *[1] * (x_t.dim() - 1))
        return out["mean"] + nonzero * torch.exp(0.5 * out["log_variance"]) * noise

    def ddim_sample(self, model_fn, x_t, t, eta=0.0, clip_denoised=True, generator=None):
        """One DDIM step x_t -> x_{t-1}; eta = 0 is deterministic."""
        out = self.p_mean_variance(model_fn, x_t, t, clip_denoised)
        eps = self.predict_eps_from_x0(x_t, t, out["pred_x0"])  # consistent with a clipped x0
        abar = self._extract(self.alphas_cumprod, t, x_t)
        abar_prev = self._extract(self.alphas_cumprod_prev, t, x_t)
        sigma = eta * torch.sqrt((1 - abar_prev) / (1 - abar)) * torch.sqrt(1 - abar / abar_prev)
        mean = out["pred_x0"] * abar_prev.sqrt() + torch.sqrt(1 - abar_prev - sigma ** 2) * eps
        if eta == 0:
            return mean
        noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        nonzero = (t != 0).to(x_t.dtype).view(-1, *[1] * (x_t.dim() - 1))
        return mean + nonzero * sigma * noise

    def _start(self, shape, noise, timestep_start, generator, device):
        if isinstance(shape, torch.Tensor):
            raise TypeError("pass the starting tensor as noise=..., not as shape")
        if (shape is None) == (noise is None):
            raise ValueError("give exactly one of shape (start from pure noise) or noise (the starting x_t)")
        start = self.num_timesteps - 1 if timestep_start is None else int(timestep_start)
        if not 0 <= start < self.num_timesteps:
            raise ValueError(f"timestep_start {start} is outside [0, {self.num_timesteps - 1}]")
        x = noise if noise is not None else torch.randn(shape, generator=generator, device=device)
        return x, start

    @torch.no_grad()
    def p_sample_loop(self, model_fn, shape=None, noise=None, timestep_start=None, clip_denoised=True,
                      generator=None, device=None):
        """Ancestral sampling from x_{timestep_start} (default N-1) down to x_0: timestep_start + 1 model calls."""
        x, start = self._start(shape, noise, timestep_start, generator, device)
        for i in range(start, -1, -1):
            t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
            x = self.p_sample(model_fn, x, t, clip_denoised, generator)
        return x

    @torch.no_grad()
    def ddim_sample_loop(self, model_fn, shape=None, noise=None, timestep_start=None, eta=0.0, clip_denoised=True,
                         generator=None, device=None):
        """DDIM from x_{timestep_start} (default N-1) down to x_0 over every step: timestep_start + 1 model calls."""
        x, start = self._start(shape, noise, timestep_start, generator, device)
        for i in range(start, -1, -1):
            t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
            x = self.ddim_sample(model_fn, x, t, eta, clip_denoised, generator)
        return x

    def ddim_recurse(self, model_fn, noise, timestep_start, recurse_n_times, eta=0.0, clip_denoised=True,
                     generator=None):
        """The paper's `infer_recurse_diffusion_n_times = r`: DDIM from t, then r more times from t on its own
        output (treated as x_t again, not re-noised). (t + 1) * (r + 1) model calls."""
        x = noise
        for _ in range(recurse_n_times + 1):
            x = self.ddim_sample_loop(model_fn, noise=x, timestep_start=timestep_start, eta=eta,
                                      clip_denoised=clip_denoised, generator=generator)
        return x

    # -------------------------------------------------------------------------- training

    def vb_terms_bpd(self, output, x0, x_t, t):
        """Variational-bound term (B,) in bits/dim: KL(q(x_{t-1}|x_t,x0) || p) for t > 0, decoder NLL at t = 0."""
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x0, x_t, t)
        out = self._p_from_output(output, x_t, t, clip_denoised=False)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"])) / math.log(2.0)
        decoder_nll = -mean_flat(discretized_gaussian_log_likelihood(
            x0, means=out["mean"], log_scales=0.5 * out["log_variance"])) / math.log(2.0)
        return torch.where(t == 0, decoder_nll, kl)

    def training_losses(self, model_fn, x0, t, noise=None):
        """dict(loss, mse, vb), each (B,): loss = mse(eps) + vb, vb with the predicted mean detached (trains v only)."""
        noise = torch.randn_like(x0) if noise is None else noise
        x_t = self.q_sample(x0, t, noise)
        eps, v = self._split_output(model_fn(x_t, t), x0.shape[1])
        frozen = torch.cat([eps.detach(), v], dim=1)  # the bound must not pull the eps prediction
        vb = self.vb_terms_bpd(frozen, x0, x_t, t)
        mse = mean_flat((noise - eps) ** 2)
        return dict(loss=mse + vb, mse=mse, vb=vb)


def diffusion_loss_report(losses, count):
    """The DiT models' training outputs from `training_losses` (docs/method.md §7.4), for `count` samples."""
    loss = losses["loss"].mean()
    return {
        "loss": loss,
        "mse_conditioned_loss": losses["mse"].mean().detach(),
        "vb_loss": losses["vb"].mean().detach(),
        "step_losses": loss.detach().view(1),  # one "step" for the per-step reports
        "count": torch.tensor(count, device=loss.device),
    }
