using static TorchSharp.torch;

namespace Ect.Compute.Networks;

/// <summary>
/// EDM's attention weights softmax(Q^T K / sqrt(C)) computed in float32. q, k: [N, C, HW];
/// returns w [N, Q, K] in q's dtype. EDM's custom autograd Function only re-states the softmax
/// backward in float32; autograd on these float32 ops computes the same gradient.
/// </summary>
public static class AttentionOp
{
    public static Tensor Weights(Tensor q, Tensor k)
    {
        double scale = 1.0 / Math.Sqrt(k.shape[1]);
        using var q32 = q.to(float32);
        using var k32 = k.Times(scale).to(float32);
        using var logits = einsum("ncq,nck->nqk", q32, k32);
        using var w = logits.softmax(2);
        return w.to(q.dtype);
    }
}
