using Ect.Data.Sources;
using FluentAssertions;
using TorchSharp;
using Xunit;

namespace Ect.Data.Tests;

public class BatchAssemblerTests
{
    static BatchAssemblerTests() => torch.set_num_threads(1);

    private static ImageDataset Make(int n, int c, int h, int w, bool labels = true, int classes = 4)
    {
        var ds = ImageDataset.Allocate("memory", n, c, h, w, labels ? Enumerable.Range(0, n).Select(i => i % classes).ToArray() : null, classes);
        for (int i = 0; i < n; i++)
        {
            var img = ds.GetImageForWrite(i);
            for (int j = 0; j < img.Length; j++) img[j] = TestFiles.Pixel(i, j);
        }
        return ds;
    }

    [Fact]
    public void Batch_is_nchw_float_in_minus1_1_exactly_as_edm_scales_and_labels_are_one_hot()
    {
        using var ds = Make(10, 3, 4, 4);
        var asm = new BatchAssembler(ds, 6, seed: 5);
        var perm = asm.Sampler.Permutation(0).ToArray();
        using var batch = asm.Next();
        batch.Images.shape.Should().Equal(6, 3, 4, 4);
        batch.Images.dtype.Should().Be(torch.ScalarType.Float32);
        batch.Labels!.shape.Should().Equal(6, 4);
        using var half255 = 127.5.ToScalar(); using var one = 1.ToScalar(); // owned Scalars (docs/torchsharp-scalar-race.md)
        using var expected = torch.tensor(ds.GetImage(perm[2]).ToArray()).reshape(3, 4, 4).to(torch.float32).div(half255).sub(one);
        batch.Images[2].allclose(expected, 0, 0).Should().BeTrue("same float32 ops as EDM's x / 127.5 - 1");
        batch.Labels[2].data<float>().ToArray().Should().Equal(Enumerable.Range(0, 4).Select(k => k == perm[2] % 4 ? 1f : 0f));
        batch.Start.Should().Be(new SamplerState(0, 0));
    }

    [Fact]
    public void Unlabelled_sets_give_null_labels()
    {
        using var ds = Make(5, 1, 4, 4, labels: false);
        using var b = new BatchAssembler(ds, 2, 1).Next();
        b.Labels.Should().BeNull();
    }

    [Fact]
    public void Resume_reproduces_images_and_flips_across_epoch_boundaries()
    {
        using var ds = Make(7, 3, 8, 8);
        var opts = new BatchOptions { XFlip = true };
        var a = new BatchAssembler(ds, 3, 9, opts);
        for (int i = 0; i < 4; i++) a.Next().Dispose();
        var saved = a.State.ToString();
        var expected = Enumerable.Range(0, 6).Select(_ => { using var b = a.Next(); return b.Images.data<float>().ToArray(); }).ToList();

        var r = new BatchAssembler(ds, 3, 9, opts) { State = SamplerState.Parse(saved) };
        for (int i = 0; i < 6; i++)
        {
            using var b = r.Next();
            b.Images.data<float>().ToArray().Should().Equal(expected[i], $"batch {i} after resume");
        }
    }

    [Fact]
    public void Xflip_mirrors_about_half_the_samples_left_right()
    {
        const int c = 2, h = 8, w = 8, per = c * h * w;
        using var ds = Make(1, c, h, w, labels: false);
        var plain = new BatchAssembler(ds, 1, 1);
        var flipped = new BatchAssembler(ds, 200, 1, new BatchOptions { XFlip = true });
        var p = new float[per];
        plain.NextInto(p, default);
        var all = new float[200 * per];
        flipped.NextInto(all, default);
        int nFlip = 0;
        for (int k = 0; k < 200; k++)
        {
            var img = all.AsSpan(k * per, per);
            var st = new SamplerState(0, 0).Advance(k, 1); // one image: sample k is epoch k, position 0
            bool expectFlip = BatchAssembler.FlipOf(1, st.Epoch, st.Position);
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        img[ch * h * w + y * w + x].Should().Be(p[ch * h * w + y * w + (expectFlip ? w - 1 - x : x)]);
            if (expectFlip) nFlip++;
        }
        nFlip.Should().BeInRange(70, 130);
    }

