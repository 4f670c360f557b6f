"""Encode each image once: the image embeddings of an encoder-decoder model, shared by the
instances of the same image.

SAM-style models spend almost all their time in the image encoder, and datasets with several
objects per image (PascalVOC 3,417 instances on 1,449 images, SBD 6,671 on 2,857) list each
object as its own instance. The encoder's output depends on the image alone, so the instances of
one image can share one pass.

* Key: the image's content (shape, dtype and a BLAKE2b digest of its bytes), not its path or
  id, so two instances share an embedding exactly when the encoder would see the same pixels
  (a dataset that loads the same file differently for two instances gets two entries).
* Bounded: the `max_images` most recently used embeddings are kept (least recently used out).
  The engine queues an entry's instances (one image, all its objects) one after the other, so a
  few entries are enough even with many instances in flight. One entry holds 4 MiB (SAM,
  MobileSAM: 256 x 64 x 64 float32), 16 MiB (SAM 2, with its two high-resolution maps) or
  4 MiB + the ViT's 64 x 64 x width map (SAM-HQ: 12, 16 or 20 MiB more).
* In flight: an instance's handle holds its own reference to the embedding, so an eviction
  never changes an instance that is already open; nothing writes to an embedding after it is
  made (the decoders read it), so sharing one cannot change a result.
* Shards: `--shard` splits a dataset by entry (an image with all its instances), so within a
  run each image is encoded once whatever the shard count.

The cost moves with the work: `start_s` (the time of `open_instance`) holds the encoder for the
first instance of an image and only the hash and lookup for the others.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
DEFAULT_MAX_IMAGES = 4


def image_key(image: np.ndarray) -> tuple[tuple[int, ...], str, str]:
    """The identity of an image's pixels: shape, dtype and a 128-bit BLAKE2b of its bytes."""
    data = np.ascontiguousarray(image)
    digest = hashlib.blake2b(memoryview(data).cast("B"), digest_size=16).hexdigest()
    return tuple(data.shape), data.dtype.str, digest


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0  # encoder passes
    evictions: int = 0


class EmbeddingCache(Generic[T]):
    """Least-recently-used embeddings by image content, at most `max_images` of them."""

    def __init__(self, max_images: int = DEFAULT_MAX_IMAGES) -> None:
        if max_images < 1:
            raise ValueError(f"embedding cache size {max_images}: expected at least 1 image")
        self.max_images = max_images
        self.stats = CacheStats()
        self._entries: OrderedDict[tuple, T] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_encode(self, image: np.ndarray, encode: Callable[[np.ndarray], T]) -> T:
        key = image_key(image)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return found
        value = encode(image)
        self.stats.misses += 1
        self._entries[key] = value
        while len(self._entries) > self.max_images:
            self._entries.popitem(last=False)
            self.stats.evictions += 1
        return value

    def clear(self) -> None:
        self._entries.clear()

    def describe(self) -> dict[str, Any]:
        """What the run manifest records (the model's `describe()`)."""
        return {
            "enabled": True,
            "max_images": self.max_images,
            "key": "image content: shape, dtype, BLAKE2b-128 of the pixel bytes",
            "start_s": (
                "charged once per image: the first instance of an image holds the image "
                "encoder in its start_s, later instances of the same image only the lookup"
            ),
        }


DISABLED = {
    "enabled": False,
    "start_s": "charged to every instance (the image encoder runs once per instance)",
}
