#!/usr/bin/env python3
"""Convert an EDM / ECT / EDM2 network pickle (network-snapshot-*.pkl, edm-*.pkl, edm2-img64-*.pkl) to a safetensors state dict that
ECT.NET loads as ect.network.init (docs/safetensors-export.md).

    python3 scripts/edm-pkl-to-safetensors.py --edm /path/to/edm  IN.pkl  OUT.safetensors

What it needs installed (nothing else is imported):
  * Python 3.8 or later;
  * PyTorch (`pip install torch`; the CPU build is enough, no GPU is used);
  * safetensors (`pip install safetensors`);
  * a checkout of NVlabs/edm (or locuslab/ect; NVlabs/edm2 for EDM2 pickles), given with --edm: the pickle refers to its modules `dnnlib`,
    `torch_utils` and `training.networks` by name, so unpickling needs them importable (EDM's own
    requirements such as click, tqdm or psutil are not needed to unpickle).

It takes the EMA network (data['ema'], as EDM's generate.py does; --key net for the raw network), writes every
tensor of its state_dict() (parameters and the fixed resample_filter buffers) under EDM's own keys
(model.enc.32x32_conv.weight, ...; each tensor cloned, contiguous, on the CPU: safetensors refuses shared storage),
and prints the ECT.NET settings that describe the network, read from its tensors' shapes: in particular
ect.network.augment-dim (EDM's train.py sets augment_dim = 9 when it trains with augmentation; such networks
carry model.map_augment.weight [C, 9]).

A pickle runs code when it is loaded: convert only files you trust (NVIDIA's published ones, your own runs).
"""
import argparse
import pickle
import re
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pkl", help="EDM/ECT network pickle (network-snapshot-*.pkl)")
    ap.add_argument("out", help="output .safetensors")
    ap.add_argument("--edm", required=True, help="folder of an NVlabs/edm (or locuslab/ect) checkout: holds dnnlib/ and torch_utils/")
    ap.add_argument("--key", default="ema", help="which network of the pickle: ema (default, what EDM samples with) or net")
    a = ap.parse_args()

    sys.path.insert(0, a.edm)
    try:
        import torch  # noqa: F401
        import safetensors.torch
    except ImportError as e:
        print(f"edm-pkl-to-safetensors: {e}: install PyTorch and safetensors (pip install torch safetensors)", file=sys.stderr)
        return 2
    try:
        import dnnlib  # noqa: F401  (the pickle names these modules)
        import torch_utils  # noqa: F401
    except ImportError as e:
        print(f"edm-pkl-to-safetensors: {e}: --edm {a.edm} is not an NVlabs/edm checkout (it needs dnnlib/ and torch_utils/)", file=sys.stderr)
        return 2

    with open(a.pkl, "rb") as f:
        data = pickle.load(f)
    if a.key not in data:
        print(f"edm-pkl-to-safetensors: {a.pkl} has no '{a.key}' (it has: {', '.join(map(str, data))})", file=sys.stderr)
        return 2
    net = data[a.key]
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    safetensors.torch.save_file(tensors, a.out)
    print(f"wrote {a.out}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()):,} values")

    # The settings that describe this network (the init check of `ect train` names any that still differ).
    if any(k.startswith("unet.") for k in tensors):
        return print_edm2_settings(a.out, tensors)
    sets = []
    conv = next((k for k in tensors if re.fullmatch(r"model\.enc\.(\d+)x\1_conv\.weight", k)), None)
    if conv:
        res = int(re.match(r"model\.enc\.(\d+)x", conv).group(1))
        sets += [f"ect.data.resolution={res}", f"ect.network.model-channels={tensors[conv].shape[0]}"]
        levels = sorted({int(m.group(1)) for k in tensors for m in [re.match(r"model\.enc\.(\d+)x\1_", k)] if m}, reverse=True)
        blocks = {m.group(1) for k in tensors for m in [re.match(rf"model\.enc\.{res}x{res}_block(\d+)\.", k)] if m}
        mult = []
        for r in levels:
            last = max((int(m.group(1)) for k in tensors for m in [re.match(rf"model\.enc\.{r}x{r}_block(\d+)\.conv1\.weight", k)] if m), default=None)
            if last is not None:
                mult.append(tensors[f"model.enc.{r}x{r}_block{last}.conv1.weight"].shape[0] // tensors[conv].shape[0])
        sets += [f"ect.network.channel-mult=[{','.join(map(str, mult))}]", f"ect.network.num-blocks={len(blocks)}"]
        attn = sorted({int(m.group(1)) for k in tensors for m in [re.match(r"model\.enc\.(\d+)x\1_block\d+\.qkv\.weight", k)] if m})
        sets.append(f"ect.network.attn-resolutions=[{','.join(map(str, attn))}]")
    sets.append("ect.network.type=" + ("ncsnpp" if "model.map_noise.freqs" in tensors else "ddpmpp"))
    aug = tensors.get("model.map_augment.weight")
    sets.append(f"ect.network.augment-dim={aug.shape[1] if aug is not None else 0}")
    if "model.map_label.weight" in tensors:
        sets.append("ect.data.use-labels=on")
    print("tune from it with:\n  ect train --set ect.network.init=" + a.out + "".join(f" \\\n    --set {s}" for s in sets))
    return 0


def print_edm2_settings(out, tensors) -> int:
    """An EDM2 network (NVlabs/edm2 or locuslab/ect imgnet, training/networks_edm2.Precond: keys unet.*). NVlabs'
    logvar_fourier.* / logvar_linear.* (the uncertainty head) stay in the file; ECT.NET drops them when it loads."""
    sets = ["ect.network.type=edm2"]
    conv = next((k for k in tensors if re.fullmatch(r"unet\.enc\.(\d+)x\1_conv\.weight", k)), None)
    if conv:
        res = int(re.match(r"unet\.enc\.(\d+)x", conv).group(1))
        mc = tensors[conv].shape[0]
        levels = sorted({int(m.group(1)) for k in tensors for m in [re.match(r"unet\.enc\.(\d+)x\1_", k)] if m}, reverse=True)
        mult = [tensors[f"unet.enc.{r}x{r}_block0.conv_res1.weight"].shape[0] // mc
                for r in levels if f"unet.enc.{r}x{r}_block0.conv_res1.weight" in tensors]
        blocks = {m.group(1) for k in tensors for m in [re.match(rf"unet\.enc\.{res}x{res}_block(\d+)\.", k)] if m}
        attn = sorted({int(m.group(1)) for k in tensors for m in [re.match(r"unet\.enc\.(\d+)x\1_block\d+\.attn_qkv\.weight", k)] if m}, reverse=True)
        sets += [f"ect.data.resolution={res}", f"ect.network.model-channels={mc}",
                 f"ect.network.channel-mult=[{','.join(map(str, mult))}]", f"ect.network.num-blocks={len(blocks)}",
                 f"ect.network.attn-resolutions=[{','.join(map(str, attn))}]"]
    if "unet.emb_label.weight" in tensors:
        sets.append("ect.data.use-labels=on")
    dropped = [k for k in tensors if k.startswith(("logvar_fourier.", "logvar_linear."))]
    if dropped:
        print(f"({len(dropped)} log-variance tensors, {', '.join(dropped)}: ECT's network has no such head and drops them)")
    print("tune from it with (dropout and dropout-res as the recipe's preset, e.g. hocon/edm2-img64-s.conf):\n  ect train --set ect.network.init=" + out
          + "".join(f" \\\n    --set {s}" for s in sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
