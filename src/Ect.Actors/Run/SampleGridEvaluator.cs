using Akka.Actor;
using Akka.Event;
using Ect.Actors.Configuration;
using Ect.Actors.Evaluation;
using Ect.Actors.Output;

namespace Ect.Actors.Run;

/// <summary>Writes PNG grids of 1-step and 2-step consistency samples from the EMA weights (fixed noise seed).</summary>
public sealed class SampleGridEvaluator : ReceiveActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public static Props Props(EvaluatorSettings s, string runDir, IActorRef coordinator) =>
        Akka.Actor.Props.Create(() => new SampleGridEvaluator(s, runDir, coordinator)).WithDispatcher("ect.evaluation-dispatcher");

    public SampleGridEvaluator(EvaluatorSettings s, string runDir, IActorRef coordinator)
    {
        var dir = Path.Combine(runDir, "samples");
        Receive<Evaluate>(m =>
        {
            using var model = m.Model;
            try
            {
                Directory.CreateDirectory(dir);
                var files = new List<string>();
                foreach (var n in s.SamplingSteps)
                {
                    // A class-conditional network shows a row per class (row r: class r mod L); the grid's own layout.
                    var images = model.Generate(s.Count, n, s.Seed, s.TMax, s.MidT, classes: ClassLabels.RowPerClass.ForGrid(s.Count));
                    var name = $"grid-{m.Step:D9}-{n}step.png";
                    Png.SaveGrid(Path.Combine(dir, name), images, s.Count, model.Channels, model.Resolution);
                    files.Add(Path.Combine("samples", name));
                    // The same images for a person: scaled up, captioned, the sampling times in the name; and the
                    // newest one under a fixed name to keep open in a viewer.
                    var view = ViewName(m.Step, n, s);
                    ViewGrid.Save(Path.Combine(dir, view), images, s.Count, model.Channels, model.Resolution, Caption(m.Step, n, s, m.Final));
                    File.Copy(Path.Combine(dir, view), Path.Combine(dir, $"latest-{n}step.png"), overwrite: true);
                    files.Add(Path.Combine("samples", view));
                }
                coordinator.Tell(new EvaluationDone("sample-grid", m.Step, files, new Dictionary<string, double>(), m.Final));
            }
            catch (Exception e)
            {
                _log.Error(e, "sample-grid evaluation at step {0} failed", m.Step);
                coordinator.Tell(new EvaluationFailed("sample-grid", m.Step, e.Message, m.Final));
                throw; // the supervisor restarts this evaluator; training goes on
            }
        });
    }

    /// <summary>The consistency sampler's times for n steps (1: t-max; 2: t-max then mid-t; more: EDM's Karras times).</summary>
    private static string Times(int n, EvaluatorSettings s) =>
        string.Join("-", Ect.Actors.Evaluation.SamplerChoice.EvaluatorTimes(n, s.TMax, s.MidT).Select(Inv));

    public static string ViewName(long step, int n, EvaluatorSettings s) => $"view-{step:D9}-{n}step-t{Times(n, s)}.png";

    private static string Caption(long step, int n, EvaluatorSettings s, bool final) =>
        $"step {step}{(final ? " (final)" : "")} | EMA, {n}-step consistency sampling, t = {Times(n, s).Replace("-", ", ")} | seed {s.Seed}";

    private static string Inv(double v) => v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
}
