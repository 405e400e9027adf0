using System.CommandLine;
using System.Globalization;
using Ect.Actors.Evaluation;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect export CHECKPOINT|RUN_DIR --out FILE.safetensors`: the EMA weights of a training checkpoint under EDM's
/// state-dict keys, with the network description (format <see cref="WeightsFile.FormatName"/>). The result is what
/// `ect.network.init` starts a run from and what `ect eval` samples; PyTorch loads it into EDM's EDMPrecond with
/// <c>load_state_dict(safetensors.torch.load_file(FILE))</c>. A quarter of the checkpoint's size: no optimizer
/// moments, no second copy of the weights.
/// </summary>
public sealed class ExportVerb : ICliVerb
{
    public int Order => 45;

    public Command Build()
    {
        var target = new Argument<string>("CHECKPOINT|RUN_DIR") { Description = "A training checkpoint, or a run directory (its latest checkpoint)." };
        var output = new Option<string>("--out") { Description = "The weights file to write (.safetensors).", Required = true };
        var cmd = new Command("export", "Write a checkpoint's EMA weights as a standalone weights file (to ship, or to start a run from).");
        cmd.Arguments.Add(target);
        cmd.Options.Add(output);
        cmd.SetAction(r => Run(r.GetValue(target)!, r.GetValue(output)!));
        return cmd;
    }

    public static int Run(string target, string output)
    {
        try
        {
            var path = Directory.Exists(target) ? CheckpointSummary.LatestIn(target) : target;
            var r = WeightsFile.Export(path, output);
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {r.Path}: EMA of {path}, {r.Tensors} tensors, {r.Parameters:N0} values, {r.Bytes / 1048576.0:0.00} MiB, sha256 {r.Sha256}"));
            return 0;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ect export: {e.Message}");
            return 1;
        }
    }
}
