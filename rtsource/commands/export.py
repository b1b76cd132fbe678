"""``rtsource export``: checkpoint -> ONNX (verified against torch) [-> TensorRT engine]."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default="default",
                   help="'default' (shipped weights) or a checkpoint from 'rtsource train'")
    p.add_argument("--out", default="piunet.onnx", help="ONNX file to write")
    p.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    p.add_argument("--dynamic-batch", action="store_true", help="dynamic batch axis")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--tensorrt", action="store_true",
                   help="also build (and cache) a TensorRT engine; needs tensorrt and a GPU")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import onnxruntime as ort
    import torch

    from ..engines import check_onnx_for_tensorrt, export_onnx, make_engine
    from ..models.checkpoint import checkpoint_path, load_checkpoint

    ckpt = load_checkpoint(checkpoint_path(args.checkpoint))
    path = export_onnx(ckpt.model, args.out, batch=args.batch,
                       dynamic_batch=args.dynamic_batch, opset=args.opset)
    x = torch.randn(args.batch, 3, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = ckpt.model(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    rel = float(np.abs(got - ref).max() / np.abs(ref).max())
    if rel > 1e-4:
        raise ValueError(f"ONNX output differs from torch by {rel:.2e} (relative max); "
                         "the export is not faithful.")
    problems = check_onnx_for_tensorrt(path, raise_on_error=False)
    print(f"wrote {path} (width {ckpt.width}, weights sha256 {ckpt.sha256[:12]}…); ONNX Runtime "
          f"matches torch to {rel:.1e} (relative max)")
    print("TensorRT ONNX-parser check: " + ("every operator supported" if not problems
                                            else "; ".join(problems)))
    if args.tensorrt:
        engine = make_engine(ckpt.model, "tensorrt", batch_sizes=(args.batch,))
        out = engine(x.numpy())
        rel_trt = float(np.abs(out - ref).max() / np.abs(ref).max())
        print(f"TensorRT engine {engine.name}: output matches torch to {rel_trt:.1e}")
    return 0 if not problems else 1
