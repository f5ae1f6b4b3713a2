"""Image models: the bidirectional EBT denoiser, the DiT baseline and the Gaussian diffusion they share."""
