using System.CommandLine;
using System.Globalization;
using Ect.Data;
using Spectre.Console;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect data prepare --source S --dest D.zip [--resolution N] [--max-images K]`: converts a dataset (IDX, CIFAR-10,
/// image folder/zip) into EDM's dataset zip with <see cref="DatasetPreparer"/>. A progress bar on a terminal;
/// a <see cref="DatasetException"/> is printed as is (it names the file and the fix) with exit code 1.
/// </summary>
public sealed class DataVerb : ICliVerb
{
    public int Order => 20;

    public Command Build()
    {
        var source = new Option<string>("--source") { Description = "IDX file/folder, CIFAR-10 (.tar.gz or folder), EDM .zip or a folder of images.", Required = true };
        var dest = new Option<string>("--dest") { Description = "Output .zip (or an empty/new folder).", Required = true };
        var resolution = new Option<int?>("--resolution") { Description = "Output resolution (power of two; default: the images' own, 28x28 IDX padded to 32)." };
        var maxImages = new Option<int?>("--max-images") { Description = "Write at most this many images." };
        var prepare = new Command("prepare", "Convert a dataset into EDM's zip layout (PNGs + dataset.json).");
        foreach (var o in new Option[] { source, dest, resolution, maxImages }) prepare.Options.Add(o);
        prepare.SetAction((r, ct) => Task.Run(() =>
            Prepare(r.GetValue(source)!, r.GetValue(dest)!, r.GetValue(resolution), r.GetValue(maxImages), ct), ct));

        var data = new Command("data", "Dataset tools.");
        data.Subcommands.Add(prepare);
        return data;
    }

    public static int Prepare(string source, string dest, int? resolution, int? maxImages, CancellationToken ct = default)
    {
        try
        {
            PrepareResult result;
            if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
            {
                result = AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                        new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask($"preparing {Path.GetFileName(dest)}", maxValue: 1);
                        return DatasetPreparer.Prepare(source, dest, resolution, maxImages, new Reporter(p =>
                        {
                            task.MaxValue = Math.Max(1, p.total);
                            task.Value = p.done;
                        }), ct);
                    });
            }
            else
            {
                result = DatasetPreparer.Prepare(source, dest, resolution, maxImages, null, ct);
            }
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {result.Images} images ({result.Channels}x{result.Resolution}x{result.Resolution}, " +
                $"{(result.ClassCount > 0 ? $"{result.ClassCount} classes" : "no labels")}, from {result.SourceFormat}) " +
                $"to {result.Destination} in {result.Elapsed.TotalSeconds:0.0} s"));
            return 0;
        }
        catch (DatasetException e)
        {
            Console.Error.WriteLine($"ect data prepare: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("ect data prepare: cancelled; no output was written.");
            return 130;
        }
    }

    /// <summary>Calls back on the reporting thread (Progress&lt;T&gt; would post to the thread pool and lag).</summary>
    private sealed class Reporter(Action<(int done, int total)> report) : IProgress<(int done, int total)>
    {
        public void Report((int done, int total) value) => report(value);
    }
}
