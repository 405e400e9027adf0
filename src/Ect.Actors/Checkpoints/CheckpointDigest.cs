using Ect.Actors.Run;
using Ect.Actors.Evaluation;
using Ect.Actors.Engine;
using Ect.Actors.Configuration;
using System.Security.Cryptography;
using System.Text;

namespace Ect.Actors.Checkpoints;

/// <summary>
/// SHA-256 digests of the tensor groups of a checkpoint (TrainState writes <c>net/NAME</c>, <c>ema/NAME</c>,
/// <c>optimizer/...</c>, <c>rng</c>). A group's digest covers only tensor names (without the group prefix),
/// dtype, shape and bytes, taken in ordinal name order, so two files with equal weights give equal digests
/// whatever their tensor order, padding or metadata. Per tensor it hashes
/// <c>UTF8("{name}\0{dtype}\0{shape joined by ','}\0")</c> then the raw bytes, with the dtype spelled as
/// TorchSharp's ScalarType (Float32, ...): the same bytes as Ect.Compute.Training.StateDigest.Compute(module),
/// so `ect inspect`'s net/ema digests can be compared with the trainer's logs (StateDigestCompatibilityTests).
/// </summary>
public static class CheckpointDigest
{
    /// <summary>Group name -> digest (lower-case hex). Tensors without a '/' form the group "" (the whole file when flat).</summary>
    public static IReadOnlyDictionary<string, string> ByGroup(SafetensorsFile file)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var group in file.Tensors.Values.GroupBy(e => GroupOf(e.Name)))
            result[group.Key] = Compute(file, group.Select(e => (StripGroup(e.Name), e)));
        return result;
    }

    /// <summary>Digest over the given (name, entry) pairs.</summary>
    public static string Compute(SafetensorsFile file, IEnumerable<(string Name, SafetensorsFile.Entry Entry)> tensors)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, e) in tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            sha.AppendData(Encoding.UTF8.GetBytes($"{name}\0{TorchTypeName(e.DType)}\0{string.Join(",", e.Shape)}\0"));
            file.ReadBytes(e, span => sha.AppendData(span));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    public static string GroupOf(string name) => name.IndexOf('/') is var i and > 0 ? name[..i] : "";

    private static string StripGroup(string name) => name.IndexOf('/') is var i and > 0 ? name[(i + 1)..] : name;

    /// <summary>Safetensors dtype code -> TorchSharp ScalarType name (as StateDigest prints t.dtype).</summary>
    public static string TorchTypeName(string dtype) => dtype switch
    {
        "F64" => "Float64",
        "F32" => "Float32",
        "F16" => "Float16",
        "BF16" => "BFloat16",
        "I64" => "Int64",
        "I32" => "Int32",
        "I16" => "Int16",
        "I8" => "Int8",
        "U8" => "Byte",
        "BOOL" => "Bool",
        _ => dtype,
    };
}
