using Ect.Compute.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// TrainStep's data-parallel part without MPI: the gradient sum is done in-process (one rank: nothing to add; two
/// ranks: two threads meeting at a barrier, as MPI_Allreduce would make them).
/// </summary>
[Collection(GlobalTorchStateCollection.Name)]
public class DataParallelStepTests
{
    internal sealed class OneRank : IGradientSum
    {
        public int Calls;
        public void SumInPlace(Span<float> buffer) => Calls++;
    }

    /// <summary>K ranks as threads: each hands in its buffer, every rank gets the sums added in rank order.</summary>
    internal sealed class ThreadRanks(int k) : IGradientSum
    {
        private readonly float[]?[] _slots = new float[k][];
        private readonly Barrier _barrier = new(k);
        private readonly ThreadLocal<int> _rank = new();
        public int Rank { set => _rank.Value = value; }

        public void SumInPlace(Span<float> buffer)
        {
            _slots[_rank.Value] = buffer.ToArray();
            _barrier.SignalAndWait();
            for (int i = 0; i < buffer.Length; i++)
            {
                float s = 0;
                for (int r = 0; r < k; r++) s += _slots[r]![i];
                buffer[i] = s;
            }
            _barrier.SignalAndWait();
        }
    }

    [Fact]
    public void One_rank_through_the_flat_buffer_gives_the_bits_of_a_plain_step()
    {
        torch.set_num_threads(1);
        var cfg = TrainStepTests.Config();
        string Run(bool parallel)
        {
            using var step = TrainStepTests.NewStep(cfg);
            var sum = new OneRank();
            if (parallel) step.Parallel = new DataParallel(0, 1, sum);
            for (int i = 0; i < 3; i++) { using var x = TrainStepTests.Images(i, cfg.BatchSize); step.Step(x); }
            if (parallel) sum.Calls.Should().Be(3, "one all-reduce per step");
            return StateDigest.Compute(step.Net) + StateDigest.Compute(step.EmaNet);
        }
        Run(parallel: true).Should().Be(Run(parallel: false));
    }

    [Fact]
    public void Two_ranks_on_their_shards_end_bit_identical_and_report_the_whole_batch_loss()
    {
        var cfg = TrainStepTests.Config(batch: 8);
        var sum = new ThreadRanks(2);
        var digests = new string[2];
        var losses = new double[2][];
        var threads = Enumerable.Range(0, 2).Select(rank => new Thread(() =>
        {
            torch.set_num_threads(1);
            sum.Rank = rank;
            using var step = TrainStepTests.NewStep(cfg);
            step.Parallel = new DataParallel(rank, 2, sum);
            losses[rank] = new double[3];
            for (int i = 0; i < 3; i++)
            {
                using var all = TrainStepTests.Images(i, cfg.BatchSize);
                using var shard = all.narrow(0, rank * 4, 4);
                losses[rank][i] = step.Step(shard).LossMean;
            }
            digests[rank] = StateDigest.Compute(step.Net) + StateDigest.Compute(step.EmaNet);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        digests[1].Should().Be(digests[0], "both ranks applied the same summed gradient");
        losses[1].Should().Equal(losses[0], "the reported loss is the whole batch's, on every rank");
    }

    [Fact]
    public void A_shard_of_the_wrong_size_and_an_indivisible_batch_are_refused()
    {
        torch.set_num_threads(1);
        using var step = TrainStepTests.NewStep(TrainStepTests.Config(batch: 8));
        step.Parallel = new DataParallel(0, 2, new OneRank());
        using var whole = TrainStepTests.Images(0, 8);
        var wrong = () => step.Step(whole);
        wrong.Should().Throw<ArgumentException>().WithMessage("*expected 4 images*8 over 2 ranks*");
        var odd = () => DataParallel.CheckDivisible(6, 4, "ect.data.batch-size");
        odd.Should().Throw<ArgumentException>().WithMessage("ect.data.batch-size = 6 cannot be split into 4 equal shards*6 is not divisible by 4*");
        using var step3 = TrainStepTests.NewStep(TrainStepTests.Config(batch: 8));
        var three = () => step3.Parallel = new DataParallel(0, 3, new OneRank());
        three.Should().Throw<ArgumentException>().WithMessage("*8 is not divisible by 3*");
    }

    [Fact]
    public void Rank_seeds_depend_on_seed_step_and_rank()
    {
        var seeds = new HashSet<ulong>();
        for (long seed = 0; seed < 3; seed++)
            for (long stepIndex = 0; stepIndex < 50; stepIndex++)
                for (int rank = 1; rank < 8; rank++)
                    seeds.Add(DataParallel.RankSeed(seed, stepIndex, rank)).Should().BeTrue($"({seed}, {stepIndex}, {rank}) has its own seed");
        DataParallel.RankSeed(5, 7, 1).Should().Be(DataParallel.RankSeed(5, 7, 1));
    }
}
