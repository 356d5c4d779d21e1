"""A torch Dataset over episode files: frame histories, action chunks, padding masks, normalisation.

One sample is the step t of one episode:

    images/<camera>  uint8 (k, 3, H, W)   frames at t-k+1..t (dropped frames repeat the last present one)
    proprio          float32 (k, P)       the proprio keys concatenated, at t-k+1..t
    action           float32 (H, A)       the action keys concatenated, at t..t+H-1
    obs_pad          bool (k,)            True where t-k+1+j < 0 (the value repeats step 0)
    action_pad       bool (H,)            True where t+j >= T (the value repeats step T-1)
    language         str                  the instruction active at step t
    episode, step    int64                which sample this is

Batches add a leading batch dimension (language becomes a list). Images stay uint8 (convert on the model
side, ideally on the GPU); they come as a channels-last view (strides of (B, k, H, W, 3)) because the JPEG
decoder writes HWC straight into the batch buffer; `.contiguous()` gives a packed CHW copy if one is needed.

Speed and memory, per worker process (all bounded, so memory stays flat over an epoch):
- The index (episode, step) is built once from each file's `num_steps` attribute (0-step episodes add no
  samples); no per-step data is read
  at construction (unless `check_finite` is asked for). Bad files found there raise an EpisodeError naming
  the file and field, or with `skip_bad` are left out and listed in `dataset.skipped`.
- Files are opened lazily in the process that reads them, so the dataset pickles without handles and each
  DataLoader worker opens its own (the owner pid is tracked; state inherited through fork is dropped).
- Each episode's low-dim arrays (proprio, actions, language index) are read once, normalised once, and kept
  in an LRU of `lowdim_cache` episodes (robomimic's low_dim cache, bounded). Frame bytes are read with
  `os.pread` at the HDF5 chunk addresses (reader.ByteStream), so the h5py file is closed again right after
  the episode's arrays are read; at most `max_open_files` episodes keep descriptors open (LRU).
- `__getitems__` builds a whole batch in one call (torch's batched fetch): JPEG frames are decoded straight
  into the batch buffer. Inside a DataLoader worker that buffer is shared memory taken from a small per-worker
  pool (see loader.pool), so handing the batch over copies nothing and fresh pages are not faulted in for
  every batch. Pass `collate_fn=EpisodeDataset.collate` to the DataLoader (or use `.dataloader()`).
- An optional LRU of decoded frames (`frame_cache`, in frames) helps when samples overlap heavily.

Normalisation (off by default) uses a stats dict from robolearn.data.stats: mean/std, or min/max to
[-1, 1]; `unnormalize_action` inverts it. The default action is the commanded action form of the episodes
(attribute `action_space`) followed by `action/gripper_position`; the default proprio is every robot_state
field in schema order.

Modules: `config` (LoaderConfig, key resolution, Normalizer), `episodes` (the construction scan over each
file's attributes, per-worker caches), `pool` (shared-memory batch buffers), `dataset` (EpisodeDataset).
"""

from __future__ import annotations

from robolearn.data.loader.config import NORM_MODES, LoaderConfig, Normalizer
from robolearn.data.loader.dataset import EpisodeDataset
from robolearn.data.loader.episodes import EpisodeInfo

__all__ = ["NORM_MODES", "EpisodeDataset", "EpisodeInfo", "LoaderConfig", "Normalizer"]
