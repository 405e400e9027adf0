using System.CommandLine;
using System.Globalization;
using Ect.Compute.IO;
using Ect.Compute.Training;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect ema reconstruct RUN_DIR --std S --out W.safetensors [--images N]`: EDM2's post-hoc EMA. The power-function
/// EMA snapshots an EDM2 run wrote to RUN_DIR/phema/ (ect.edm2.phema-snapshot-every-steps) are combined by least
/// squares (PhemaSnapshots.Reconstruct, EDM2's solve_posthoc_coefficients) into the EMA with relative std S whose
/// profile ends at the last snapshot (or at N images). The output holds the network's own state-dict keys
/// (<c>unet.*</c>, as EDM2's Precond: PyTorch loads it with load_state_dict) and, in its metadata, the coefficients;
/// an EDM2 run starts from it through ect.network.init.
/// </summary>
public sealed class EmaVerb : ICliVerb
{
    public int Order => 46;

    public Command Build()
    {
        var runDir = new Argument<string>("RUN_DIR") { Description = "An EDM2 run directory whose phema/ folder holds power-function EMA snapshots." };
        var std = new Option<double>("--std") { Description = "Relative standard deviation of the EMA profile to reconstruct, in (0, 0.28) (e.g. 0.075).", Required = true };
        var output = new Option<string>("--out") { Description = "The weights file to write (.safetensors).", Required = true };
        var images = new Option<long?>("--images") { Description = "End of the profile in images (default: the last snapshot's image count)." };
        var reconstruct = new Command("reconstruct", "Reconstruct the EMA of any std from a run's power-function EMA snapshots (EDM2's post-hoc EMA).");
        reconstruct.Arguments.Add(runDir);
        reconstruct.Options.Add(std);
        reconstruct.Options.Add(output);
        reconstruct.Options.Add(images);
        reconstruct.SetAction(r => Reconstruct(r.GetValue(runDir)!, r.GetValue(std), r.GetValue(output)!, r.GetValue(images)));
        var cmd = new Command("ema", "Post-hoc EMA of EDM2 runs.");
        cmd.Subcommands.Add(reconstruct);
        return cmd;
    }

    public static int Reconstruct(string runDir, double std, string output, long? images)
    {
        try
        {
            if (!(std > 0 && std < 0.28))
            {
                Console.Error.WriteLine($"ect ema reconstruct: --std {std.ToString(CultureInfo.InvariantCulture)} is outside (0, 0.28), the stds a power-function EMA profile can have.");
                return 2;
            }
            if (images is <= 0)
            {
                Console.Error.WriteLine($"ect ema reconstruct: --images {images} must be positive.");
                return 2;
            }
            var folder = Directory.Exists(Path.Combine(runDir, PhemaSnapshots.Folder)) ? Path.Combine(runDir, PhemaSnapshots.Folder) : runDir;
            var snapshots = PhemaSnapshots.List(folder);
            var (weights, coefs) = PhemaSnapshots.Reconstruct(snapshots, std, images);
            try
            {
                var last = snapshots[^1];
                var meta = new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    ["ect.format"] = "ect-posthoc-ema/1",
                    ["posthoc-std"] = std.ToString("R", CultureInfo.InvariantCulture),
                    ["posthoc-images"] = (images ?? snapshots.Max(s => s.Images)).ToString(CultureInfo.InvariantCulture),
                    ["posthoc-coefficients"] = string.Join(";", coefs.Select(c => string.Create(CultureInfo.InvariantCulture,
                        $"{Path.GetFileName(c.Snapshot.Path)}@{c.Std:R}={c.Coefficient:R}"))),
                };
                if (PhemaSnapshots.ReadMetadata(last.Path).TryGetValue(Checkpoints.CheckpointFormat.UserPrefix + Checkpoints.CheckpointFormat.Edm2Config, out var cfg)) meta[Checkpoints.CheckpointFormat.UserPrefix + Checkpoints.CheckpointFormat.Edm2Config] = cfg;
                var full = Path.GetFullPath(output);
                AtomicFile.Write(full, fs => Safetensors.Write(fs, weights, meta));
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"wrote {full}: EMA std {std} ending at {meta["posthoc-images"]} images, from {coefs.Count} profiles in {snapshots.Count} snapshot(s) ({snapshots[0].Step}..{last.Step}); {weights.Count} tensors"));
                return 0;
            }
            finally { foreach (var t in weights.Values) t.Dispose(); }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException)
        {
            Console.Error.WriteLine($"ect ema reconstruct: {e.Message}");
            return 1;
        }
    }
}
