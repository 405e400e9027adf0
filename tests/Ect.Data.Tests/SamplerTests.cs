using FluentAssertions;
using Xunit;

namespace Ect.Data.Tests;

public class SamplerTests
{
    [Fact]
    public void SplitMix64_matches_the_reference_sequence()
    {
        // Reference values of splitmix64.c (Vigna) seeded with 1234567.
        var r = new SplitMix64(1234567);
        r.Next().Should().Be(6457827717110365317UL);
        r.Next().Should().Be(3203168211198807973UL);
        r.Next().Should().Be(9817491932198370423UL);
    }

    [Fact]
    public void Each_epoch_is_a_permutation_and_epochs_differ()
    {
        var s = new ResumableSampler(10, 5, seed: 7);
        var e0 = s.Permutation(0).ToArray();
        var e1 = s.Permutation(1).ToArray();
        e0.Order().Should().Equal(Enumerable.Range(0, 10));
        e1.Order().Should().Equal(Enumerable.Range(0, 10));
        e0.Should().NotEqual(e1);
        e0.Should().NotEqual(Enumerable.Range(0, 10));
    }

    [Fact]
    public void Order_is_pinned_for_a_seed()
    {
        // Pinned so that a change of the PRNG or shuffle (which would silently change resumed runs) fails here.
        var perm = new int[8];
        ResumableSampler.FillPermutation(perm, seed: 42, epoch: 3);
        perm.Should().Equal(6, 3, 0, 5, 1, 2, 4, 7);
    }

    [Fact]
    public void Same_seed_same_order_other_seed_other_order()
    {
        var a = new ResumableSampler(100, 32, 1);
        var b = new ResumableSampler(100, 32, 1);
        var c = new ResumableSampler(100, 32, 2);
        var ba = Enumerable.Range(0, 7).SelectMany(_ => a.NextBatch()).ToArray();
        Enumerable.Range(0, 7).SelectMany(_ => b.NextBatch()).Should().Equal(ba);
        Enumerable.Range(0, 7).SelectMany(_ => c.NextBatch()).Should().NotEqual(ba);
    }

    [Fact]
    public void Batches_that_do_not_divide_the_set_continue_into_the_next_epoch()
    {
        var s = new ResumableSampler(10, 4, 3);
        var stream = Enumerable.Range(0, 5).SelectMany(_ => s.NextBatch()).ToArray(); // 20 samples = 2 epochs
        stream[..10].Should().Equal(s.Permutation(0).ToArray());
        stream[10..].Should().Equal(s.Permutation(1).ToArray());
        s.State.Should().Be(new SamplerState(2, 0));
    }

    [Fact]
    public void Restoring_a_state_gives_exactly_the_batches_that_would_have_followed()
    {
        var s = new ResumableSampler(37, 8, 11);
        for (int i = 0; i < 9; i++) s.NextBatch();
        var saved = SamplerState.Parse(s.State.ToString());
        var expected = Enumerable.Range(0, 12).SelectMany(_ => s.NextBatch()).ToArray();

        var resumed = new ResumableSampler(37, 8, 11) { State = saved };
        Enumerable.Range(0, 12).SelectMany(_ => resumed.NextBatch()).Should().Equal(expected);
    }

    [Fact]
    public void State_string_round_trips_and_bad_strings_are_named()
    {
        var st = new SamplerState(12, 345);
        st.ToString().Should().Be("epoch=12;position=345");
        SamplerState.Parse(st.ToString()).Should().Be(st);
        var act = () => SamplerState.Parse("epoch=1;pos=x");
        act.Should().Throw<FormatException>().WithMessage("*'epoch=1;pos=x'*");
    }

    [Fact]
    public void A_state_from_another_dataset_size_is_refused()
    {
        var s = new ResumableSampler(10, 4, 1);
        var act = () => s.State = new SamplerState(0, 10);
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*another dataset*");
    }
}
