using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Networks;

/// <summary>
/// The state-dict shapes of a network, computed without allocating it: the network is built on libtorch's meta
/// device (tensors with a shape and no storage). A file that describes its own network (a checkpoint's
/// <c>user.network-config</c>) is hostile input: its description is checked against the tensors it holds before the
/// network is built for real, so a description of a 60-billion-parameter network is refused in a fraction of a
/// second instead of allocating (and initializing) hundreds of gigabytes.
/// Measured (TorchSharp 0.107, this repository's SongUNet): a 63e9-parameter description builds on meta in ~0.2 s,
/// the process's memory unchanged.
/// Should a constructor ever create a tensor without <see cref="ModuleDevice.Current"/>, that tensor is allocated on the
/// CPU here (the shapes stay right); MetaShapesTests fails on it.
/// </summary>
public static class MetaShapes
{
    private static readonly Device Meta = new(DeviceType.META);

    /// <summary>
    /// Builds the module with <paramref name="build"/> on the meta device and returns the shape of every state-dict
    /// entry (parameters and persistent buffers), then disposes it. Only this thread's constructors are affected
    /// (<see cref="ModuleDevice"/>): a trainer or evaluator on another thread keeps making real tensors meanwhile.
    /// </summary>
    public static IReadOnlyDictionary<string, long[]> Of(Func<nn.Module> build)
    {
        using (ModuleDevice.Use(Meta))
        {
            using var module = build();
            return module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
        }
    }

    /// <summary>
    /// Why <paramref name="tensors"/> (names with <paramref name="prefix"/>) do not fit <paramref name="expected"/>:
    /// the first missing, unexpected or mis-shaped name; null when they fit exactly.
    /// </summary>
    public static string? Mismatch(IReadOnlyDictionary<string, long[]> expected, IReadOnlyDictionary<string, Tensor> tensors, string prefix)
    {
        foreach (var (k, shape) in expected)
        {
            if (!tensors.TryGetValue(prefix + k, out var t)) return $"it has no tensor '{prefix}{k}'";
            if (!t.shape.SequenceEqual(shape))
                return $"tensor '{prefix}{k}' has shape [{string.Join(",", t.shape)}], the network expects [{string.Join(",", shape)}]";
        }
        var extra = tensors.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !expected.ContainsKey(k[prefix.Length..])).ToList();
        return extra.Count > 0 ? $"it has tensor '{extra[0]}' that the network does not have ({extra.Count} such tensors)" : null;
    }
}
