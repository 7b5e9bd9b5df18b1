"""Exact magnitude-rank bands, shared by the pruning defenses.

Counts are per tensor and rounded to the nearest integer (halves up), so ``dgp`` and ``topk``
at the same ratio send exactly the same number of values from every tensor.

Ranking is by |value|, largest first; ties are broken by position (the lower index ranks
higher). Magnitudes are compared by their bit patterns, which order non-negative floats like
their values and put NaN above inf. Every path is exact: the mask is the one a full stable
sort would give, with exactly ``keep`` entries.

Large float32 CPU tensors are selected without sorting them (``_selected_band``):

1. a sample of the keys (|g| as int32 bits, every step-th entry) brackets each threshold
   rank (the band's first and last) by a key interval (two order statistics of the
   sample) that holds it with high probability;
2. one pass in cache-sized chunks (numpy, one thread: torch's OpenMP workers spin for a
   while after each op, so a second thread here only competed with them in dgp.apply)
   writes the mask for "key between the outer bracket ends", counts the entries above
   each bracket and collects the few entries inside the brackets (the candidates);
3. the exact threshold keys are order statistics of the candidates; only candidates'
   mask entries change, ties at a threshold taken in index order.

If a bracket misses its rank (the counts show it), that tensor is redone by the exact
whole-tensor selection (``_partition_band``: order statistics by ``np.partition``), which
also serves medium and non-float32 CPU tensors; tiny ones use a stable argsort, tensors on
other devices a stable sort. On CPU the mask shares memory with a numpy array.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from dgp.lazy import torch

_SORT_MAX_NUMEL = 1 << 9  # up to here a stable argsort is the cheapest exact band
_SELECT_MIN_NUMEL = 1 << 15  # from here on, sample-bracketed selection beats partitioning
_CHUNK = 1 << 18  # entries per chunk of the selection pass (its buffers stay in cache)
_BRACKET_SD = 3.5  # bracket half-width in standard deviations of the sampled rank
_KEY_MAX = (1 << 31) - 1
_INT_KEYS = {1: "int8", 2: "int16", 4: "int32", 8: "int64"}  # names: no torch at import

_local = threading.local()  # per-thread chunk buffers
_sample_cache: dict[int, slice] = {}


def sent_count(numel: int, ratio: float) -> int:
    """Number of entries a pruning defense sends from a tensor of ``numel`` entries."""
    return min(numel, math.floor((1.0 - ratio) * numel + 0.5))


def rank_band_mask(tensor: torch.Tensor, skip_top: int, keep: int) -> torch.Tensor:
    """Boolean mask of the entries ranked ``skip_top`` .. ``skip_top + keep - 1`` by |value|.

    Rank 0 is the largest magnitude (ties: lower index first); the count is always
    exactly ``keep``.
    """
    numel = tensor.numel()
    if not 0 <= skip_top <= skip_top + keep <= numel:
        raise ValueError(f"rank band {skip_top}+{keep} does not fit {numel} entries")
    if keep <= 0 or keep == numel:
        fill = torch.zeros if keep <= 0 else torch.ones
        return fill(tensor.shape, dtype=torch.bool, device=tensor.device)
    if not tensor.is_cpu:
        return _sorted_band(tensor.detach().reshape(-1), skip_top, keep).view(tensor.shape)
    if tensor.dtype == torch.float32:
        bits = tensor.detach().numpy().reshape(-1).view(np.int32)
        if numel >= _SELECT_MIN_NUMEL:
            return torch.from_numpy(_selected_band(bits, skip_top, keep).reshape(tensor.shape))
        keys = np.bitwise_and(bits, _KEY_MAX)
    else:
        keys = _magnitude_keys(tensor.detach().reshape(-1)).numpy()
    band = _argsorted_band if numel <= _SORT_MAX_NUMEL else _partition_band
    return torch.from_numpy(band(keys, skip_top, keep).reshape(tensor.shape))


def soft_band_mask(tensor: torch.Tensor, skip_top: int, keep: int,
                   temperature: float) -> torch.Tensor:
    """A differentiable stand-in for ``rank_band_mask``: sigmoid(( |x| - lower) / s) x
    sigmoid((upper - |x|) / s), the cut-offs half-way between the magnitudes ranked either
    side of the band's ends (from ``tensor`` itself, not differentiated), the width
    ``s = temperature x lower``. A defense-aware attacker's model of a band that each
    candidate recomputes from its own update: with the hard mask, no gradient moves an entry
    into or out of the band; this one has it near the cut-offs, and tends to the hard mask
    as the temperature goes to 0 (where magnitudes are distinct)."""
    flat = tensor.detach().abs().reshape(-1)
    numel = flat.numel()
    if not 0 <= skip_top <= skip_top + keep <= numel:
        raise ValueError(f"rank band {skip_top}+{keep} does not fit {numel} entries")
    if keep <= 0 or keep == numel:
        return torch.full_like(tensor, 0.0 if keep <= 0 else 1.0)

    def magnitude(rank: int) -> torch.Tensor:  # rank 0: the largest
        return torch.kthvalue(flat, numel - rank).values

    end = skip_top + keep
    lower = (magnitude(end - 1) + magnitude(end)) / 2 if end < numel else flat.new_zeros(())
    width = temperature * lower.clamp_min(torch.finfo(flat.dtype).tiny)
    magnitudes = tensor.abs()
    mask = torch.sigmoid((magnitudes - lower) / width)
    if skip_top > 0:
        upper = (magnitude(skip_top - 1) + magnitude(skip_top)) / 2
        mask = mask * torch.sigmoid((upper - magnitudes) / width)
    return mask


def _magnitude_keys(flat: torch.Tensor) -> torch.Tensor:
    """Keys ordered like |flat| (for floats: the bits of |x|, so NaN sorts above inf)."""
    magnitudes = flat.abs() if flat.dtype != torch.bool else flat.to(torch.uint8)
    if magnitudes.is_floating_point() and magnitudes.element_size() in _INT_KEYS:
        return magnitudes.view(getattr(torch, _INT_KEYS[magnitudes.element_size()]))
    return magnitudes


def _sorted_band(flat: torch.Tensor, first: int, keep: int) -> torch.Tensor:
    """Exact band by a stable descending sort (equal keys keep index order)."""
    order = torch.sort(_magnitude_keys(flat), descending=True, stable=True).indices
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[order[first:first + keep]] = True
    return mask


def _argsorted_band(keys: np.ndarray, first: int, keep: int) -> np.ndarray:
    """Exact band of a few keys by a stable argsort, largest first."""
    order = np.negative(keys, dtype=np.int64).argsort(kind="stable")
    mask = np.zeros(keys.size, dtype=bool)
    mask[order[first:first + keep]] = True
    return mask


def _band_of_candidates(keys: np.ndarray, first: int, last: int, over_high: int | None,
                        over_low: int | None, floor_high: int | None = None,
                        ceil_low: int | None = None) -> np.ndarray | None:
    """Which candidates (keys in index order) lie in the band; None if a bracket missed.

    ``over_high`` / ``over_low``: how many entries rank above the candidates that may hold
    rank ``first`` / ``last`` (None: that end is not cut). The key at rank ``first`` must be
    at least ``floor_high`` and the key at rank ``last`` at most ``ceil_low`` (when given),
    or the candidates that hold it are not the ones the counts assumed.
    """
    count = keys.size
    positions = []  # ascending positions of the two threshold keys (the high one first)
    for rank, over in ((first, over_high), (last, over_low)):
        if over is not None:
            local = rank - over
            if not 0 <= local < count:
                return None
            positions.append(count - 1 - local)
    # One kth per np.partition call: several kth in one call are far slower.
    ordered = np.partition(keys, positions[0])
    selected = [ordered[positions[0]]]
    if len(positions) == 2:
        low_position = positions[1]
        if low_position < positions[0]:  # the smaller keys lie left of the first kth
            ordered = np.partition(ordered[:positions[0]], low_position)
        selected.append(ordered[low_position])
    inside = np.ones(count, dtype=bool)  # (no cut at all never gets here)
    ties = []
    if over_high is not None:
        high = selected[0]
        if floor_high is not None and high < floor_high:
            return None
        np.less_equal(keys, high, out=inside)
        ties.append((high, over_high))
    if over_low is not None:
        low = selected[-1]
        if ceil_low is not None and low > ceil_low:
            return None
        inside &= keys >= low
        ties.append((low, over_low))
    for key, over in ties:
        equal = keys == key
        if np.count_nonzero(equal) > 1:  # a tie at a threshold: index order ranks it
            tied = np.flatnonzero(equal)
            ranks = over + np.count_nonzero(keys > key) + np.arange(tied.size)
            inside[tied] = (ranks >= first) & (ranks <= last)
    return inside


def _partition_band(keys: np.ndarray, first: int, keep: int) -> np.ndarray:
    """Exact band where every entry is a candidate (order statistics, no sort)."""
    numel, last = keys.size, first + keep - 1
    return _band_of_candidates(keys, first, last, 0 if first > 0 else None,
                               0 if last < numel - 1 else None)


def _sample_slice(numel: int) -> slice:
    """Every ``step``-th entry from a fixed offset, ``step`` a prime (so no period of the
    data that is not a multiple of it lines up with the sample); about 2 * numel**(2/3)
    entries, where the cost of sampling and of more candidates balance. The speed depends
    on the sample, the result never does.
    """
    sample = _sample_cache.get(numel)
    if sample is None:
        if len(_sample_cache) > 256:
            _sample_cache.clear()
        step = _prime_at_least(max(2, numel // max(2 * round(numel ** (2 / 3)), 2048)))
        sample = _sample_cache[numel] = slice((numel * 7919) % step, None, step)
    return sample


def _prime_at_least(number: int) -> int:
    while any(number % divisor == 0 for divisor in range(2, math.isqrt(number) + 1)):
        number += 1
    return number


def _bracket(size: int, numel: int, rank: int) -> tuple[int, int]:
    """Ascending positions in a sample of ``size`` whose keys bracket the key of
    descending ``rank`` with high odds (-1 / ``size``: open below / above)."""
    fraction = rank / numel
    position = (numel - 1 - rank) * size / numel
    half = _BRACKET_SD * math.sqrt(size * fraction * (1.0 - fraction)) + 2.0
    return max(-1, math.floor(position - half)), min(size, math.ceil(position + half))


def _order_statistics(sample: np.ndarray, positions: list[int]) -> dict[int, int]:
    """Keys at ascending ``positions`` of the sample (-1: key 0, size: the largest key),
    by one partition per position, each on what is left of the previous one."""
    keys = {-1: 0, sample.size: _KEY_MAX}
    part = sample
    for position in sorted({p for p in positions if 0 <= p < sample.size}, reverse=True):
        part = np.partition(part, position)
        keys[position] = int(part[position])
        part = part[:position]  # the keys below it, for the next (smaller) position
    return keys


def _chunk_buffers() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's reused chunk buffers (fresh ones would page-fault on every call)."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = (np.empty(_CHUNK, np.int32), np.empty(_CHUNK, bool),
                                    np.empty(_CHUNK, bool))
    return buffers


def _select_chunks(bits: np.ndarray, mask: np.ndarray,
                   bounds: tuple[int, int, int | None, int | None]
                   ) -> tuple[int, int, np.ndarray, np.ndarray]:
    """One pass over cache-sized chunks: write the mask, count, collect candidates.

    ``bounds`` = (low, high, low_ring_top, high_ring_bottom): the mask gets the keys in
    [low, high]; the candidates are the keys in [low, low_ring_top] and in
    [high_ring_bottom, high] (a None end: no such ring; both None: all of [low, high]).
    Returns the number of keys in [low, high], the number of keys at least
    ``high_ring_bottom`` (when given; else above ``high``), and the candidates' positions
    (ascending) and keys.

    Keys are below 2**31, so ``key - low`` is exact in int32, and "0 <= key - low <= width"
    is one unsigned comparison of the same bits.
    """
    low, high, low_top, high_bottom = bounds
    difference_buffer, ring_buffer, spare_buffer = _chunk_buffers()
    n_inside = n_high = 0
    positions, keys = [], []
    for start in range(0, bits.size, _CHUNK):
        stop = min(start + _CHUNK, bits.size)
        size = stop - start
        difference = np.bitwise_and(bits[start:stop], _KEY_MAX, out=difference_buffer[:size])
        if low:
            np.subtract(difference, low, out=difference)  # key - low
        unsigned = difference.view(np.uint32)
        out = mask[start:stop]
        np.less_equal(unsigned, high - low, out=out)
        n_inside += np.count_nonzero(out)
        if high_bottom is not None:
            ring = np.greater_equal(difference, high_bottom - low, out=ring_buffer[:size])
            n_high += np.count_nonzero(ring)
            ring &= out
            if low_top is not None:
                ring |= np.less_equal(unsigned, low_top - low, out=spare_buffer[:size])
        else:
            if high < _KEY_MAX:
                above = np.greater(difference, high - low, out=ring_buffer[:size])
                n_high += np.count_nonzero(above)
            if low_top is None:
                ring = out
            else:
                ring = np.less_equal(unsigned, low_top - low, out=ring_buffer[:size])
        found = np.flatnonzero(ring)
        found_keys = difference[found]
        if low:
            found_keys += low
        keys.append(found_keys)
        positions.append(found + start)
    return n_inside, n_high, np.concatenate(positions), np.concatenate(keys)


def _selected_band(bits: np.ndarray, first: int, keep: int) -> np.ndarray:
    """Exact band of float32 entries given as their int32 bits (see the module docstring)."""
    numel, last = bits.size, first + keep - 1
    sample = np.bitwise_and(bits[_sample_slice(numel)], _KEY_MAX)
    upper, lower = first > 0, last < numel - 1
    ends = (_bracket(sample.size, numel, first) if upper else ()) + \
        (_bracket(sample.size, numel, last) if lower else ())
    key = _order_statistics(sample, list(ends))
    high_low, high_high = (key[ends[0]], key[ends[1]]) if upper else (None, _KEY_MAX)
    low_low, low_high = (key[ends[-2]], key[ends[-1]]) if lower else (0, None)
    merged = upper and lower and high_low <= low_high
    if merged:  # the brackets meet: one candidate interval, [low_low, high_high]
        high_low, low_high = low_low, high_high

    mask = np.empty(numel, dtype=bool)
    bounds = (low_low, high_high, None if merged else low_high, None if merged else high_low)
    n_inside, n_high, positions, keys = _select_chunks(bits, mask, bounds)
    n_above = n_high  # entries above the mask's interval
    if bounds[3] is not None:  # n_high also counted the upper bracket's candidates
        n_above -= np.count_nonzero(keys >= high_low)

    # Entries between the brackets rank below every upper-bracket candidate and above
    # every lower-bracket one; none of them is a candidate.
    between = n_inside - keys.size
    inside = _band_of_candidates(keys, first, last, n_above if upper else None,
                                 n_above + between if lower else None, high_low, low_high)
    if inside is None:  # a bracket missed its rank: do this tensor the slow exact way
        return _partition_band(np.bitwise_and(bits, _KEY_MAX), first, keep)
    mask[positions] = inside  # the candidates were all written as inside
    return mask


def band_violation(candidate: list[torch.Tensor], shared_tensors: list[torch.Tensor],
                   masks: list[torch.Tensor | None], top_counts: list[int]) -> torch.Tensor:
    """Squared distance of each tensor's unsent candidate entries from a magnitude band
    rule: its ``top_counts[i]`` largest unsent entries must lie at or above the largest
    sent magnitude (DGP's dropped top), the others at or below the smallest (the dropped
    tail; for top-k every unsent entry). Relative to the shared gradient's energy."""
    total = candidate[0].new_zeros(())
    energy = sum(t.pow(2).sum() for t in shared_tensors) + 1e-12
    for c, sent_values, mask, top in zip(candidate, shared_tensors, masks, top_counts,
                                         strict=True):
        if mask is None or bool(mask.all()) or not bool(mask.any()):
            continue
        mask = mask.to(c.device)
        sent = sent_values.to(c.device)[mask].abs()
        ranked = torch.sort(c[~mask].abs(), descending=True).values
        top = min(top, len(ranked))
        total = total + torch.relu(sent.max() - ranked[:top]).pow(2).sum()
        total = total + torch.relu(ranked[top:] - sent.min()).pow(2).sum()
    return total / energy.to(total.device)


def prune_ratio_error(name: str, ratio: float, low: float = 0.0) -> str | None:
    if not low <= ratio < 1.0:
        return f"defense {name!r} needs {low:g} <= ratio < 1 (fraction not sent), got {ratio}"
    return None
