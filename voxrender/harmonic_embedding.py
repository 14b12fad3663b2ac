"""``HarmonicEmbedding``: NeRF's positional encoding (and mip-NeRF's integrated one).

PyTorch3D's ``pytorch3d.renderer.implicit.HarmonicEmbedding``, same layout, values, gradients and
buffers. Each input coordinate ``x_i`` becomes ``sin(f_k x_i)`` and ``cos(f_k x_i)`` for ``K``
frequencies ``f_k = omega_0 * 2**k`` (``logspace=True``) or ``omega_0 * linspace(1, 2**(K-1),
K)``; the output's last dimension holds, in order, all sines (coordinate-major, frequency-minor),
then all cosines, then the input itself when ``append_input``. With a diagonal covariance
``diag_cov`` each sine and cosine is damped by ``exp(-0.5 f_k^2 cov_i)``, the expected value
over a Gaussian (mip-NeRF).

Dimensions:
    ``...``: any leading dimensions.
    ``D``: input coordinates (the last dimension of ``x``).
    ``K``: frequencies (``n_harmonic_functions``).
"""

from __future__ import annotations

import torch

from ._checks import check_floating, describe

__all__ = ["HarmonicEmbedding"]


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise TypeError(f"{name}: expected a bool, got {describe(value)}")
    return bool(value)


class HarmonicEmbedding(torch.nn.Module):
    """Sines and cosines of scaled inputs (``torch.nn.Module``, no parameters).

    Args:
        n_harmonic_functions: number of frequencies ``K`` (``>= 0``).
        omega_0: base frequency multiplying every frequency.
        logspace: frequencies ``2**k`` (default) or evenly spaced from 1 to ``2**(K-1)``.
        append_input: append ``x`` itself after the sines and cosines.

    Buffers (not saved in ``state_dict``, as in PyTorch3D): ``_frequencies`` ``(K,)`` (float32)
    and ``_zero_half_pi`` ``(2,)`` = ``(0, pi/2)`` (``cos(t) = sin(t + pi/2)``).
    """

    def __init__(
        self,
        n_harmonic_functions: int = 6,
        omega_0: float = 1.0,
        logspace: bool = True,
        append_input: bool = True,
    ) -> None:
        super().__init__()
        n = _check_int(n_harmonic_functions, "n_harmonic_functions", 0)
        if isinstance(omega_0, bool) or not isinstance(omega_0, (int, float)):
            raise TypeError(f"omega_0: expected a number, got {describe(omega_0)}")
        if _check_bool(logspace, "logspace"):
            frequencies = 2.0 ** torch.arange(n, dtype=torch.float32)
        else:
            frequencies = torch.linspace(1.0, 2.0 ** (n - 1), n, dtype=torch.float32)
        self.register_buffer("_frequencies", frequencies * omega_0, persistent=False)
        self.register_buffer("_zero_half_pi", torch.tensor([0.0, 0.5 * torch.pi]), persistent=False)
        self.append_input = _check_bool(append_input, "append_input")

    def forward(
        self, x: torch.Tensor, diag_cov: torch.Tensor | None = None, **kwargs
    ) -> torch.Tensor:
        """Embed ``x``.

        Args:
            x: ``(..., D)``.
            diag_cov: optional ``(..., D)`` variances of Gaussians centred at ``x``.
            **kwargs: ignored (PyTorch3D accepts and ignores extra keywords).

        Returns:
            ``(..., D * (2 K + append_input))``.
        """
        check_floating(x, "x")
        if x.ndim == 0:
            raise ValueError("x: expected shape (..., D), got a 0-d tensor")
        if diag_cov is not None:
            check_floating(diag_cov, "diag_cov")
            if diag_cov.shape[-1:] != x.shape[-1:]:
                raise ValueError(
                    f"diag_cov: expected shape (..., {x.shape[-1]}) like x, "
                    f"got shape {tuple(diag_cov.shape)}"
                )
        scaled = x[..., None] * self._frequencies  # (..., D, K)
        phased = scaled[..., None, :, :] + self._zero_half_pi[:, None, None]  # (..., 2, D, K)
        embed = phased.sin()  # sines then cosines
        if diag_cov is not None:
            damping = torch.exp(-0.5 * diag_cov[..., None] * self._frequencies**2)  # (..., D, K)
            embed = embed * damping[..., None, :, :]
        embed = embed.reshape(*x.shape[:-1], -1)  # (..., 2 D K)
        if self.append_input:
            return torch.cat((embed, x), dim=-1)
        return embed

    @staticmethod
    def get_output_dim_static(
        input_dims: int, n_harmonic_functions: int, append_input: bool
    ) -> int:
        """Size of the output's last dimension: ``input_dims * (2 K + append_input)``."""
        return input_dims * (2 * n_harmonic_functions + int(append_input))

    def get_output_dim(self, input_dims: int = 3) -> int:
        """Size of the output's last dimension for ``input_dims`` input coordinates."""
        return self.get_output_dim_static(input_dims, len(self._frequencies), self.append_input)
