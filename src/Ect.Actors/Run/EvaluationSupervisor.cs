using Akka.Actor;
using Akka.Event;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Compute.Evaluation;

namespace Ect.Actors.Run;

/// <summary>
/// Parent of the configured evaluators. A failing evaluator is restarted (OneForOne) and never touches
/// training: evaluators run on their own dispatcher, on EMA copies the trainer handed over.
/// <para>
/// Every evaluation asked is answered to the coordinator, EvaluationDone or EvaluationFailed, whatever happens to the
/// evaluator: the evaluators answer here, and this actor forwards and keeps what is still outstanding. An evaluator
/// that exhausts its restarts (more than 20 failures in a minute) is stopped by the strategy; its outstanding and
/// later evaluations are answered EvaluationFailed from here (the final evaluation countdown never waits for ever),
/// and their EMA copies are disposed.
/// </para>
/// </summary>
public sealed class EvaluationSupervisor : ReceiveActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<IActorRef> _evaluators = new();
    private readonly List<string> _types = new();
    private readonly HashSet<int> _stopped = new();
    /// <summary>Evaluations sent to evaluator i and not yet answered, oldest first (their EMA copies: disposed once).</summary>
    private readonly Dictionary<int, List<(long Step, bool Final, DisposeOnce Model)>> _outstanding = new();
    private readonly IActorRef _coordinator;

    /// <summary>What the coordinator is told for an evaluation whose evaluator is gone.</summary>
    public const string StoppedReason = "the evaluator was stopped after failing repeatedly (more than 20 failures in a minute); see the log for its errors";

    /// <param name="dataPath">The run's dataset (ect.data.path): metric evaluators take their reference images from it.</param>
    /// <param name="extractorFactory">fd-resnet18's feature extractor (null: ResNet18OnnxExtractor); tests substitute it.</param>
    public static Props Props(IReadOnlyList<EvaluatorSettings> settings, string runDir, string dataPath, IActorRef coordinator,
        Func<EvaluatorSettings, IFeatureExtractor>? extractorFactory = null) =>
        Akka.Actor.Props.Create(() => new EvaluationSupervisor(settings, runDir, dataPath, coordinator, extractorFactory));

    public EvaluationSupervisor(IReadOnlyList<EvaluatorSettings> settings, string runDir, string dataPath, IActorRef coordinator,
        Func<EvaluatorSettings, IFeatureExtractor>? extractorFactory)
    {
        _coordinator = coordinator;
        for (int i = 0; i < settings.Count; i++)
        {
            // The evaluators answer this actor (Self), which forwards to the coordinator.
            var child = Context.ActorOf(EvaluatorProps(settings[i], runDir, dataPath, Self, extractorFactory), $"{settings[i].Type}-{i}");
            Context.Watch(child);
            _evaluators.Add(child);
            _types.Add(settings[i].Type);
            _outstanding[i] = new();
        }
        Receive<EvaluationRequest>(r =>
        {
            for (int i = 0; i < r.Models.Count; i++)
            {
                if (i >= _evaluators.Count || _stopped.Contains(i))
                {
                    r.Models[i].Dispose();
                    if (i < _evaluators.Count) _coordinator.Tell(new EvaluationFailed(_types[i], r.Step, StoppedReason, r.Final));
                    continue;
                }
                var model = new DisposeOnce(r.Models[i]);
                _outstanding[i].Add((r.Step, r.Final, model));
                _evaluators[i].Tell(new Evaluate(r.Step, model, r.Final, r.Kimg));
            }
        });
        Receive<EvaluationDone>(m => { Answered(m.Step, m.Final); _coordinator.Tell(m); });
        Receive<EvaluationFailed>(m => { Answered(m.Step, m.Final); _coordinator.Tell(m); });
        Receive<Terminated>(t =>
        {
            var i = _evaluators.IndexOf(t.ActorRef);
            if (i < 0) return;
            _stopped.Add(i);
            _log.Error("Evaluator {0} ({1}) was stopped after failing repeatedly; its evaluations are reported failed from now on", i, _types[i]);
            FailOutstanding(i);
        });
    }

    private void Answered(long step, bool final)
    {
        var i = _evaluators.IndexOf(Sender);
        if (i < 0) return;
        var list = _outstanding[i];
        var at = list.FindIndex(o => o.Step == step && o.Final == final);
        if (at >= 0) list.RemoveAt(at);
    }

    private void FailOutstanding(int i)
    {
        // The Evaluate messages of a stopped evaluator went to dead letters: their EMA copies are freed here.
        foreach (var (step, final, model) in _outstanding[i])
        {
            model.Dispose();
            _coordinator.Tell(new EvaluationFailed(_types[i], step, StoppedReason, final));
        }
        _outstanding[i].Clear();
    }

    /// <summary>A restart or a stop of this actor loses its evaluators' work in progress: answer it first.</summary>
    protected override void PostStop()
    {
        foreach (var i in _outstanding.Keys) FailOutstanding(i);
        base.PostStop();
    }

    protected override void PreRestart(Exception reason, object message)
    {
        foreach (var i in _outstanding.Keys) FailOutstanding(i);
        base.PreRestart(reason, message);
    }

    private static Props EvaluatorProps(EvaluatorSettings s, string runDir, string dataPath, IActorRef replyTo,
        Func<EvaluatorSettings, IFeatureExtractor>? extractorFactory) => s.Type switch
    {
        "sample-grid" => SampleGridEvaluator.Props(s, runDir, replyTo),
        FdResNet18Evaluator.TypeName => FdResNet18Evaluator.Props(s, runDir, dataPath, replyTo, extractorFactory),
        _ => throw new ArgumentException($"unknown evaluator type {s.Type}"),
    };

    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: 20, withinTimeRange: TimeSpan.FromMinutes(1), localOnlyDecider: _ => Directive.Restart);

    /// <summary>An EMA copy that the evaluator (after use) and this supervisor (when the evaluator is gone) may both dispose.</summary>
    private sealed class DisposeOnce(IEvaluationModel inner) : IEvaluationModel
    {
        private int _disposed;
        public int Channels => inner.Channels;
        public int Resolution => inner.Resolution;
        public float[] Generate(int count, int samplingSteps, int seed, double tMax, double midT, int firstImage = 0, Ect.Actors.Evaluation.ClassLabels? classes = null) =>
            inner.Generate(count, samplingSteps, seed, tMax, midT, firstImage, classes);
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) inner.Dispose();
        }
    }
}
