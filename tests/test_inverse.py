"""Inverse kernels: agreement with MNE, exact localisation, the apply step."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from rtsource.config import HeadModelConfig, InverseConfig
from rtsource.headmodel.build import make_forward
from rtsource.headmodel.montage import get_montage, montage_info
from rtsource.inverse import compute_kernel, make_inverse


@pytest.fixture(scope="module")
def small_forward():
    info = montage_info(get_montage("biosemi64"))
    fwd, _ = make_forward(HeadModelConfig(conductor="sphere", spacing_mm=10.0), info)
    raw = mne.io.RawArray(np.zeros((len(info.ch_names), 2)), info)
    raw.set_eeg_reference("average", projection=True)
    return fwd, raw.info


@pytest.mark.parametrize("method,depth", [("eLORETA", None), ("MNE", 0.8), ("dSPM", 0.8),
                                          ("sLORETA", 0.8)])
def test_kernel_matches_mne(small_forward, method, depth):
    """Same forward, ad hoc covariance and λ² as MNE -> the same kernel (rel. Frobenius)."""
    fwd, info = small_forward
    lambda2 = 1.0 / 9.0
    cov = mne.make_ad_hoc_cov(info)
    inv = mne.minimum_norm.make_inverse_operator(info, fwd, cov, loose=1.0, depth=depth)
    ident = mne.io.RawArray(np.eye(len(info.ch_names)), info)
    params = {"max_iter": 50, "eps": 1e-9} if method == "eLORETA" else None
    stc = mne.minimum_norm.apply_inverse_raw(ident, inv, lambda2, method=method,
                                              pick_ori="vector", method_params=params)
    gain = fwd["sol"]["data"].reshape(len(info.ch_names), -1, 3)
    K, _ = compute_kernel(gain, np.full(len(info.ch_names), 0.2e-6**2), method.lower(),
                          lambda2, depth=depth, max_iter=50, eps=1e-9)
    rel = np.linalg.norm(K - stc.data) / np.linalg.norm(stc.data)
    assert rel < 1e-3, f"{method}: relative Frobenius difference {rel:.2e}"


def test_eloreta_localises_noiseless_dipoles_exactly(sphere_model):
    """eLORETA on the noiseless template: the power peak is at the true grid point."""
    op = make_inverse(sphere_model, InverseConfig(method="eloreta"))
    K = op.kernel.astype(np.float64)
    n = sphere_model.n_sources
    rng = np.random.default_rng(0)
    ori = rng.normal(size=(n, 3))
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    hits = 0
    for start in range(0, n, 1000):
        idx = np.arange(start, min(n, start + 1000))
        X = np.einsum("csk,sk->cs", sphere_model.gain[:, idx], ori[idx])  # (n_ch, b)
        power = (np.einsum("sij,jb->bsi", K, X) ** 2).sum(-1)
        hits += int((power.argmax(axis=1) == idx).sum())
    assert hits / n >= 0.95, f"only {hits}/{n} grid points localised exactly"


def test_apply_is_one_product_into_a_buffer(sphere_model):
    op = make_inverse(sphere_model, InverseConfig(method="eloreta"))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(25, op.n_channels)).astype(np.float32) * 1e-6
    out = np.empty((25, op.n_sources, 3), np.float32)
    res = op.apply_samples(x, out=out)
    assert res is out
    ref = np.einsum("sic,tc->tsi", op.kernel.astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
    # channel-by-time layout gives the same numbers
    np.testing.assert_allclose(op.apply(np.ascontiguousarray(x.T)), out, rtol=1e-5, atol=0)
    # the average reference is folded in: a common offset changes nothing
    shifted = op.apply_samples(x + np.float32(1e-3))
    np.testing.assert_allclose(shifted, out, atol=1e-3 * np.abs(out).max())


def test_apply_rejects_wrong_shape(sphere_model):
    op = make_inverse(sphere_model, InverseConfig(method="eloreta"))
    with pytest.raises(ValueError, match=r"\(n_times, 128\)"):
        op.apply_samples(np.zeros((128, 10), np.float32))
    with pytest.raises(ValueError, match=r"\(128, n_times\)"):
        op.apply(np.zeros((10, 128), np.float32))


def test_kernel_cache_is_reused_and_keyed(sphere_model):
    a = make_inverse(sphere_model, InverseConfig(method="eloreta"))
    b = make_inverse(sphere_model, InverseConfig(method="eloreta"))
    c = make_inverse(sphere_model, InverseConfig(method="eloreta", lambda2=0.05))
    assert a.hash == b.hash != c.hash
    np.testing.assert_array_equal(a.kernel, b.kernel)
    assert a.meta["method"] == "eloreta" and a.ch_names == sphere_model.ch_names


def test_bad_method_and_lambda():
    gain = np.random.default_rng(0).normal(size=(8, 5, 3))
    with pytest.raises(ValueError, match="'eloreta', 'sloreta', 'dspm', 'mne'"):
        compute_kernel(gain, np.ones(8), "lcmv", 0.1)
    with pytest.raises(ValueError, match="lambda2"):
        compute_kernel(gain, np.ones(8), "mne", 0.0)
