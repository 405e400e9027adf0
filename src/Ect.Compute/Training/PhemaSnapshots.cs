using System.Globalization;
using System.Text.Json;
using Ect.Compute.IO;
using Ect.Compute.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>One power-function EMA snapshot file: the step and image count it was taken at and the stds it holds.</summary>
public sealed record PhemaSnapshot(string Path, long Step, long Images, IReadOnlyList<double> Stds);

/// <summary>
/// Power-function EMA snapshots for post-hoc EMA (EDM2's network-snapshot-KIMG-STD.pkl files, one safetensors file per
/// snapshot here): RUN_DIR/phema/phema-STEP.safetensors holds every std's averaged weights as <c>phema-0.050/NAME</c>
/// (<see cref="Edm2TrainStep.PhemaPrefix"/>) and, in its metadata, <c>ect.format</c> = <see cref="FormatName"/>,
/// <c>ect.step</c>, <c>ect.images</c> (cur_nimg: the end of the averaging profile) and <c>ect.phema-stds</c>.
/// <see cref="Reconstruct"/> combines them into the EMA of another std (<see cref="PosthocEma"/>).
/// </summary>
public static class PhemaSnapshots
{
    public const string FormatName = "ect-phema-snapshot/1";
    public const string Folder = "phema";

    public static string FileFor(string folder, long step) => System.IO.Path.Combine(folder, $"phema-{step.ToString("D9", CultureInfo.InvariantCulture)}.safetensors");

