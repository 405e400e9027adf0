using System.Collections;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ect.Compute.Evaluation;

/// <summary>
/// Loads a PyTorch state dict into a TorchSharp module with a strict check: every key of the module must be in the file
/// with the same shape, and the file may hold no other key; the error names the first mismatching key (in the module's
/// state-dict order; unexpected keys in ordinal order). One tolerance: BatchNorm <c>num_batches_tracked</c> buffers may be
/// missing or have shape [1] instead of [] (PyTorch itself fills them in for checkpoints converted from older versions,
/// and TorchSharp.PyBridge reads 0-d tensors as [1]); they are never used in eval mode.
/// </summary>
public static class StrictStateDictLoader
{
    /// <summary>Reads <paramref name="path"/> (.safetensors or a zip-format torch.save file) and applies it.</summary>
    public static void Load(nn.Module module, string path, string what)
    {
        var dict = Read(path);
        try { Apply(module, dict, path, what); }
        finally { foreach (var t in dict.Values) t.Dispose(); }
    }

    /// <summary>Reads a state dict: safetensors by extension, otherwise a PyTorch zip-format state-dict file.</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"Weights file '{path}' does not exist. For FID Inception-v3 download {InceptionV3Fid.WeightsUrl} (see docs/evaluation.md).", path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            return Safetensors.LoadStateDict(path);

        Span<byte> sig = stackalloc byte[4];
        using (var fs = File.OpenRead(path))
        {
            if (fs.Read(sig) < 4)
                throw new InvalidDataException($"Weights file '{path}' is too short to be a PyTorch checkpoint.");
        }
        if (sig[0] != 0x50 || sig[1] != 0x4B || sig[2] != 0x03 || sig[3] != 0x04)
            throw new InvalidDataException(
                $"Weights file '{path}' is not a zip-format PyTorch checkpoint (legacy torch.save format, or not a checkpoint). " +
                "Re-save it in Python: `sd = torch.load(path); torch.save(sd, 'new.pth')` (PyTorch >= 1.6), or convert it with " +
                "`safetensors.torch.save_file(sd, 'inception.safetensors')` and pass the .safetensors file.");
        // The file is read whole first, so that an IOException from here on is the pickle's (a truncated or corrupt
        // archive: "premature end of input stream", EndOfStreamException), not the disk's: hostile bytes must come out
        // as InvalidDataException naming the file (PthHostilePickleTests), which every caller reports as a bad file.
        var bytes = File.ReadAllBytes(path);
        Hashtable table;
        try { table = PyTorchUnpickler.UnpickleStateDict(new MemoryStream(bytes, writable: false)); }
        catch (Exception e)
        {
            throw new InvalidDataException($"Could not read the PyTorch state dict in '{path}': {e.Message}", e);
        }
        var dict = new Dictionary<string, Tensor>();
        foreach (DictionaryEntry kv in table)
        {
            if (kv.Key is string k && kv.Value is Tensor t) dict[k] = t;
        }
        return dict;
    }

    /// <summary>Checks keys and shapes strictly and copies the values (converted to the module's dtypes).</summary>
    public static void Apply(nn.Module module, IReadOnlyDictionary<string, Tensor> source, string sourceName, string what)
    {
        var target = module.state_dict();
        foreach (var (key, dst) in target)
        {
            var optional = key.EndsWith(".num_batches_tracked", StringComparison.Ordinal);
            if (!source.TryGetValue(key, out var src))
            {
                if (optional) continue;
                throw new InvalidDataException(
                    $"{what} weights '{sourceName}': missing key '{key}' (expected shape [{string.Join(",", dst.shape)}]). " +
                    "The file is not a pytorch-fid FID Inception state dict (e.g. torchvision's ImageNet Inception-v3 has other keys).");
            }
            var shapeOk = src.shape.SequenceEqual(dst.shape) || (optional && src.numel() == 1 && dst.numel() == 1);
            if (!shapeOk)
                throw new InvalidDataException(
                    $"{what} weights '{sourceName}': key '{key}' has shape [{string.Join(",", src.shape)}], expected [{string.Join(",", dst.shape)}].");
        }
        var unexpected = source.Keys.Where(k => !target.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).FirstOrDefault();
        if (unexpected != null)
            throw new InvalidDataException(
                $"{what} weights '{sourceName}': unexpected key '{unexpected}' (shape [{string.Join(",", source[unexpected].shape)}]) " +
                "that the network does not have. (pytorch-fid's checkpoint has no AuxLogits; strip extra keys before loading.)");

        using var noGrad = no_grad();
        foreach (var (key, dst) in target)
        {
            if (!source.TryGetValue(key, out var src)) continue;
            using var converted = src.to(dst.dtype, dst.device).reshape(dst.shape);
            dst.copy_(converted);
        }
    }
}
