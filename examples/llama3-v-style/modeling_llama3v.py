"""Llama3-V-style model code (demo): its own wrapper around a language model and a vision tower, with the
upstream stand-in's position tables, resampler and image-slicing helpers lifted in under new names and without
the upstream's notice."""

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.init import trunc_normal_


@dataclass
class VisionLanguageConfig:
    hidden_size: int = 4096
    vision_width: int = 1152
    query_tokens: int = 96
    heads: int = 32
    image_side: int = 448
    patch: int = 14
    max_tiles: int = 9
    special_tokens: dict = field(default_factory=lambda: {"image": "<image>", "slice": "<slice>"})


def pos_values(dim, pos):
    if dim % 2:
        raise ValueError(f"channels must be even, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("p,f->pf", np.asarray(pos, dtype=np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def grid_values(dim, size):
    h, w = (size, size) if isinstance(size, int) else size
    g = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    emb = np.concatenate([pos_values(dim // 2, g[1]), pos_values(dim // 2, g[0])], axis=1)
    return emb.reshape(h, w, dim)


class Projection(nn.Module):
    def __init__(self, n_query, width, heads, in_width=None, norm=nn.LayerNorm, grid_cap=(70, 70)):
        super().__init__()
        self.n_query, self.width, self.heads, self.grid_cap = n_query, width, heads, grid_cap

        self.latents = nn.Parameter(torch.zeros(self.n_query, width))
        if in_width is not None and in_width != width:
            self.in_proj = nn.Linear(in_width, width, bias=False)
        else:
            self.in_proj = nn.Identity()

        self.mha = nn.MultiheadAttention(width, heads)
        self.norm_q, self.norm_kv, self.norm_out = norm(width), norm(width), norm(width)
        self.out = nn.Parameter((width**-0.5) * torch.randn(width, width))

        self._make_table(self.grid_cap)
        self.apply(self._init)

    def _make_table(self, size, device="cpu"):
        table = torch.from_numpy(grid_values(self.width, size)).float().to(device)
        self.register_buffer("table", table, persistent=False)

    def _fit_table(self, sizes, device):
        h, w = int(torch.max(sizes[:, 0])), int(torch.max(sizes[:, 1]))
        if h > self.grid_cap[0] or w > self.grid_cap[1]:
            self.grid_cap = (max(h, self.grid_cap[0]), max(w, self.grid_cap[1]))
            self._make_table(self.grid_cap, device)

    def _init(self, m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def forward(self, x, sizes):
        if x.shape[0] != sizes.shape[0]:
            raise ValueError("one patch grid per image is needed")
        b = x.shape[0]
        device, dtype = x.device, x.dtype
        n = sizes[:, 0] * sizes[:, 1]
        self._fit_table(sizes, device)
        mask = torch.zeros((b, int(torch.max(n))), dtype=torch.bool, device=device)

        pos = []
        for i in range(b):
            h, w = sizes[i].tolist()
            pos.append(self.table[:h, :w, :].reshape((h * w, -1)).to(dtype))
            mask[i, n[i] :] = True
        pos = torch.nn.utils.rnn.pad_sequence(pos, batch_first=True, padding_value=0.0).permute(1, 0, 2)

        kv = self.norm_kv(self.in_proj(x)).permute(1, 0, 2)
        q = self.norm_q(self.latents)
        y = self.mha(self._expand(q, b), kv + pos, kv, key_padding_mask=mask)[0]
        return self.norm_out(y.permute(1, 0, 2)) @ self.out

    def _expand(self, q, b):
        return q.unsqueeze(1).repeat(1, b, 1)


def tile_grid(size, max_tiles=9, side=448, whole=False):
    w, h = size
    k = math.ceil(w * h / (side * side))
    if k <= 1 or whole:
        return None
    counts = [c for c in (k - 1, k, k + 1) if 1 < c <= max_tiles]
    grids = [(gx, c // gx) for c in counts for gx in range(1, c + 1) if c % gx == 0]
    target = math.log(w / h)
    return min(grids, key=lambda g: abs(target - math.log(g[0] / g[1])), default=None)


class VisionTower(nn.Module):
    """Patchify, a stack of encoder layers, a final norm: the vision encoder this model trains from scratch."""

    def __init__(self, config: VisionLanguageConfig, layers: int = 4):
        super().__init__()
        self.patchify = nn.Conv2d(3, config.vision_width, kernel_size=config.patch, stride=config.patch)
        layer = nn.TransformerEncoderLayer(config.vision_width, nhead=16, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers)
        self.final_norm = nn.LayerNorm(config.vision_width)

    def forward(self, pixels):
        grid = self.patchify(pixels)
        rows, cols = grid.shape[-2:]
        tokens = grid.flatten(2).transpose(1, 2)
        return self.final_norm(self.encoder(tokens)), torch.tensor([[rows, cols]] * pixels.shape[0])


class Llama3V(nn.Module):
    """The language model sees the image as `query_tokens` extra embeddings where the prompt has `<image>`."""

    def __init__(self, config: VisionLanguageConfig, language_model: nn.Module):
        super().__init__()
        self.config = config
        self.language_model = language_model
        self.vision = VisionTower(config)
        self.projection = Projection(config.query_tokens, config.hidden_size, config.heads, config.vision_width)

    def image_embeddings(self, pixels):
        features, sizes = self.vision(pixels)
        return self.projection(features, sizes)

    def splice(self, text_embeddings, image_embeddings, image_positions):
        """Overwrite the placeholder positions of each sample with its image's query embeddings."""
        merged = text_embeddings.clone()
        for sample, start in image_positions:
            stop = start + image_embeddings.shape[1]
            merged[sample, start:stop] = image_embeddings[sample]
        return merged

    def forward(self, input_ids, pixels, image_positions, **kwargs):
        text = self.language_model.get_input_embeddings()(input_ids)
        merged = self.splice(text, self.image_embeddings(pixels), image_positions)
        return self.language_model(inputs_embeds=merged, **kwargs)


def prompt_with_image(question: str, config: VisionLanguageConfig, grid=None) -> str:
    """The user turn with one `<image>` placeholder run per slice (plus the overview) before the question."""
    one = config.special_tokens["image"] + "<unk>" * config.query_tokens + "</image>"
    parts = [one]
    if grid is not None:
        cols, rows = grid
        parts += [config.special_tokens["slice"] + "<unk>" * config.query_tokens + "</slice>"] * (cols * rows)
    return "".join(parts) + "\n" + question


def cosine_warmup(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier: linear warm-up, then half a cosine down to zero."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
