using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>SHA-256 over tensors sorted by name: for each, the UTF-8 name, dtype, shape and raw bytes (bit-identity checks).</summary>
public static class StateDigest
{
    public static string Compute(IEnumerable<(string Name, Tensor Tensor)> tensors)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, t) in tensors.OrderBy(x => x.Name, StringComparer.Ordinal))
        {
            sha.AppendData(Encoding.UTF8.GetBytes($"{name}\0{t.dtype}\0{string.Join(",", t.shape)}\0"));
            // A scope keeps every temporary of the chain reachable until its bytes are read: an unreachable wrapper
            // (t.detach()'s) may otherwise be finalized on the GC's thread while libtorch reads it
            // (docs/torchsharp-scalar-race.md, "Not covered": the same race with Tensors).
            using var scope = NewDisposeScope();
            var c = t.detach().cpu().contiguous();
            sha.AppendData(c.bytes);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>Digest of a module's state dict (parameters and buffers).</summary>
    public static string Compute(nn.Module module) => Compute(module.state_dict().Select(kv => (kv.Key, kv.Value)));
}
