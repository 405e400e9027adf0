using Ect.Actors.Distributed;
using Ect.Actors.Engine;
using Ect.Data;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Distributed;

/// <summary>
/// Each rank assembles its own shard (issue 20): the shard of rank r is exactly rows [r B/K, (r+1) B/K) of the global
/// batch one process would draw (so a data-parallel run computes the same bits as when rank 0 broadcast whole batches
/// and each rank cut its rows), a worker replays a batch from the start rank 0 names, and a different data set is refused.
/// </summary>
public class ShardedBatchTests
{
    private const string Data = "/usr/share/datasets/fashion-mnist";

    private static DatasetBatchSource Source(int batch, int maxImages = 52, int seed = 7) => new(Data, batch, seed, 16, useLabels: true, maxImages);

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void A_ranks_shard_is_its_rows_of_the_whole_batch_across_epoch_ends(int ranks)
    {
        Directory.Exists(Data).Should().BeTrue($"Fashion-MNIST is installed at {Data} (apt-get install dataset-fashion-mnist)");
        const int batch = 8;
        using var whole = Source(batch);
        var shards = Enumerable.Range(0, ranks).Select(r => { var s = Source(batch); s.Shard = (r, ranks); return s; }).ToList();
        try
        {
            // 52 images, 8 a batch: batches 7 and 14 run over an epoch's end into the next permutation.
            for (int step = 0; step < 15; step++)
            {
                using var w = whole.Next();
                var wb = (ImageBatch)w.Payload;
                for (int r = 0; r < ranks; r++)
                {
                    using var s = shards[r].Next();
                    var sb = (ImageBatch)s.Payload;
                    int n = batch / ranks;
                    sb.Images.shape.Should().Equal([n, 1, 16, 16]);
                    sb.Images.Equals(wb.Images.narrow(0, r * n, n)).Should().BeTrue($"rank {r}'s images of batch {step} are rows {r * n}..{(r + 1) * n - 1} of the whole batch");
                    sb.Labels!.Equals(wb.Labels!.narrow(0, r * n, n)).Should().BeTrue($"and so are its labels (batch {step})");
                    s.StateAfter.Should().Be(w.StateAfter, "every rank's sampler moves by the whole batch");
                    sb.Start.Should().Be(wb.Start);
                    s.Count.Should().Be(batch, "a step trains on the whole batch over the ranks (the run's img/s)");
                }
            }
        }
        finally { shards.ForEach(s => s.Dispose()); }
    }

    [Fact]
    public void A_worker_replays_the_batch_that_starts_where_rank_0_says()
    {
        Directory.Exists(Data).Should().BeTrue();
        using var rank0 = Source(8);
        rank0.Shard = (0, 2);
        using var rank1 = Source(8);
        rank1.Shard = (1, 2);
        using var whole = Source(8);
        for (int step = 0; step < 9; step++)
        {
            using var a = rank0.Next();
            using var w = whole.Next();
            // The worker is told only where the batch starts, never its own cursor: any order of starts works.
            using var b = DataShard.At(rank1, ((ImageBatch)a.Payload).Start);
            ((ImageBatch)b.Payload).Images.Equals(((ImageBatch)w.Payload).Images.narrow(0, 4, 4)).Should().BeTrue($"batch {step}");
        }
    }

    [Fact]
    public void A_worker_whose_data_set_differs_from_rank_0s_is_refused_naming_both()
    {
        Directory.Exists(Data).Should().BeTrue();
        using var rank0 = Source(8, maxImages: 52);
        var c = Akka.Configuration.ConfigurationFactory.ParseString("ect.data { batch-size = 8, resolution = 16, max-images = 60 }\nect.run.seed = 7")
            .WithFallback(Ect.Actors.Configuration.EctConfiguration.Defaults());
        var settings = Ect.Actors.Configuration.RunSettings.From(c, checkData: false);
        var spec = new Packets.EngineSpec("", rank0.Resolution, rank0.Channels, 0, Data, rank0.Dataset.Count, DataShard.Fingerprint(rank0.Dataset));
        var open = () => DataShard.Open(settings, spec, 1, 2);
        open.Should().Throw<InvalidDataException>()
            .WithMessage("*rank 1 opened /usr/share/datasets/fashion-mnist and found 60 images*rank 0 trains on 52 images*same data set*");

        // The same 52 images: accepted, as shard 1 of 2.
        c = Akka.Configuration.ConfigurationFactory.ParseString("ect.data { batch-size = 8, resolution = 16, max-images = 52 }\nect.run.seed = 7")
            .WithFallback(Ect.Actors.Configuration.EctConfiguration.Defaults());
        using var same = DataShard.Open(Ect.Actors.Configuration.RunSettings.From(c, checkData: false), spec, 1, 2);
        same.Shard.Should().Be((1, 2));
    }

    [Fact]
    public void A_shard_assembled_ahead_is_used_when_rank_0_goes_on_and_dropped_when_it_moves_the_start()
    {
        Directory.Exists(Data).Should().BeTrue();
        using var rank1 = Source(8);
        rank1.Shard = (1, 2);
        using var reference = Source(8);
        reference.Shard = (1, 2);
        using var ahead = new ShardAhead(rank1);
        // Rank 0's starts: on and on (across the epoch end of 52 images), then back to an earlier batch (a rollback), then on.
        var starts = Enumerable.Range(0, 9).Select(i => new SamplerState(0, 0).Advance(8L * i, 52)).ToList();
        var sequence = starts.Concat([starts[2], starts[3], starts[4]]).ToList();
        for (int i = 0; i < sequence.Count; i++)
        {
            using var got = ahead.Take(sequence[i]);
            using var want = DataShard.At(reference, sequence[i]);
            ((ImageBatch)got.Payload).Images.Equals(((ImageBatch)want.Payload).Images).Should().BeTrue($"shard {i} (start {sequence[i]}) is the one assembled for its start");
            ((ImageBatch)got.Payload).Labels!.Equals(((ImageBatch)want.Payload).Labels!).Should().BeTrue($"with its labels (shard {i})");
            got.StateAfter.Should().Be(want.StateAfter);
            ahead.PrepareAfter(got);
        }
        ahead.Misses.Should().Be(2, "the first shard and the one after the rollback were assembled on demand");
        ahead.Hits.Should().Be(sequence.Count - 2, "every other shard was the one assembled ahead");
    }
}
