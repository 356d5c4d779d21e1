"""Shared-memory batch buffers: a small pool per DataLoader worker, so handing a batch to the main process
copies nothing and fresh shared pages are not faulted in for every batch (see the comment below for the
protocol between a worker and the main process).
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import numpy as np
import torch

# ---- batch buffers ------------------------------------------------------------------------------------
# A batch built in a DataLoader worker goes to the main process through shared memory. Fresh shared memory
# for every batch costs more than decoding the JPEGs into it (page faults on allocation, unmapping on free,
# and a descriptor handed over a socket per storage), so each worker keeps a small pool of shared buffers:
#
# - A pooled batch is pickled as (pool id, buffer index, layout) plus the non-tensor items; the buffer's
#   storage itself travels (as a torch shared storage) only until the main process acknowledges that it
#   has mapped it, and so does the pool's flag array. After that a batch costs no descriptor and no mmap.
# - The main process builds the batch tensors on a fresh alias of the mapped buffer and keeps a weak
#   reference to that alias. When every tensor of the batch has been freed the alias expires, and the next
#   arrival clears the buffer's in-use flag (shared memory the worker reads).
# - A worker refills only a buffer whose flag is clear; otherwise it takes a new one (at most `buffer_pool`
#   per worker) or an unpooled one. A batch the training loop still holds is never overwritten; tensors
#   forwarded to another process are copied by torch (the alias is not a torch shared storage).
# - The main process drops the mappings of a pool once its worker process has exited.

_ALIGN = 64
# libjpeg-turbo writes its output with non-temporal stores when the output rows are 32-byte aligned; for
# frames of this size that measured ~20% slower than ordinary stores, so image regions start 16 bytes past
# a 64-byte boundary (their rows, W*3 bytes apart, then all sit at 16 mod 32).
_IMAGE_SHIFT = 16
Fields = list[tuple[str, tuple[int, ...], torch.dtype]]


class _Layout:
    """Where each tensor of a batch of a given size lives in one packed storage."""

    def __init__(self, fields: Fields):
        self.fields, self.offsets, off = fields, [], 0
        for name, shape, dtype in fields:
            shift = _IMAGE_SHIFT if name.startswith("images/") else 0
            self.offsets.append(off + shift)
            n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize + shift
            off += -(-n // _ALIGN) * _ALIGN
        self.nbytes = max(off, _ALIGN)

    def tensors(self, storage: torch.UntypedStorage) -> dict[str, torch.Tensor]:
        """The batch tensors on `storage`, images permuted to (B, k, 3, H, W)."""
        out = {}
        for (name, shape, dtype), off in zip(self.fields, self.offsets):
            t = torch.empty(0, dtype=dtype).set_(storage, off // dtype.itemsize, shape)
            out[name] = t.permute(0, 1, 4, 2, 3) if name.startswith("images/") else t
        return out

    def views(self, storage: torch.UntypedStorage) -> _Buffers:
        return _Buffers(self, storage)


class _Buffers:
    """One batch buffer: numpy views the loader fills (images HWC) and the tensors handed out."""

    def __init__(self, layout: _Layout, storage: torch.UntypedStorage):
        self.layout, self.storage = layout, storage
        self.out = layout.tensors(storage)
        self.arrays = {
            name: (t.permute(0, 1, 3, 4, 2) if name.startswith("images/") else t).numpy()
            for name, t in self.out.items()
        }


class _BufferPool:
    """Shared-memory batch buffers of one worker process and their flags (see above)."""

    def __init__(self, max_slots: int):
        self.id = f"{os.getpid()}-{uuid.uuid4().hex}"
        self.max_slots = max_slots
        # [0, n): buffer in use; [n, 2n): main process has mapped buffer i; [2n]: main process has the flags
        self.flags = torch.empty(0, dtype=torch.int32).set_(
            torch.UntypedStorage._new_shared(4 * (2 * max_slots + 1)), 0, (2 * max_slots + 1,)
        )
        self.flags.zero_()
        self._flags = self.flags.numpy()
        # per buffer: its size, its storage, and its views by batch size
        self.slots: list[tuple[int, torch.UntypedStorage, dict[int, _Buffers]]] = []

    def acquire(self, layout: _Layout, b: int) -> tuple[int, _Buffers]:
        """A free buffer marked in use (index, views), or index -1 and an unpooled buffer."""
        for i, (n, storage, views) in enumerate(self.slots):
            if n >= layout.nbytes and self._flags[i] == 0:
                self._flags[i] = 1
                if b not in views:
                    views[b] = layout.views(storage)
                return i, views[b]
        storage = torch.UntypedStorage._new_shared(layout.nbytes)
        if len(self.slots) < self.max_slots:
            views = {b: layout.views(storage)}
            self.slots.append((layout.nbytes, storage, views))
            self._flags[len(self.slots) - 1] = 1
            return len(self.slots) - 1, views[b]
        return -1, layout.views(storage)  # every buffer still in use: an unpooled one

    def lease(self, slot: int, bufs: _Buffers) -> tuple[Any, ...]:
        """What the main process needs to rebuild a batch in buffer `slot`."""
        n = self.max_slots
        flags = None if self._flags[2 * n] else self.flags
        storage = (
            None
            if self._flags[n + slot]
            else torch.empty(0, dtype=torch.uint8).set_(self.slots[slot][1], 0, (self.slots[slot][0],))
        )
        return self.id, n, slot, flags, storage, bufs.layout.fields, bufs.layout.offsets


class _PooledBatch(dict):
    """A batch in a pooled buffer: pickles as its lease and non-tensor items, unpickles as a plain dict."""

    lease: tuple[Any, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        pooled = {f[0] for f in self.lease[5]}
        extras = {k: v for k, v in self.items() if k not in pooled}  # language, anything added by a subclass
        return _receive_batch, (self.lease, extras, list(self))


# main process: pool id -> {"flags": ndarray, "slots": {index: uint8 ndarray over the mapped buffer}}
_POOLS: dict[str, dict[str, Any]] = {}
_LEASES: list[tuple[Any, np.ndarray, int]] = []  # (weak ref to a batch's alias storage, flags, buffer index)
_LEASE_LOCK = threading.Lock()
_RECEIVED = [0]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _receive_batch(lease: tuple[Any, ...], extras: dict[str, Any], order: list[str]) -> dict[str, Any]:
    from torch.multiprocessing.reductions import StorageWeakRef

    pool_id, n, slot, flags, storage, fields, offsets = lease
    with _LEASE_LOCK:
        pool = _POOLS.setdefault(pool_id, {"flags": None, "slots": {}})
        if flags is not None and pool["flags"] is None:
            pool["flags"] = flags.numpy()
            pool["flags"][2 * n] = 1  # the worker may stop sending the flags
        if storage is not None:
            pool["slots"][slot] = storage.numpy()
            pool["flags"][n + slot] = 1  # ... and this buffer's storage
        alias = torch.frombuffer(pool["slots"][slot], dtype=torch.uint8)  # a new storage on the same memory
        layout = _Layout.__new__(_Layout)
        layout.fields, layout.offsets = fields, offsets
        tensors = layout.tensors(alias.untyped_storage())
        keep = []
        for ref, fl, i in _LEASES:
            if ref.expired():
                fl[i] = 0  # every tensor of that batch is gone: the worker may refill its buffer
            else:
                keep.append((ref, fl, i))
        keep.append((StorageWeakRef(alias.untyped_storage()), pool["flags"], slot))
        _LEASES[:] = keep
        _RECEIVED[0] += 1
        if _RECEIVED[0] % 256 == 0:
            _forget_exited_pools()
    return {k: tensors[k] if k in tensors else extras[k] for k in order}


def _forget_exited_pools() -> None:
    """Main process: drop the buffer mappings of workers that have exited (call with _LEASE_LOCK held)."""
    for key in [k for k in _POOLS if not _pid_alive(int(k.split("-")[0]))]:
        del _POOLS[key]
