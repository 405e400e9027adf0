using System.Globalization;
using Ect.Actors.Run;
using Spectre.Console;

namespace Ect.Actors.Output;

/// <summary>
/// The user's view of a run: a live Spectre.Console panel on a terminal, plain log lines otherwise.
/// Reads the latest sampled statistics; never blocks the trainer.
/// </summary>
public sealed class ProgressDisplay : IDisposable
{
    private readonly string _mode;
    private long _targetSteps, _totalSteps;
    private readonly int _batch;
    private readonly double _interval;
    private readonly string _runDir;
    private volatile TrainingProgress? _latest;
    private readonly CancellationTokenSource _cts = new();
    private Task? _loop;

    /// <param name="targetSteps">The step this invocation runs to (`--steps N`), shown as "step S/N".</param>
    /// <param name="totalSteps">The run's configured total; shown beside N when the invocation stops earlier.</param>
    public ProgressDisplay(string mode, long targetSteps, long totalSteps, int batchSize, double logIntervalSeconds, string runDir)
    {
        _mode = mode == "auto" ? (Console.IsOutputRedirected ? "plain" : "live") : mode;
        _targetSteps = targetSteps; _totalSteps = totalSteps; _batch = batchSize; _interval = logIntervalSeconds; _runDir = runDir;
    }

    /// <summary>Updates the step counts (the run's recorded configuration, known once the trainer has started).</summary>
    public void SetTarget(long targetSteps, long totalSteps)
    {
        _targetSteps = targetSteps; _totalSteps = totalSteps;
    }

    private string StepText(long step) =>
        _targetSteps < _totalSteps ? $"{step}/{_targetSteps} (run: {_totalSteps})" : $"{step}/{_totalSteps}";

    public void OnNext(TrainingProgress s) => _latest = s;

    public void Start()
    {
        _loop = _mode switch
        {
            "live" => Task.Run(LiveLoop),
            "plain" => Task.Run(PlainLoop),
            _ => Task.CompletedTask,
        };
    }

    private string Eta(TrainingProgress s)
    {
        if (s.ImagesPerSecond <= 0) return "?";
        var secs = (_targetSteps - s.Step) * _batch / s.ImagesPerSecond;
        return TimeSpan.FromSeconds(Math.Max(0, secs)).ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture);
    }

    public string Line(TrainingProgress s) => string.Create(CultureInfo.InvariantCulture,
        $"{s.Time:HH:mm:ss} {s.Phase,-8} step {StepText(s.Step)} kimg {s.Kimg:F2} img/s {s.ImagesPerSecond:F1} loss {s.Loss:G5} stage {s.Stage} eta {Eta(s)}");

    private async Task PlainLoop()
    {
        long lastStep = -1;
        try
        {
            while (!_cts.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(_interval), _cts.Token);
                if (_latest is { } s && s.Step != lastStep) { Console.WriteLine(Line(s)); lastStep = s.Step; }
            }
        }
        catch (OperationCanceledException) { }
    }

    private async Task LiveLoop()
    {
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]ect train[/] {Markup.Escape(_runDir)}")
            .AddColumn("phase").AddColumn("step").AddColumn("kimg").AddColumn("img/s").AddColumn("loss").AddColumn("stage").AddColumn("ETA");
        table.AddRow("starting", "", "", "", "", "", "");
        try
        {
            await AnsiConsole.Live(table).AutoClear(false).StartAsync(async ctx =>
            {
                void Show()
                {
                    if (_latest is not { } s) return;
                    table.UpdateCell(0, 0, s.Phase).UpdateCell(0, 1, StepText(s.Step))
                        .UpdateCell(0, 2, s.Kimg.ToString("F2", CultureInfo.InvariantCulture))
                        .UpdateCell(0, 3, s.ImagesPerSecond.ToString("F1", CultureInfo.InvariantCulture))
                        .UpdateCell(0, 4, s.Loss.ToString("G5", CultureInfo.InvariantCulture))
                        .UpdateCell(0, 5, s.Stage.ToString(CultureInfo.InvariantCulture)).UpdateCell(0, 6, Eta(s));
                    ctx.Refresh();
                }
                while (!_cts.IsCancellationRequested)
                {
                    Show();
                    try { await Task.Delay(250, _cts.Token); } catch (OperationCanceledException) { }
                }
                Show(); // the last state, so the panel left on screen shows where the run ended
            });
        }
        catch (Exception) { /* a terminal that cannot render: the run goes on */ }
    }

    public void Dispose()
    {
        _cts.Cancel();
        try { _loop?.Wait(TimeSpan.FromSeconds(2)); } catch (AggregateException) { }
        _cts.Dispose();
    }
}