    /// <summary>Writes a snapshot atomically (a temporary file, flushed, renamed), so a kill leaves the old file or the new one.</summary>
    public static void Write(string path, long step, long images, IReadOnlyList<double> stds, IReadOnlyList<nn.Module> emas,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (stds.Count != emas.Count) throw new ArgumentException($"{stds.Count} stds but {emas.Count} EMA modules.", nameof(emas));
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < stds.Count; i++)
            foreach (var (k, v) in emas[i].state_dict()) tensors[Edm2TrainStep.PhemaPrefix(stds[i]) + "/" + k] = v;
        var meta = new Dictionary<string, string>(StringComparer.Ordinal);
        if (metadata is not null) foreach (var (k, v) in metadata) meta["user." + k] = v;
        meta["ect.format"] = FormatName;
        meta["ect.step"] = step.ToString(CultureInfo.InvariantCulture);
        meta["ect.images"] = images.ToString(CultureInfo.InvariantCulture);
        meta["ect.phema-stds"] = string.Join(",", stds.Select(s => s.ToString("R", CultureInfo.InvariantCulture)));
        AtomicFile.Write(System.IO.Path.GetFullPath(path), fs => Safetensors.Write(fs, tensors, meta));
    }

    /// <summary>The snapshots in <paramref name="folder"/> (headers only), by step. A file that is not a snapshot is refused by name.</summary>
    public static IReadOnlyList<PhemaSnapshot> List(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"'{folder}' does not exist: the run wrote no power-function EMA snapshots (set ect.edm2.phema-snapshot-every-steps > 0).");
        var result = new List<PhemaSnapshot>();
        foreach (var file in Directory.EnumerateFiles(folder, "phema-*.safetensors").Order(StringComparer.Ordinal))
        {
            var meta = ReadMetadata(file);
            string Get(string k) => meta.TryGetValue(k, out var v) ? v : throw new InvalidDataException($"'{file}': no metadata '{k}' (not a power-function EMA snapshot).");
            if (Get("ect.format") != FormatName) throw new InvalidDataException($"'{file}': ect.format is '{meta["ect.format"]}', expected '{FormatName}'.");
            if (!long.TryParse(Get("ect.step"), NumberStyles.None, CultureInfo.InvariantCulture, out var step)
                || !long.TryParse(Get("ect.images"), NumberStyles.None, CultureInfo.InvariantCulture, out var images) || images <= 0)
                throw new InvalidDataException($"'{file}': ect.step '{meta["ect.step"]}' / ect.images '{meta["ect.images"]}' must be integers, images > 0.");
            var stds = new List<double>();
            foreach (var s in Get("ect.phema-stds").Split(','))
            {
                if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var std) || !(std > 0 && std < 0.28))
                    throw new InvalidDataException($"'{file}': ect.phema-stds has '{s}', not a std in (0, 0.28).");
                stds.Add(std);
            }
            result.Add(new PhemaSnapshot(file, step, images, stds));
        }
        if (result.Count == 0) throw new InvalidDataException($"'{folder}' holds no phema-*.safetensors snapshot.");
        return result.OrderBy(s => s.Step).ToList();
    }

    /// <summary>
    /// The EMA with relative std <paramref name="std"/> ending at <paramref name="images"/> (null: the last snapshot's),
    /// from <paramref name="snapshots"/> (each std of each snapshot is one input profile). Returns the state dict
    /// (float32, the network's own keys) and the coefficients per input (snapshot, std).
    /// </summary>
    public static (Dictionary<string, Tensor> Weights, IReadOnlyList<(PhemaSnapshot Snapshot, double Std, double Coefficient)> Coefficients)
        Reconstruct(IReadOnlyList<PhemaSnapshot> snapshots, double std, long? images = null)
    {
        PowerFunctionEma.StdToExp(std); // refuses a std outside the power-function range, naming it
        var inputs = snapshots.SelectMany(s => s.Stds.Select(d => (Snapshot: s, Std: d))).ToList();
        long outImages = images ?? snapshots.Max(s => s.Images);
        var x = PosthocEma.SolveCoefficients(inputs.Select(i => (double)i.Snapshot.Images).ToList(), inputs.Select(i => i.Std).ToList(), [outImages], [std]);
        var coefs = inputs.Select((inp, i) => (inp.Snapshot, inp.Std, x[i, 0])).ToList();

        var acc = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var group in coefs.GroupBy(c => c.Snapshot.Path))
        {
            var contents = Safetensors.Read(group.Key);
            try
            {
                foreach (var (_, s, coef) in group)
                {
                    var prefix = Edm2TrainStep.PhemaPrefix(s) + "/";
                    var names = contents.Tensors.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList();
                    if (names.Count == 0) throw new InvalidDataException($"'{group.Key}' has no tensors '{prefix}*' although its metadata lists std {s}.");
                    if (acc.Count > 0 && (names.Count != acc.Count || names.Any(n => !acc.ContainsKey(n[prefix.Length..]))))
                        throw new InvalidDataException($"'{group.Key}': the tensors of std {s} differ from the other snapshots' (another network?).");
                    foreach (var n in names)
                    {
                        using var inner = NewDisposeScope();
                        var key = n[prefix.Length..];
                        var t = contents.Tensors[n];
                        var term = t.to(float64).Times(coef);
                        if (acc.TryGetValue(key, out var a))
                        {
                            if (!a.shape.SequenceEqual(t.shape)) throw new InvalidDataException($"'{group.Key}': '{n}' has shape [{string.Join(",", t.shape)}], other snapshots [{string.Join(",", a.shape)}].");
                            a.PlusInPlace(term);
                        }
                        else acc[key] = term.DetachFromDisposeScope();
                    }
                }
            }
            finally { foreach (var t in contents.Tensors.Values) t.Dispose(); }
        }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in acc) { result[k] = v.to(float32); v.Dispose(); }
        return (result, coefs);
    }

    /// <summary>The <c>__metadata__</c> of a safetensors file, read from its header alone (a snapshot of a large network is gigabytes).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        using var fs = File.OpenRead(path);
        var lenBytes = new byte[8];
        if (fs.Read(lenBytes, 0, 8) != 8) throw new InvalidDataException($"'{path}' is shorter than a safetensors header (8 bytes).");
        ulong len = BitConverter.ToUInt64(lenBytes, 0);
        if (len == 0 || len > 100_000_000 || (long)len > fs.Length - 8) throw new InvalidDataException($"'{path}': safetensors header length {len} does not fit the file ({fs.Length} bytes).");
        var header = new byte[len];
        fs.ReadExactly(header);
        try
        {
            using var doc = JsonDocument.Parse(header);
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("__metadata__", out var m) && m.ValueKind == JsonValueKind.Object)
                foreach (var p in m.EnumerateObject()) if (p.Value.ValueKind == JsonValueKind.String) result[p.Name] = p.Value.GetString()!;
            return result;
        }
        catch (JsonException e) { throw new InvalidDataException($"'{path}': the safetensors header is not valid JSON ({e.Message})."); }
    }
}
