using System.Globalization;
using Akka.Actor;
using Akka.Event;
using Config = Akka.Configuration.Config;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Persistence.Events;

namespace Ect.Actors.Run;

// Starting a run: a finished run that the command line makes longer (RunExtended), and the check of
// ect.network.init against the configuration the run really uses (a continued run's recorded one).
public sealed partial class RunCoordinator
{
    /// <summary>The answer of the off-thread ect.network.init check (Starting waits for it).</summary>
    private sealed record InitChecked(string? Error);

    /// <summary>A finished run is lengthened (then <paramref name="then"/>) or refused with what it would take.</summary>
    private void ExtendIfFinished(Action then)
    {
        if (_state.Finished) BeginFinishedRun(then);
        else then();
    }

    /// <summary>
    /// `ect train` on a finished run. With a larger ect.tuning.steps (or, for a run that never tuned, a larger
    /// ect.pretrain.steps) the run is lengthened: ConfigChanged events at the finished step, then RunExtended; the
    /// trainer continues from the final checkpoint, so the extended run computes the same steps as a run configured
    /// that long from the start (the schedule and the learning rates are functions of the step, not of the length).
    /// Otherwise it says what it would take: exit 0 when nothing was asked, exit 2 with the command when the
    /// command line asked for more steps in a way that cannot lengthen a run (--steps is a cap, not a length).
    /// </summary>
    private void BeginFinishedRun(Action then)
    {
        _config = EctConfiguration.FromJournal(_state.ConfigHocon);
        var recorded = EffectiveConfig();
        var cli = _setup.CliConfig;
        var asked = _setup.ExplicitKeys ?? new HashSet<string>();
        long done = _state.Step;
        long pretrain = recorded.GetLong("ect.pretrain.steps"), tuning = recorded.GetLong("ect.tuning.steps");
        long newPretrain = asked.Contains("ect.pretrain.steps") ? cli.GetLong("ect.pretrain.steps") : pretrain;
        long newTuning = asked.Contains("ect.tuning.steps") ? cli.GetLong("ect.tuning.steps") : tuning;
        var length = $"ect.pretrain.steps {pretrain} + ect.tuning.steps {tuning}";
        // The key that lengthens this run: tuning steps, or pretraining steps of a run that never tuned.
        string Command(long total) => tuning == 0 && pretrain > 0
            ? $"`ect train --run-dir {_setup.RunDir} --set ect.pretrain.steps={total}`"
            : $"`ect train --run-dir {_setup.RunDir} --set ect.tuning.steps={total - pretrain}`";

        if (newPretrain != pretrain && !(tuning == 0 && newTuning == 0 && newPretrain > pretrain))
        {
            Refuse($"The run in {_setup.RunDir} finished at step {done} ({length}); ect.pretrain.steps cannot change once tuning " +
                   $"has begun (the phase boundary of the finished steps would move). To tune longer: " +
                   $"`ect train --run-dir {_setup.RunDir} --set ect.tuning.steps=N` with N > {tuning}.");
            return;
        }
        if (newPretrain + newTuning <= done)
        {
            var cap = cli.GetLong("ect.run.max-steps", 0);
            if (asked.Contains("ect.run.max-steps") && cap > done)
                Refuse($"The run in {_setup.RunDir} has already finished at step {done}, its configured length ({length}); " +
                       $"--steps (ect.run.max-steps) caps a run, it does not lengthen one. To train on to step {cap}: {Command(cap)}.");
            else if (newTuning != tuning || newPretrain != pretrain)
                Refuse($"The run in {_setup.RunDir} has already finished at step {done} ({length}); " +
                       $"ect.pretrain.steps {newPretrain} + ect.tuning.steps {newTuning} = {newPretrain + newTuning} does not lengthen it. " +
                       $"Give a larger total, e.g. {Command(done + Math.Max(tuning, 1))}.");
            else
                Complete(new RunOutcome(0, $"The run in {_setup.RunDir} has already finished (step {done}; {length}). " +
                                           $"To train it on, e.g. to step {done + Math.Max(tuning, 1)}: {Command(done + Math.Max(tuning, 1))}.", done));
            return;
        }

        // Lengthen it: the changed keys at the finished step, then RunExtended; Starting goes on as for any continued run.
        var tag = $"extend-{Guid.NewGuid():N}";
        var changes = new List<ConfigChanged>();
        if (newPretrain != pretrain)
            changes.Add(new ConfigChanged { Key = "ect.pretrain.steps", Value = newPretrain.ToString(CultureInfo.InvariantCulture), Step = done, IdempotencyKey = tag + "-pretrain" });
        if (newTuning != tuning)
            changes.Add(new ConfigChanged { Key = "ect.tuning.steps", Value = newTuning.ToString(CultureInfo.InvariantCulture), Step = done, IdempotencyKey = tag + "-tuning" });
        var extended = new RunExtended { Step = done, PreviousTotalSteps = pretrain + tuning, TotalSteps = newPretrain + newTuning };
        _log.Info("The finished run is lengthened from {0} to {1} steps", extended.PreviousTotalSteps, extended.TotalSteps);
        PersistAll(changes, _ => { });
        PersistEvent(extended, _ => then());
    }

    private void Refuse(string message) => Complete(new RunOutcome(2, message, _state.Step));

    private void PersistAll(IEnumerable<ConfigChanged> events, Action<ConfigChanged> then)
    {
        foreach (var e in events) PersistEvent(e, then);
    }

    /// <summary>
    /// Checks ect.network.init (header only, off the actor's thread: it builds the network to compare shapes) against
    /// the configuration the run will use: the command line's for a new run, the recorded one (with its journaled
    /// changes) for a continued run, whose --set keys are otherwise ignored. Then <paramref name="then"/> (when the
    /// InitChecked answer comes back), or the run ends with exit 2.
    /// </summary>
    private void CheckInit(Action then)
    {
        _afterInitCheck = then;
        var config = _state.Started ? EffectiveConfig(EctConfiguration.FromJournal(_state.ConfigHocon)) : _setup.CliConfig;
        var continued = _state.Started;
        Task.Run(() =>
        {
            try { Engines.CheckInit(InitCheckSettings.From(config)); return new InitChecked(null); }
            catch (Ect.Actors.Configuration.ConfigurationException e)
            {
                return new InitChecked(continued
                    ? $"{e.Message} (checked against the run's recorded configuration, which a continued run keeps: restore the file it was started from)"
                    : e.Message);
            }
            catch (Exception e) { return new InitChecked($"ect.network.init: {e.GetType().Name}: {e.Message}"); }
        }).PipeTo(Self);
    }

    private Action? _afterInitCheck;

    private void OnInitChecked(InitChecked m)
    {
        if (m.Error != null) { Refuse(m.Error); return; }
        var then = _afterInitCheck;
        _afterInitCheck = null;
        then?.Invoke();
    }

    private Config EffectiveConfig(Config recorded)
    {
        var c = recorded;
        foreach (var ch in _state.ConfigChanges) c = EctConfiguration.ParseSet($"{ch.Key}={ch.Value}").WithFallback(c);
        return c;
    }
}
