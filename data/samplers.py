"""A training batch order that is a pure function of (seed, epoch), so a resumed run sees the same batches."""
import torch
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler):
    """Seeded shuffled batches per epoch, sharded over DDP ranks (rank r takes batches r, r+W, ...).

    `resume(epoch, batches_done)` makes the next epoch start where a checkpoint stopped.
    """

    def __init__(self, num_examples, batch_size, seed, shuffle=True, rank=0, world_size=1):
        if num_examples < batch_size * world_size:
            raise ValueError(f"the training set has {num_examples} examples, fewer than one batch of "
                             f"{batch_size} per device on {world_size} device(s); lower "
                             "--batch_size_per_device or use more data")
        self.num_examples, self.batch_size, self.seed, self.shuffle = num_examples, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def resume(self, epoch, batches_done):
        self.epoch, self.skip = epoch, batches_done

    def __len__(self):
        return self.num_examples // self.batch_size // self.world_size  # full batches only: fixed shapes

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.num_examples, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.num_examples)
        skip, self.skip = self.skip, 0
        for b in range(skip, len(self)):
            start = (b * self.world_size + self.rank) * self.batch_size
            yield order[start:start + self.batch_size].tolist()
        self.epoch += 1


class EvaluationShardSampler(Sampler):
    """Evaluation rows of one rank: rows r, r+W, r+2W, ... in order, every row on exactly one rank.

    torch's DistributedSampler pads the ranks to equal length with repeated rows, which a token-weighted mean
    over the whole split would count twice; here ranks may differ by one row instead (their metrics are summed
    across ranks at the epoch's end, so no step needs the ranks in lockstep).
    """

    def __init__(self, num_examples, rank=0, world_size=1):
        self.num_examples, self.rank, self.world_size = num_examples, rank, world_size

    def __len__(self):
        return len(range(self.rank, self.num_examples, self.world_size))

    def __iter__(self):
        return iter(range(self.rank, self.num_examples, self.world_size))
