using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Networks;

/// <summary>
/// Strict, by-name state-dict transfer between a TorchSharp module and a plain dictionary
/// (PyTorch <c>load_state_dict(strict=True)</c> semantics, checked before anything is copied).
/// </summary>
public static class StateDict
{
    /// <summary>
    /// Copies every parameter and persistent buffer of <paramref name="module"/> from <paramref name="source"/>
    /// by name. Throws <see cref="ArgumentException"/> naming the first missing, unexpected or
    /// shape-mismatched key (and how many of each) without modifying the module.
    /// Values are converted to the target's dtype; parameters keep their requires_grad flag.
    /// </summary>
    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source)
    {
        var target = module.state_dict();
        var missing = target.Keys.Where(k => !source.ContainsKey(k)).ToList();
        var unexpected = source.Keys.Where(k => !target.ContainsKey(k)).ToList();
        var mismatched = target.Keys.Where(source.ContainsKey)
            .Where(k => !target[k].shape.SequenceEqual(source[k].shape)).ToList();
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0)
                parts.Add($"{missing.Count} missing key(s), first '{missing[0]}'");
            if (unexpected.Count > 0)
                parts.Add($"{unexpected.Count} unexpected key(s), first '{unexpected[0]}'");
            if (mismatched.Count > 0)
            {
                var k = mismatched[0];
                parts.Add($"{mismatched.Count} shape mismatch(es), first '{k}': model [{string.Join(",", target[k].shape)}], " +
                          $"given [{string.Join(",", source[k].shape)}]");
            }
            throw new ArgumentException(
                $"State dict does not match the {module.GetName()} module: {string.Join("; ", parts)}. " +
                "Check that the weights were saved from a network with the same configuration.");
        }
        using (no_grad())
        {
            foreach (var (name, t) in target)
                t.copy_(source[name].to(t.dtype));
        }
    }

    /// <summary>Detached copies of every parameter and persistent buffer, keyed by EDM/PyTorch name.</summary>
    public static Dictionary<string, Tensor> Export(nn.Module module)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, t) in module.state_dict())
            result[name] = t.detach().clone();
        return result;
    }
}
