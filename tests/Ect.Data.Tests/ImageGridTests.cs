using FluentAssertions;
using SkiaSharp;
using TorchSharp;
using Xunit;

namespace Ect.Data.Tests;

public class ImageGridTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(10, 3, 4)]
    [InlineData(64, 8, 8)]
    [InlineData(65, 8, 9)]
    public void Grid_shape_is_near_square(int count, int rows, int cols) =>
        ImageGrid.Shape(count).Should().Be((rows, cols));

    [Fact]
    public void Rgb_grid_png_has_tiles_in_row_major_order_with_edm_pixel_mapping()
    {
        using var t = new TestFiles();
        // 5 images 3x2x3 (C,H,W): image n is a flat colour per channel.
        var imgs = new float[5 * 3 * 2 * 3];
        for (int n = 0; n < 5; n++) for (int c = 0; c < 3; c++) for (int j = 0; j < 6; j++) imgs[n * 18 + c * 6 + j] = -1f + 0.4f * n + 0.1f * c;
        var path = t.PathOf("grid.png");
        ImageGrid.SavePng(imgs, 5, 3, 2, 3, path);
        using var bmp = SKBitmap.Decode(path);
        (bmp.Width, bmp.Height).Should().Be((9, 4), "5 images -> 3 columns x 2 rows of 3x2 tiles");
        var px = bmp.GetPixel(3 * 1 + 2, 2 * 1 + 1); // image 4, last pixel
        px.Red.Should().Be(ImageGrid.ToByte(-1f + 1.6f));
        px.Green.Should().Be(ImageGrid.ToByte(-1f + 1.6f + 0.1f));
        px.Blue.Should().Be(ImageGrid.ToByte(-1f + 1.6f + 0.2f));
        bmp.GetPixel(8, 3).Should().Be(new SKColor(0, 0, 0), "the empty cell stays black");
    }

    [Fact]
    public void Grayscale_tensor_grid_saves_one_channel_values()
    {
        using var t = new TestFiles();
        using var x = torch.linspace(-1, 1, 4 * 16).reshape(4, 1, 4, 4);
        var path = t.PathOf("g.png");
        ImageGrid.SavePng(x, path);
        using var bmp = SKBitmap.Decode(path);
        (bmp.Width, bmp.Height).Should().Be((8, 8));
        bmp.GetPixel(0, 0).Red.Should().Be(0);
        bmp.GetPixel(7, 7).Red.Should().Be(255);
        bmp.GetPixel(4, 0).Red.Should().Be(ImageGrid.ToByte(x[1, 0, 0, 0].item<float>()));
    }

    [Fact]
    public void Edm_byte_mapping_clips_and_rounds()
    {
        ImageGrid.ToByte(-1f).Should().Be(0);
        ImageGrid.ToByte(1f).Should().Be(255);
        ImageGrid.ToByte(0f).Should().Be(128);
        ImageGrid.ToByte(5f).Should().Be(255);
        ImageGrid.ToByte(float.NaN).Should().Be(0);
    }
}
