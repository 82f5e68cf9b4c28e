#!/usr/bin/env python3
"""The expected values of framework/tests/zca.rs `matches_kornia_on_a_correlated_dataset`:
kornia's ZCAWhitening(eps=0.1, compute_inv=True), as mtt-distillation utils.py:147 calls it, on a
dataset both sides generate from the same formula. Needs torch and kornia
(`pip install torch kornia`); measured with kornia 0.9.0 and PyTorch 2 on CPU."""
import math, torch, kornia as K
# 200 images of 3x4x4 (48 features): x[n, f] = frac(sin(n * 12.9898 + f * 78.233) * 43758.5453), in [0, 1)
N, C, H, W = 200, 3, 4, 4
D = C * H * W
x = torch.empty(N, D, dtype=torch.float64)
for n in range(N):
    for f in range(D):
        v = math.sin(n * 12.9898 + f * 78.233) * 43758.5453
        x[n, f] = v - math.floor(v)
# Correlate the features a little so that whitening has work to do: add 0.5 x the previous feature.
y = x.clone()
y[:, 1:] += 0.5 * x[:, :-1]
imgs = y.float().reshape(N, C, H, W)
zca = K.enhance.ZCAWhitening(eps=0.1, compute_inv=True)
zca.fit(imgs)
out = zca(imgs).reshape(N, D)
for (n, f) in [(0, 0), (0, 47), (17, 5), (123, 30), (199, 46)]:
    print(n, f, repr(float(imgs.reshape(N, D)[n, f])), repr(float(out[n, f])))
back = zca.inverse_transform(zca(imgs))
print("roundtrip max err", float((back - imgs).abs().max()))