    [Fact]
    public void Pads_28_to_32_with_minus_one_border()
    {
        using var ds = Make(2, 1, 28, 28, labels: false);
        var asm = new BatchAssembler(ds, 2, 0, new BatchOptions { Resolution = 32, Shuffle = false });
        var buf = new float[2 * 32 * 32];
        asm.NextInto(buf, default);
        var img1 = buf.AsSpan(32 * 32, 32 * 32);
        img1[0].Should().Be(-1f);
        img1[1 * 32 + 31].Should().Be(-1f);
        img1[2 * 32 + 2].Should().Be(TestFiles.Pixel(1, 0) / 127.5f - 1f);
        img1[29 * 32 + 29].Should().Be(TestFiles.Pixel(1, 27 * 28 + 27) / 127.5f - 1f);
        img1[30 * 32 + 10].Should().Be(-1f);
    }

    [Fact]
    public void Bilinear_halving_averages_each_2x2_block()
    {
        using var ds = ImageDataset.Allocate("memory", 1, 1, 8, 8, null, 0);
        var px = ds.GetImageForWrite(0);
        for (int y = 0; y < 8; y++) for (int x = 0; x < 8; x++) px[y * 8 + x] = (byte)(y * 30 + x * 7);
        var asm = new BatchAssembler(ds, 1, 0, new BatchOptions { Resolution = 4, Resize = ResizeMode.Bilinear });
        var buf = new float[16];
        asm.NextInto(buf, default);
        // align_corners=false, 8 -> 4: output (i, j) samples the centre of block (2i..2i+1, 2j..2j+1) = its mean.
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
            {
                double mean = (px[2 * i * 8 + 2 * j] + px[2 * i * 8 + 2 * j + 1] + px[(2 * i + 1) * 8 + 2 * j] + px[(2 * i + 1) * 8 + 2 * j + 1]) / 4.0;
                buf[i * 4 + j].Should().BeApproximately((float)(mean / 127.5 - 1), 1e-5f);
            }
    }

    [Fact]
    public void Auto_mode_upsamples_small_images_instead_of_padding_a_wide_border()
    {
        using var ds = ImageDataset.Allocate("memory", 1, 1, 16, 16, null, 0);
        ds.GetImageForWrite(0).Fill(200);
        var asm = new BatchAssembler(ds, 1, 0, new BatchOptions { Resolution = 64 });
        var buf = new float[64 * 64];
        asm.NextInto(buf, default);
        buf.Should().OnlyContain(v => Math.Abs(v - (200 / 127.5f - 1)) < 1e-5f);
    }

    [Fact]
    public void A_resolution_the_network_cannot_take_is_refused()
    {
        using var ds = Make(2, 1, 28, 28);
        var act = () => new BatchAssembler(ds, 2, 0, new BatchOptions { Resolution = 30 });
        act.Should().Throw<DatasetException>().WithMessage("*resolution 30*power of two*--resolution 32*");
    }

    [Fact]
    public void Memory_mapped_cache_gives_the_same_batches()
    {
        using var t = new TestFiles();
        using var ds = Make(9, 3, 4, 4);
        ds.SaveRaw(t.PathOf("cache.raw"));
        using var mapped = ImageDataset.OpenMapped(t.PathOf("cache.raw"));
        mapped.IsMemoryMapped.Should().BeTrue();
        mapped.ClassCount.Should().Be(4);
        using var a = new BatchAssembler(ds, 4, 3).Next();
        using var b = new BatchAssembler(mapped, 4, 3).Next();
        a.Images.allclose(b.Images, 0, 0).Should().BeTrue();
        a.Labels!.allclose(b.Labels!, 0, 0).Should().BeTrue();
    }

    [Fact]
    public void LoadMapped_streams_a_source_into_a_mapped_cache_equal_to_the_in_memory_set()
    {
        using var t = new TestFiles();
        var src = t.WriteIdx("train", 20, 28, 28, gz: true);
        using var mem = DatasetSource.Load(src);
        using (var mapped = DatasetSource.LoadMapped(src, t.PathOf("fm.raw")))
        {
            mapped.IsMemoryMapped.Should().BeTrue();
            (mapped.Count, mapped.Height, mapped.ClassCount).Should().Be((20, 28, 10));
            for (int i = 0; i < 20; i++)
            {
                mapped.GetImage(i).ToArray().Should().Equal(mem.GetImage(i).ToArray());
                mapped.GetLabel(i).Should().Be(mem.GetLabel(i));
            }
        }
        File.Exists(t.PathOf("fm.raw.partial")).Should().BeFalse();
        using (var five = DatasetSource.LoadMapped(src, t.PathOf("fm.raw"), maxImages: 5)) five.Count.Should().Be(5, "a cache of another size is rebuilt");
        using (var again = DatasetSource.LoadMapped(src, t.PathOf("fm.raw"))) again.Count.Should().Be(20);
    }
}
