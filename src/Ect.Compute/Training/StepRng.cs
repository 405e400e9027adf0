using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>
/// A training step's private RNG stream (torch generator state bytes), swapped into torch's global generator for the
/// duration of a step, so the same seed, weights and images give the same noise and dropout masks whatever else uses
/// the global generator. Data-parallel: rank 0 (and a plain run) draws from this stream and carries it on from step to
/// step; rank r > 0 draws from a generator seeded by (seed, step, r) and leaves the stream as it was, so it needs no
/// state of its own to resume. TrainStep's and Edm2TrainStep's one copy.
/// </summary>
public sealed class StepRng : IDisposable
{
    private Tensor _state;

    /// <summary>Seeds the stream with <paramref name="seed"/> without disturbing the caller's global generator.</summary>
    public StepRng(long seed)
    {
        var saved = torch.random.get_rng_state();
        torch.random.manual_seed(seed);
        _state = torch.random.get_rng_state().DetachFromDisposeScope();
        torch.random.set_rng_state(saved);
        saved.Dispose();
    }

    /// <summary>A copy of the stream's state.</summary>
    public Tensor Get() => _state.clone().DetachFromDisposeScope();

    /// <summary>Replaces the stream's state (resume).</summary>
    public void Set(Tensor state)
    {
        var copy = state.clone().DetachFromDisposeScope();
        _state.Dispose();
        _state = copy;
    }

    /// <summary>
    /// Begins a step inside the caller's dispose scope: remembers the caller's global generator state (given back when
    /// the returned draw is disposed) and picks this rank's stream for step <paramref name="stepIndex"/>. The global
    /// generator holds the step's stream only after <see cref="Draw.Restart"/>.
    /// </summary>
    public Draw Begin(DataParallel? parallel, long seed, long stepIndex) => new(this, parallel, seed, stepIndex);

    public void Dispose() => _state.Dispose();

    /// <summary>One step's use of the stream (see <see cref="Begin"/>).</summary>
    public sealed class Draw : IDisposable
    {
        private readonly StepRng _owner;
        private readonly Tensor _caller, _start;
        private readonly bool _carriesStream;
        private Tensor? _end;

        internal Draw(StepRng owner, DataParallel? parallel, long seed, long stepIndex)
        {
            _owner = owner;
            _caller = torch.random.get_rng_state();
            _carriesStream = parallel is not { Rank: > 0 };
            if (parallel is { Rank: > 0 } worker)
            {
                torch.random.manual_seed(unchecked((long)DataParallel.RankSeed(seed, stepIndex, worker.Rank)));
                _start = torch.random.get_rng_state();
            }
            else _start = owner._state;
        }

        /// <summary>Puts the step's starting state into the global generator (again: a redo repeats the same draws).</summary>
        public void Restart() => torch.random.set_rng_state(_start);

        /// <summary>Marks the end of the step's draws (after the forward and backward passes).</summary>
        public void End() => _end = torch.random.get_rng_state();

        /// <summary>Rank 0 and a plain run carry the stream on from where <see cref="End"/> left it; rank r > 0 does not.</summary>
        public void Commit()
        {
            var end = _end ?? throw new InvalidOperationException("End() before Commit()");
            if (!_carriesStream) return;
            _owner._state.Dispose();
            _owner._state = end.DetachFromDisposeScope();
        }

        /// <summary>Gives the caller's global generator state back.</summary>
        public void Dispose() => torch.random.set_rng_state(_caller);
    }
}
