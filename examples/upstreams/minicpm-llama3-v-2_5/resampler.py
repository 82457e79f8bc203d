# Copyright 2026 The originscan demo authors (a stand-in for an upstream vision-language model's code).
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in compliance
# with the License. You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Vision side of the MiniCPM stand-in: sine-cosine position tables, a perceiver-style resampler that turns a
variable number of image patches into a fixed number of query tokens, and the image-slicing arithmetic."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import trunc_normal_


def sincos_table_1d(channels, positions):
    """Sine and cosine of each position at `channels // 2` geometric frequencies: (len(positions), channels)."""
    if channels % 2:
        raise ValueError(f"channels must be even, got {channels}")
    freqs = np.arange(channels // 2, dtype=np.float64)
    freqs = 1.0 / 10000 ** (freqs / (channels / 2.0))
    angles = np.einsum("p,f->pf", np.asarray(positions, dtype=np.float64).reshape(-1), freqs)
    table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    return table


def sincos_table_2d(channels, grid):
    """A (rows, cols, channels) table: half the channels encode the row, half the column."""
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    row_ids = np.arange(rows, dtype=np.float32)
    col_ids = np.arange(cols, dtype=np.float32)
    mesh = np.meshgrid(col_ids, row_ids)
    by_row = sincos_table_1d(channels // 2, mesh[1])
    by_col = sincos_table_1d(channels // 2, mesh[0])
    table = np.concatenate([by_row, by_col], axis=1)
    return table.reshape(rows, cols, channels)


class PerceiverResampler(nn.Module):
    """Cross-attention from `num_queries` learnt queries to the image patches, with 2D position tables added to
    the keys. Patch grids of any size up to the cached table are accepted; a larger one grows the table."""

    def __init__(self, num_queries, embed_dim, num_heads, kv_dim=None, norm_layer=nn.LayerNorm, max_grid=(70, 70)):
        super().__init__()
        self.num_queries = num_queries
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.max_grid = max_grid

        self.query = nn.Parameter(torch.zeros(self.num_queries, embed_dim))
        if kv_dim is not None and kv_dim != embed_dim:
            self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False)
        else:
            self.kv_proj = nn.Identity()

        self.attn = nn.MultiheadAttention(embed_dim, num_heads)
        self.ln_q = norm_layer(embed_dim)
        self.ln_kv = norm_layer(embed_dim)
        self.ln_post = norm_layer(embed_dim)
        self.proj = nn.Parameter((embed_dim**-0.5) * torch.randn(embed_dim, embed_dim))

        self._build_pos_table(self.max_grid)
        self.apply(self._init_weights)

    def _build_pos_table(self, grid, device="cpu"):
        table = torch.from_numpy(sincos_table_2d(self.embed_dim, grid)).float().to(device)
        self.register_buffer("pos_table", table, persistent=False)

    def _grow_pos_table(self, patch_grids, device):
        need_rows = int(torch.max(patch_grids[:, 0]))
        need_cols = int(torch.max(patch_grids[:, 1]))
        if need_rows > self.max_grid[0] or need_cols > self.max_grid[1]:
            self.max_grid = (max(need_rows, self.max_grid[0]), max(need_cols, self.max_grid[1]))
            self._build_pos_table(self.max_grid, device)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.constant_(module.bias, 0)
        elif isinstance(module, nn.LayerNorm):
            nn.init.constant_(module.bias, 0)
            nn.init.constant_(module.weight, 1.0)

    def forward(self, patches, patch_grids):
        if patches.shape[0] != patch_grids.shape[0]:
            raise ValueError("one patch grid per image is needed")
        batch = patches.shape[0]
        device, dtype = patches.device, patches.dtype

        lengths = patch_grids[:, 0] * patch_grids[:, 1]
        self._grow_pos_table(patch_grids, device)
        longest = int(torch.max(lengths))
        padding = torch.zeros((batch, longest), dtype=torch.bool, device=device)

        positions = []
        for i in range(batch):
            rows, cols = patch_grids[i].tolist()
            positions.append(self.pos_table[:rows, :cols, :].reshape((rows * cols, -1)).to(dtype))
            padding[i, lengths[i] :] = True
        positions = torch.nn.utils.rnn.pad_sequence(positions, batch_first=True, padding_value=0.0).permute(1, 0, 2)

        keys = self.ln_kv(self.kv_proj(patches)).permute(1, 0, 2)
        queries = self.ln_q(self.query)
        attended = self.attn(self._per_image(queries, batch), keys + positions, keys, key_padding_mask=padding)[0]
        out = self.ln_post(attended.permute(1, 0, 2))
        return out @ self.proj

    def _per_image(self, queries, batch):
        return queries.unsqueeze(1).repeat(1, batch, 1)


def rounded_to(value, step):
    """`value` rounded to a positive multiple of `step`."""
    return max(round(value / step) * step, step)


def fitted_size(size, area_side, patch, upscale=False):
    """A (width, height) with the aspect ratio of `size`, about `area_side`² pixels, both sides multiples of
    `patch`; never larger than `size` unless `upscale`."""
    width, height = size
    if width * height > area_side * area_side or upscale:
        ratio = width / height
        height = int(area_side / math.sqrt(ratio))
        width = int(height * ratio)
    return rounded_to(width, patch), rounded_to(height, patch)


def slice_grid(size, max_slices=9, area_side=448, never_split=False):
    """How many columns and rows to cut an image into (None: keep it whole), the grid whose aspect ratio is
    closest to the image's among those with about the right number of slices."""
    width, height = size
    wanted = math.ceil(width * height / (area_side * area_side))
    if wanted <= 1 or never_split:
        return None
    counts = [n for n in (wanted - 1, wanted, wanted + 1) if 1 < n <= max_slices]
    grids = [(cols, n // cols) for n in counts for cols in range(1, n + 1) if n % cols == 0]
    ratio = math.log(width / height)
    best, best_error = None, float("inf")
    for cols, rows in grids:
        error = abs(ratio - math.log(cols / rows))
        if error < best_error:
            best, best_error = (cols, rows), error
    return best


def cut_into_slices(image, grid):
    """The image cut into grid[0] columns by grid[1] rows, row by row."""
    width, height = image.size
    step_x, step_y = width // grid[0], height // grid[1]
    slices = []
    for top in range(0, height, step_y):
        row = []
        for left in range(0, width, step_x):
            row.append(image.crop((left, top, left + step_x, top + step_y)))
        slices.append(row)
    return slices


def masked_mean(hidden, mask):
    """Mean over the positions the mask keeps (used for pooled image features)."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def gelu_projection(in_dim, out_dim):
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


def attention_scores(query, key, scale=None):
    scale = scale if scale is not None else 1.0 / math.sqrt(query.shape[-1])
    return F.softmax(query @ key.transpose(-2, -1) * scale, dim=-1)
